//! Export formats for compliance review, their readers, and the offline verifier.
//!
//! Two formats, both carrying every chain field (`device_id`, `seq`, `v`, `prev_hash`, `hash`) so an
//! auditor can re-verify without the vault:
//!
//! * **JSON Lines** (`.jsonl`): one [`AuditEvent`] JSON object per line (its serde form), UTF-8, `\n`.
//! * **CSV** (RFC 4180): header row [`CSV_HEADER`], CRLF line ends, fields quoted when they contain a
//!   comma, quote, CR or LF (quotes doubled). **Formula-injection guard:** a text cell whose value starts
//!   with `=`, `+`, `-`, `@`, TAB, CR or `'` is written with one extra leading `'`, so spreadsheet
//!   software shows it as text instead of evaluating it. The guard is reversible: the reader strips one
//!   leading `'` from every text cell that has one, so the hash is computed over the original value.
//!
//! [`verify_export`] streams an export (constant memory, any size) and verifies each device's chain in
//! [`VerifyMode::Complete`] (the file must be the whole log) or [`VerifyMode::Segments`] (a filtered
//! export: each event's own hash, and the links between consecutive seqs present; see `docs/audit-trail.md`
//! for exactly what that proves).

use crate::audit::{
    hex32, ts_micros, Action, AuditEvent, ChainError, ChainReport, ChainVerifier, Checkpoint,
    EventRef, Outcome, VerifyMode,
};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// The CSV header row, in column order.
pub const CSV_HEADER: [&str; 13] = [
    "timestamp",
    "user",
    "action",
    "resource",
    "ip_address",
    "user_agent",
    "result",
    "detail",
    "device_id",
    "seq",
    "v",
    "prev_hash",
    "hash",
];

/// Longest record the readers accept (a hostile file cannot make them buffer more).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Export file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// JSON Lines.
    Jsonl,
}

impl std::str::FromStr for ExportFormat {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, ExportError> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "jsonl" | "json" | "ndjson" => Ok(ExportFormat::Jsonl),
            other => Err(ExportError::Malformed {
                line: 0,
                message: format!("unknown export format {other:?}: expected csv or jsonl"),
            }),
        }
    }
}

/// Reading, writing or verifying an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file is not a well-formed export.
    #[error("malformed audit export at line {line}: {message}")]
    Malformed {
        /// 1-based line number (0 when unknown).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The events do not form a valid chain.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Reading or writing the file failed.
    #[error("audit export I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ExportError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::Malformed { .. } => "malformed_export",
            ExportError::Chain(e) => e.code(),
            ExportError::Io(_) => "io_error",
        }
    }
}

fn decimal_width(mut v: u64) -> usize {
    let mut w = 1;
    while v >= 10 {
        v /= 10;
        w += 1;
    }
    w
}

fn needs_guard(s: &str) -> bool {
    matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r' | b'\'')
    )
}

fn write_csv_cell(out: &mut Vec<u8>, value: &str, text: bool) {
    let guard = text && needs_guard(value);
    let quote = value
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if quote {
        out.push(b'"');
    }
    if guard {
        out.push(b'\'');
    }
    if quote {
        for b in value.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn push_digits(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Appends the export form of a timestamp ([`ts_micros::format`]: `YYYY-MM-DDTHH:MM:SS.ffffffZ`)
/// without going through a formatter; years outside 0..=9999 take the general path.
fn push_timestamp(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        match crate::audit::from_unix_micros(micros) {
            Ok(ts) => out.extend_from_slice(ts_micros::format(ts).as_bytes()),
            Err(_) => out.extend_from_slice(micros.to_string().as_bytes()),
        }
        return;
    }
    let sod = secs.rem_euclid(86_400) as u64;
    push_digits(out, y as u64, 4);
    out.push(b'-');
    push_digits(out, m.into(), 2);
    out.push(b'-');
    push_digits(out, d.into(), 2);
    out.push(b'T');
    push_digits(out, sod / 3600, 2);
    out.push(b':');
    push_digits(out, sod / 60 % 60, 2);
    out.push(b':');
    push_digits(out, sod % 60, 2);
    out.push(b'.');
    push_digits(out, frac, 6);
    out.push(b'Z');
}

fn push_hex(out: &mut Vec<u8>, h: &[u8; 32]) {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(h, &mut buf).expect("64 hex digits for 32 bytes");
    out.extend_from_slice(&buf);
}

/// The JSON Lines shape of an event (field order and spelling of [`AuditEvent`]'s serde form),
/// borrowed.
#[derive(serde::Serialize)]
struct JsonRef<'a> {
    timestamp: &'a str,
    user: &'a str,
    action: &'a str,
    resource: &'a str,
    ip_address: &'a str,
    user_agent: &'a str,
    result: &'a str,
    detail: &'a str,
    device_id: &'a str,
    seq: u64,
    v: u16,
    prev_hash: &'a str,
    hash: &'a str,
}

/// Streams events into an export file.
pub struct ExportWriter<W: Write> {
    out: W,
    format: ExportFormat,
    line: Vec<u8>,
    written: u64,
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export (writes the CSV header immediately).
    pub fn new(mut out: W, format: ExportFormat) -> Result<Self, ExportError> {
        if format == ExportFormat::Csv {
            out.write_all(CSV_HEADER.join(",").as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        Ok(Self {
            out,
            format,
            line: Vec::with_capacity(512),
            written: 0,
        })
    }

    /// Appends one event.
    pub fn write(&mut self, ev: &AuditEvent) -> Result<(), ExportError> {
        self.write_ref(&ev.borrowed())
    }

    /// Appends one event given as borrowed fields (straight from a database row): the bulk
    /// path, no allocation per event. Bytes are identical to [`ExportWriter::write`].
    pub fn write_ref(&mut self, ev: &EventRef<'_>) -> Result<(), ExportError> {
        self.line.clear();
        match self.format {
            ExportFormat::Jsonl => {
                let mut ts = Vec::with_capacity(32);
                push_timestamp(&mut ts, ev.ts_micros);
                let mut prev = [0u8; 64];
                let mut hash = [0u8; 64];
                hex::encode_to_slice(ev.prev_hash, &mut prev).expect("64 hex digits");
                hex::encode_to_slice(ev.hash, &mut hash).expect("64 hex digits");
                fn ascii(b: &[u8]) -> &str {
                    std::str::from_utf8(b).unwrap_or_default()
                }
                let j = JsonRef {
                    timestamp: ascii(&ts),
                    user: ev.user,
                    action: ev.action,
                    resource: ev.resource,
                    ip_address: ev.ip_address,
                    user_agent: ev.user_agent,
                    result: ev.result,
                    detail: ev.detail,
                    device_id: ev.device_id,
                    seq: ev.seq,
                    v: ev.v,
                    prev_hash: ascii(&prev),
                    hash: ascii(&hash),
                };
                serde_json::to_writer(&mut self.line, &j).map_err(|e| ExportError::Malformed {
                    line: 0,
                    message: e.to_string(),
                })?;
                self.line.push(b'\n');
            }
            ExportFormat::Csv => {
                let l = &mut self.line;
                push_timestamp(l, ev.ts_micros);
                for (v, text) in [
                    (ev.user, true),
                    (ev.action, true),
                    (ev.resource, true),
                    (ev.ip_address, true),
                    (ev.user_agent, true),
                    (ev.result, false),
                    (ev.detail, true),
                    (ev.device_id, true),
                ] {
                    l.push(b',');
                    write_csv_cell(l, v, text);
                }
                l.push(b',');
                push_digits(l, ev.seq, decimal_width(ev.seq));
                l.push(b',');
                push_digits(l, ev.v.into(), decimal_width(ev.v.into()));
                l.push(b',');
                push_hex(l, ev.prev_hash);
                l.push(b',');
                push_hex(l, ev.hash);
                l.extend_from_slice(b"\r\n");
            }
        }
        self.out.write_all(&self.line)?;
        self.written += 1;
        Ok(())
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, ExportError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads events back from either export format (detected from the first byte), one at a time.
pub struct ExportReader<R: BufRead> {
    input: R,
    format: ExportFormat,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> ExportReader<R> {
    /// Detects the format and, for CSV, checks the header row.
    pub fn new(mut input: R) -> Result<Self, ExportError> {
        let first = input.fill_buf()?.first().copied();
        let format = match first {
            Some(b'{') => ExportFormat::Jsonl,
            _ => ExportFormat::Csv,
        };
        let mut r = Self {
            input,
            format,
            line: 0,
            buf: Vec::new(),
        };
        if format == ExportFormat::Csv {
            match r.read_csv_record()? {
                Some(h) if h == CSV_HEADER => {}
                Some(_) => {
                    return Err(r.malformed("not a LabVault audit export: unexpected header row"))
                }
                None => return Err(r.malformed("empty file")),
            }
        }
        Ok(r)
    }

    /// The detected format.
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    fn malformed(&self, message: impl Into<String>) -> ExportError {
        ExportError::Malformed {
            line: self.line,
            message: message.into(),
        }
    }

    /// Reads one physical line (without its terminator) into `self.buf`; false at EOF.
    fn read_line(&mut self) -> Result<bool, ExportError> {
        self.buf.clear();
        let mut limited = std::io::Read::take(&mut self.input, MAX_RECORD_BYTES as u64 + 1);
        let n = limited.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.len() > MAX_RECORD_BYTES {
            return Err(self.malformed("record too long"));
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        Ok(true)
    }

    fn read_csv_record(&mut self) -> Result<Option<Vec<String>>, ExportError> {
        let mut fields = Vec::with_capacity(CSV_HEADER.len());
        let mut field = Vec::new();
        let mut in_quotes = false;
        let mut started = false;
        let mut total = 0usize;
        loop {
            if !self.read_line()? {
                if in_quotes {
                    return Err(self.malformed("unterminated quoted field"));
                }
                if !started {
                    return Ok(None);
                }
                break;
            }
            if !started && !in_quotes && self.buf.is_empty() {
                continue; // blank line between records (e.g. a trailing newline)
            }
            started = true;
            total += self.buf.len();
            if total > MAX_RECORD_BYTES {
                return Err(self.malformed("record too long"));
            }
            let line = std::mem::take(&mut self.buf);
            let mut i = 0;
            let end = line.len();
            while i < end {
                let b = line[i];
                if in_quotes {
                    if b == b'"' {
                        if line.get(i + 1) == Some(&b'"') {
                            field.push(b'"');
                            i += 1;
                        } else {
                            in_quotes = false;
                        }
                    } else {
                        field.push(b);
                    }
                } else {
                    match b {
                        b'"' if field.is_empty() => in_quotes = true,
                        b'"' => return Err(self.malformed("quote inside an unquoted field")),
                        b',' => fields.push(self.take_field(&mut field)?),
                        b'\r' if i + 1 == end => {}
                        b'\r' => return Err(self.malformed("bare CR in an unquoted field")),
                        _ => field.push(b),
                    }
                }
                i += 1;
            }
            self.buf = line;
            if in_quotes {
                field.push(b'\n');
                continue;
            }
            break;
        }
        fields.push(self.take_field(&mut field)?);
        Ok(Some(fields))
    }

    fn take_field(&self, field: &mut Vec<u8>) -> Result<String, ExportError> {
        String::from_utf8(std::mem::take(field)).map_err(|_| self.malformed("field is not UTF-8"))
    }

    fn next_event(&mut self) -> Result<Option<AuditEvent>, ExportError> {
        match self.format {
            ExportFormat::Jsonl => loop {
                if !self.read_line()? {
                    return Ok(None);
                }
                if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                return serde_json::from_slice::<AuditEvent>(&self.buf)
                    .map(Some)
                    .map_err(|e| self.malformed(e.to_string()));
            },
            ExportFormat::Csv => {
                let Some(rec) = self.read_csv_record()? else {
                    return Ok(None);
                };
                self.csv_event(rec).map(Some)
            }
        }
    }

    fn csv_event(&self, rec: Vec<String>) -> Result<AuditEvent, ExportError> {
        if rec.len() != CSV_HEADER.len() {
            return Err(self.malformed(format!(
                "expected {} fields, found {}",
                CSV_HEADER.len(),
                rec.len()
            )));
        }
        let mut it = rec.into_iter();
        let mut next = || it.next().unwrap_or_default();
        let unguard = |s: String| match s.strip_prefix('\'') {
            Some(rest) => rest.to_string(),
            None => s,
        };
        let bad = |m: String| self.malformed(m);
        let timestamp = ts_micros::parse(&next()).map_err(|e| bad(e.to_string()))?;
        let user = unguard(next());
        let action = Action::new(unguard(next())).map_err(|e| bad(e.to_string()))?;
        let resource = unguard(next());
        let ip_address = unguard(next());
        let user_agent = unguard(next());
        let result: Outcome = next()
            .parse()
            .map_err(|e: crate::audit::AuditError| bad(e.to_string()))?;
        let detail = unguard(next());
        let device_id = unguard(next());
        let seq = next()
            .parse::<u64>()
            .map_err(|e| bad(format!("seq: {e}")))?;
        let v = next().parse::<u16>().map_err(|e| bad(format!("v: {e}")))?;
        let prev_hash = hex32::parse(&next()).map_err(bad)?;
        let hash = hex32::parse(&next()).map_err(bad)?;
        Ok(AuditEvent {
            timestamp,
            user,
            action,
            resource,
            ip_address,
            user_agent,
            result,
            detail,
            device_id,
            seq,
            v,
            prev_hash,
            hash,
        })
    }
}

impl<R: BufRead> Iterator for ExportReader<R> {
    type Item = Result<AuditEvent, ExportError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// What an offline verification established.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExportVerification {
    /// The detected file format.
    pub format: ExportFormat,
    /// Events read.
    pub events: u64,
    /// One report per device chain present in the file, ordered by device id.
    pub devices: Vec<ChainReport>,
}

/// Reads an export and re-verifies every device chain in it, streaming. `mode` is
/// [`VerifyMode::Complete`] for a full export and [`VerifyMode::Segments`] for a filtered one;
/// `expected` are trusted checkpoints (e.g. anchored heads) that must match.
pub fn verify_export<R: BufRead>(
    input: R,
    mode: VerifyMode,
    expected: &[Checkpoint],
    mut progress: impl FnMut(u64),
) -> Result<ExportVerification, ExportError> {
    let mut reader = ExportReader::new(input)?;
    let format = reader.format();
    let mut chains: BTreeMap<String, ChainVerifier> = BTreeMap::new();
    for cp in expected {
        chains.insert(
            cp.device_id.clone(),
            ChainVerifier::for_device(cp.device_id.clone(), mode).expect_checkpoint(cp.clone()),
        );
    }
    let mut events = 0u64;
    for ev in &mut reader {
        let ev = ev?;
        let v = chains
            .entry(ev.device_id.clone())
            .or_insert_with(|| ChainVerifier::for_device(ev.device_id.clone(), mode));
        v.push(ev)?;
        events += 1;
        if events.is_multiple_of(65_536) {
            progress(events);
        }
    }
    progress(events);
    let mut devices = Vec::with_capacity(chains.len());
    for (_, v) in chains {
        devices.push(v.finish()?);
    }
    Ok(ExportVerification {
        format,
        events,
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{actions, ChainErrorKind, EventDraft};
    use time::macros::datetime;

    fn nasty_chain(n: u64) -> Vec<AuditEvent> {
        let mut head = Checkpoint::genesis("dev-x");
        let users = [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "'quoted",
            "plain, with comma",
            "line\nbreak",
            "crlf\r\nbreak",
            "tab\tinside",
            "\ttab first",
            "ünïcødé ✓",
            "",
        ];
        (1..=n)
            .map(|i| {
                let u = users[(i as usize) % users.len()];
                head.append(
                    EventDraft::new(
                        datetime!(2026-03-01 08:00 UTC) + time::Duration::milliseconds(i as i64),
                        u,
                        Action::new(actions::DATA_EXPORT).unwrap(),
                        format!("project/p\"{i}\"/item/i,{i}"),
                        if i % 5 == 0 {
                            Outcome::Denied
                        } else {
                            Outcome::Success
                        },
                    )
                    .detail(u)
                    .user_agent("labvault-cli/0.1.0"),
                )
            })
            .collect()
    }

    fn export(events: &[AuditEvent], format: ExportFormat) -> Vec<u8> {
        let mut w = ExportWriter::new(Vec::new(), format).unwrap();
        for ev in events {
            w.write(ev).unwrap();
        }
        assert_eq!(w.written(), events.len() as u64);
        w.finish().unwrap()
    }

    fn verify(bytes: &[u8], mode: VerifyMode) -> Result<ExportVerification, ExportError> {
        verify_export(bytes, mode, &[], |_| {})
    }

    fn chain_err(bytes: &[u8]) -> (u64, ChainErrorKind) {
        match verify(bytes, VerifyMode::Complete) {
            Err(ExportError::Chain(e)) => (e.first_bad_seq, e.kind),
            other => panic!("expected a chain error, got {other:?}"),
        }
    }

    #[test]
    fn both_formats_round_trip_hostile_values_exactly() {
        let c = nasty_chain(40);
        for format in [ExportFormat::Csv, ExportFormat::Jsonl] {
            let bytes = export(&c, format);
            let back: Vec<AuditEvent> = ExportReader::new(&bytes[..])
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(back, c, "{format:?}");
            let r = verify(&bytes, VerifyMode::Complete).unwrap();
            assert_eq!(r.format, format);
            assert_eq!(r.events, 40);
            assert!(r.devices[0].complete);
            assert_eq!(r.devices[0].head, Some(c[39].checkpoint()));
        }
    }

    #[test]
    fn fast_writer_matches_the_reference_forms_byte_for_byte() {
        // Timestamps across the whole 0..=9999 range, leap days and the fallback beyond.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut micros = vec![
            0,
            -1,
            951_782_400_000_000,
            253_402_300_799_999_999,
            -62_167_219_200_000_000,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            micros.push((x % 315_537_897_600_000_000) as i64 - 62_167_219_200_000_000);
        }
        for m in micros {
            let mut out = Vec::new();
            push_timestamp(&mut out, m);
            let ts = crate::audit::from_unix_micros(m).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                ts_micros::format(ts),
                "{m}"
            );
        }
        // JSON Lines: identical to the serde form of the event.
        for ev in nasty_chain(30) {
            let mut w = ExportWriter::new(Vec::new(), ExportFormat::Jsonl).unwrap();
            w.write(&ev).unwrap();
            let mut want = serde_json::to_vec(&ev).unwrap();
            want.push(b'\n');
            assert_eq!(w.finish().unwrap(), want);
            assert_eq!(ev.content_digest(), {
                use sha2::Digest;
                let d: [u8; 32] = sha2::Sha256::digest(ev.canonical_content()).into();
                d
            });
        }
        for (v, w) in [
            (0u64, 1),
            (9, 1),
            (10, 2),
            (99, 2),
            (100, 3),
            (u64::MAX, 20),
        ] {
            assert_eq!(decimal_width(v), w);
            let mut out = Vec::new();
            push_digits(&mut out, v, w);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        let bytes = export(&nasty_chain(24), ExportFormat::Csv);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("timestamp,user,action,resource,ip_address,user_agent,result,detail,device_id,seq,v,prev_hash,hash\r\n"));
        for cell in text.split([',', '\n']) {
            let cell = cell.trim_start_matches('"');
            assert!(
                !matches!(cell.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@')),
                "unguarded cell {cell:?}"
            );
        }
        assert!(text.contains("'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")"));
        assert!(text.contains(",''quoted,"));
    }

    fn lines(bytes: &[u8]) -> Vec<String> {
        // Records of a test chain whose values contain no newlines.
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .split_inclusive('\n')
            .map(str::to_string)
            .collect()
    }

    fn simple_chain(n: u64) -> Vec<AuditEvent> {
        let mut head = Checkpoint::genesis("dev-y");
        (1..=n)
            .map(|i| {
                head.append(EventDraft::new(
                    datetime!(2026-03-01 08:00 UTC) + time::Duration::seconds(i as i64),
                    "bob",
                    Action::new(actions::DATA_IMPORT).unwrap(),
                    format!("project/p1/item/i{i}"),
                    Outcome::Success,
                ))
            })
            .collect()
    }

    #[test]
    fn tampering_with_an_exported_file_is_detected() {
        let c = simple_chain(12);
        for format in [ExportFormat::Csv, ExportFormat::Jsonl] {
            let l = lines(&export(&c, format));
            let hdr = usize::from(format == ExportFormat::Csv);
            let join = |v: &[String]| v.concat().into_bytes();

            let mut edited = l.clone();
            edited[hdr + 4] = edited[hdr + 4].replace("bob", "eve");
            assert_eq!(
                chain_err(&join(&edited)),
                (5, ChainErrorKind::Edited),
                "{format:?}"
            );

            let mut deleted = l.clone();
            deleted.remove(hdr + 6);
            assert_eq!(
                chain_err(&join(&deleted)),
                (7, ChainErrorKind::Missing),
                "{format:?}"
            );

            let mut inserted = l.clone();
            let dup = inserted[hdr + 2].replace("i3", "i99");
            inserted.insert(hdr + 3, dup);
            assert_eq!(
                chain_err(&join(&inserted)),
                (3, ChainErrorKind::Inserted),
                "{format:?}"
            );

            let mut reordered = l.clone();
            reordered.swap(hdr + 8, hdr + 9);
            assert_eq!(
                chain_err(&join(&reordered)),
                (9, ChainErrorKind::Reordered),
                "{format:?}"
            );

            let mut truncated = l.clone();
            truncated.pop();
            let cp = c[11].checkpoint();
            match verify_export(&join(&truncated)[..], VerifyMode::Complete, &[cp], |_| {}) {
                Err(ExportError::Chain(e)) => assert_eq!(e.kind, ChainErrorKind::Truncated),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn filtered_export_verifies_as_segments_only() {
        let c = simple_chain(20);
        let filtered: Vec<_> = c.iter().filter(|e| e.seq % 4 != 0).cloned().collect();
        let bytes = export(&filtered, ExportFormat::Jsonl);
        let r = verify(&bytes, VerifyMode::Segments).unwrap();
        // 4, 8, 12, 16 are gaps; 20 is simply after the last event shown (a filter cannot prove a tail).
        assert_eq!(r.devices[0].gaps, 4);
        assert_eq!(r.devices[0].omitted, 4);
        assert_eq!(r.devices[0].head.as_ref().map(|h| h.seq), Some(19));
        assert!(!r.devices[0].complete);
        assert_eq!(chain_err(&bytes), (4, ChainErrorKind::Missing));
    }

    #[test]
    fn malformed_files_are_refused_with_a_line_number() {
        let bad = |b: &[u8]| match verify(b, VerifyMode::Complete) {
            Err(e @ ExportError::Malformed { .. }) => {
                assert_eq!(e.code(), "malformed_export");
                e.to_string()
            }
            other => panic!("{other:?}"),
        };
        bad(b"");
        bad(b"a,b,c\r\n");
        let ok = export(&simple_chain(3), ExportFormat::Csv);
        let text = String::from_utf8(ok.clone()).unwrap();
        let m = bad(text.replacen(",success,", ",maybe,", 1).as_bytes());
        assert!(m.contains("line 2"), "{m}");
        bad(format!("{text}\"unterminated,").as_bytes());
        let short_hash = text.replacen(&hex::encode(simple_chain(3)[0].hash), "abcd", 1);
        bad(short_hash.as_bytes());
        let json = export(&simple_chain(2), ExportFormat::Jsonl);
        let mut j = json.clone();
        j.extend_from_slice(b"{\"not\":\"an event\"}\n");
        bad(&j);
    }

    #[test]
    fn multiple_devices_are_verified_separately() {
        let a = simple_chain(5);
        let b = nasty_chain(5);
        let mut mixed = Vec::new();
        for i in 0..5 {
            mixed.push(a[i].clone());
            mixed.push(b[i].clone());
        }
        let r = verify(&export(&mixed, ExportFormat::Csv), VerifyMode::Complete).unwrap();
        assert_eq!(r.devices.len(), 2);
        assert!(r.devices.iter().all(|d| d.complete && d.events == 5));
    }
}

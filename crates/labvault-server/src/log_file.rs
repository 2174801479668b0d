//! The server's log file, rotated by size and capped: `labvault-server.log` grows to a set
//! size, then becomes `.1` (the older ones move up one, the oldest beyond the count kept is
//! deleted), so logs can never fill the disk however busy the server is. Without a log file
//! the server logs to stderr, where the service manager (journald) rotates.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A size-rotated log file; a `tracing_subscriber` writer (`fmt().with_writer(log)`).
pub struct RotatingLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    state: Mutex<(File, u64)>,
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingLog {
    /// Opens (appending to) the log at `path`, which rotates once it passes `max_bytes`,
    /// keeping `keep` rotated files besides the current one: at most about
    /// `(keep + 1) × max_bytes` on disk.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<RotatingLog> {
        let f = open_append(path)?;
        let len = f.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            keep,
            state: Mutex::new((f, len)),
        })
    }

    fn rotate(&self, state: &mut (File, u64)) -> io::Result<()> {
        state.0.flush()?;
        if self.keep == 0 {
            state.0.set_len(0)?;
            state.1 = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(numbered(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        *state = (open_append(&self.path)?, 0);
        Ok(())
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.1 > 0 && st.1 + buf.len() as u64 > self.max_bytes {
            // A log that cannot rotate (disk full, permissions) keeps writing rather than
            // losing lines; the next write tries again.
            let _ = self.rotate(&mut st);
        }
        st.0.write_all(buf)?;
        st.1 += buf.len() as u64;
        Ok(buf.len())
    }
}

/// One write of a [`RotatingLog`] (a whole formatted event).
pub struct LogWriter<'a>(&'a RotatingLog);

impl Write for LogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingLog {
    type Writer = LogWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_by_size_and_never_keeps_more_than_asked() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("labvault-server.log");
        let log = RotatingLog::open(&path, 1000, 2).unwrap();
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        for _ in 0..100 {
            LogWriter(&log).write_all(&line).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "labvault-server.log",
                "labvault-server.log.1",
                "labvault-server.log.2"
            ]
        );
        let total: u64 = names
            .iter()
            .map(|n| std::fs::metadata(t.path().join(n)).unwrap().len())
            .sum();
        assert!(total <= 3 * 1000, "{total} bytes kept");
        for n in &names {
            let len = std::fs::metadata(t.path().join(n)).unwrap().len();
            assert!(len <= 1000, "{n}: {len}");
        }
        // The newest lines are in the current file, whole.
        let cur = std::fs::read(&path).unwrap();
        assert!(!cur.is_empty() && cur.ends_with(b"\n") && cur.len().is_multiple_of(100));
        // Reopened (a restart), it appends and keeps counting.
        drop(log);
        let log = RotatingLog::open(&path, 1000, 2).unwrap();
        for _ in 0..20 {
            LogWriter(&log).write_all(&line).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
    }
}

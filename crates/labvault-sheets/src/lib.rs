//! Tables as Excel workbooks (`.xlsx`): typed columns (numbers stay numbers, times are real
//! date-times, hashes and ids stay text), a bold frozen header row, an autofilter and sensible
//! widths, so a manifest, an audit log or an access review opens ready to sort and filter.
//!
//! Cells are always written with their type: a name such as `=cmd|...` is text in a workbook,
//! never a formula. Rows beyond one sheet's limit continue on a second sheet ("Audit (2)").
#![forbid(unsafe_code)]

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};

/// Rows per sheet, header included (Excel's limit).
pub const MAX_ROWS: usize = 1_048_576;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// Ids and hashes: text in a fixed-width font.
    Code,
    /// Whole numbers (sizes, counts, versions).
    Integer,
    /// Date and time (UTC).
    DateTime,
    /// Yes/no.
    Bool,
}

/// A column: its header and kind.
#[derive(Clone, Debug)]
pub struct Column {
    /// Header text.
    pub name: String,
    /// What it holds.
    pub kind: Kind,
}

impl Column {
    /// A column named `name` of kind `kind`.
    pub fn new(name: impl Into<String>, kind: Kind) -> Column {
        Column {
            name: name.into(),
            kind,
        }
    }
}

/// One cell's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Nothing.
    Empty,
    /// Text (also for [`Kind::Code`]).
    Text(String),
    /// A whole number.
    Int(i64),
    /// A date-time in UTC.
    DateTime(time::OffsetDateTime),
    /// Yes/no.
    Bool(bool),
}

/// One sheet: a name (at most 31 characters; longer names are cut), columns and rows.
#[derive(Clone, Debug)]
pub struct Sheet {
    /// Tab name.
    pub name: String,
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

/// Why a workbook could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// The writer refused something (a cell, a name).
    #[error("writing the workbook: {0}")]
    Xlsx(#[from] XlsxError),
    /// A row with more or fewer cells than columns.
    #[error("row {row} of sheet {sheet:?} has {got} cells for {want} columns")]
    Shape {
        /// The sheet.
        sheet: String,
        /// The row (from 1, after the header).
        row: usize,
        /// Cells in it.
        got: usize,
        /// Columns.
        want: usize,
    },
}

fn excel_time(t: time::OffsetDateTime) -> Result<ExcelDateTime, XlsxError> {
    let t = t.to_offset(time::UtcOffset::UTC);
    ExcelDateTime::from_ymd(t.year() as u16, t.month() as u8, t.day())?.and_hms_milli(
        t.hour() as u16,
        t.minute(),
        t.second(),
        t.millisecond(),
    )
}

fn sheet_name(base: &str, part: usize) -> String {
    // Excel forbids these in tab names.
    let clean: String = base
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let suffix = if part == 0 {
        String::new()
    } else {
        format!(" ({})", part + 1)
    };
    let keep = 31 - suffix.chars().count();
    format!("{}{suffix}", clean.chars().take(keep).collect::<String>())
}

/// The workbook holding `sheets`, as `.xlsx` bytes.
pub fn workbook(sheets: &[Sheet]) -> Result<Vec<u8>, SheetError> {
    let mut wb = Workbook::new();
    let header = Format::new().set_bold();
    let date = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let code = Format::new().set_font_name("Consolas");
    for s in sheets {
        for (i, row) in s.rows.iter().enumerate() {
            if row.len() != s.columns.len() {
                return Err(SheetError::Shape {
                    sheet: s.name.clone(),
                    row: i + 1,
                    got: row.len(),
                    want: s.columns.len(),
                });
            }
        }
        let per_sheet = MAX_ROWS - 1;
        let parts = s.rows.len().div_ceil(per_sheet).max(1);
        for part in 0..parts {
            let ws = wb.add_worksheet();
            ws.set_name(sheet_name(&s.name, part))?;
            for (c, col) in s.columns.iter().enumerate() {
                let c = c as u16;
                ws.write_string_with_format(0, c, &col.name, &header)?;
                let width = match col.kind {
                    Kind::Code => 24.0,
                    Kind::DateTime => 20.0,
                    Kind::Integer => 12.0,
                    Kind::Bool => 8.0,
                    Kind::Text => (col.name.len() as f64 + 4.0).max(16.0),
                };
                ws.set_column_width(c, width)?;
            }
            ws.set_freeze_panes(1, 0)?;
            let rows = s.rows.iter().skip(part * per_sheet).take(per_sheet);
            let mut last = 0u32;
            for (r, row) in rows.enumerate() {
                let r = (r + 1) as u32;
                last = r;
                for (c, (cell, col)) in row.iter().zip(&s.columns).enumerate() {
                    let c = c as u16;
                    match cell {
                        Cell::Empty => {}
                        Cell::Text(t) if col.kind == Kind::Code => {
                            ws.write_string_with_format(r, c, t, &code)?;
                        }
                        Cell::Text(t) => {
                            ws.write_string(r, c, t)?;
                        }
                        Cell::Int(n) => {
                            ws.write_number(r, c, *n as f64)?;
                        }
                        Cell::DateTime(t) => {
                            ws.write_datetime_with_format(r, c, excel_time(*t)?, &date)?;
                        }
                        Cell::Bool(b) => {
                            ws.write_boolean(r, c, *b)?;
                        }
                    }
                }
            }
            if !s.columns.is_empty() {
                ws.autofilter(0, 0, last, (s.columns.len() - 1) as u16)?;
            }
        }
    }
    Ok(wb.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, Reader, Xlsx};

    fn read(bytes: Vec<u8>) -> Xlsx<std::io::Cursor<Vec<u8>>> {
        Xlsx::new(std::io::Cursor::new(bytes)).unwrap()
    }

    #[test]
    fn cells_keep_their_types_and_a_formula_looking_name_stays_text() {
        let t = time::macros::datetime!(2026-12-07 14:47:00.250 UTC);
        let bytes = workbook(&[Sheet {
            name: "Manifest".into(),
            columns: vec![
                Column::new("path", Kind::Text),
                Column::new("size", Kind::Integer),
                Column::new("created_at", Kind::DateTime),
                Column::new("on_hold", Kind::Bool),
                Column::new("sha256", Kind::Code),
            ],
            rows: vec![
                vec![
                    Cell::Text("=cmd|' /C calc'!A0".into()),
                    Cell::Int(3_145_728),
                    Cell::DateTime(t),
                    Cell::Bool(true),
                    Cell::Text("ab".repeat(32)),
                ],
                vec![
                    Cell::Text("b.csv".into()),
                    Cell::Int(0),
                    Cell::Empty,
                    Cell::Bool(false),
                    Cell::Empty,
                ],
            ],
        }])
        .unwrap();
        let mut x = read(bytes);
        let range = x.worksheet_range("Manifest").unwrap();
        assert_eq!(range.get((0, 0)), Some(&Data::String("path".into())));
        assert_eq!(
            range.get((1, 0)),
            Some(&Data::String("=cmd|' /C calc'!A0".into())),
            "text, never a formula"
        );
        assert_eq!(range.get((1, 1)), Some(&Data::Float(3_145_728.0)));
        match range.get((1, 2)) {
            Some(Data::DateTime(d)) => {
                let back = d.as_datetime().unwrap();
                assert_eq!(back.to_string(), "2026-12-07 14:47:00.250");
            }
            other => panic!("a date-time cell, got {other:?}"),
        }
        assert_eq!(range.get((1, 3)), Some(&Data::Bool(true)));
        assert_eq!(range.get((2, 3)), Some(&Data::Bool(false)));
        assert_eq!(range.get((1, 4)), Some(&Data::String("ab".repeat(32))));
    }

    #[test]
    fn a_row_of_the_wrong_shape_is_refused_and_long_names_are_cut() {
        let e = workbook(&[Sheet {
            name: "x".into(),
            columns: vec![Column::new("a", Kind::Text)],
            rows: vec![vec![]],
        }])
        .unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        assert_eq!(
            sheet_name("Audit: project/with?bad*chars and a very long name", 1)
                .chars()
                .count(),
            31
        );
        assert!(sheet_name("Audit", 1).ends_with(" (2)"));
    }
}

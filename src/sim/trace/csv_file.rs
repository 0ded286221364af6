//! The CSV files of the traces, read one record at a time, with what an error needs to name the
//! file, the line and the column.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{io_error, Column, TraceError};

/// A CSV file read one record at a time into a reused buffer, with the header kept for errors.
pub(super) struct CsvFile {
    pub(super) path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    fields: Vec<Range<usize>>,
    line: u64,
    pub(super) header: Vec<String>,
}

impl CsvFile {
    /// Opens `path` and reads its header; `expected` describes the format for errors.
    pub(super) fn open(path: &Path, expected: &str) -> Result<CsvFile, TraceError> {
        let file = File::open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                TraceError::MissingFile {
                    file: path.to_path_buf(),
                    expected: expected.to_string(),
                }
            } else {
                io_error(path, e)
            }
        })?;
        let mut csv = CsvFile {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 16, file),
            buf: Vec::new(),
            fields: Vec::new(),
            line: 0,
            header: Vec::new(),
        };
        if !csv.next_record()? {
            return Err(TraceError::Line {
                file: csv.path,
                line: 1,
                message: format!("the file is empty; expected a header of {expected}"),
            });
        }
        let text = std::str::from_utf8(&csv.buf)
            .map_err(|_| csv.line_error("the header is not UTF-8 text".to_string()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        csv.header = text
            .split(',')
            .map(|name| unquote_str(name.trim()).to_string())
            .collect();
        Ok(csv)
    }

    /// Reads the next non-blank line into the buffer, without its line ending. False at the end.
    pub(super) fn next_record(&mut self) -> Result<bool, TraceError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| io_error(&self.path, e))?;
            if n == 0 {
                return Ok(false);
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }

    /// Splits the current record into fields and checks that there are as many as header
    /// columns (one extra empty field, from a trailing comma, is tolerated).
    pub(super) fn split(&mut self) -> Result<(), TraceError> {
        self.fields.clear();
        let mut start = 0;
        for (i, &b) in self.buf.iter().enumerate() {
            if b == b',' {
                self.fields.push(start..i);
                start = i + 1;
            }
        }
        self.fields.push(start..self.buf.len());
        if self.fields.len() == self.header.len() + 1
            && self.fields.last().is_some_and(|r| r.is_empty())
        {
            self.fields.pop();
        }
        if self.fields.len() != self.header.len() {
            return Err(self.line_error(format!(
                "expected {} fields as in the header, found {}",
                self.header.len(),
                self.fields.len()
            )));
        }
        Ok(())
    }

    /// Field `i` of the current record, trimmed and unquoted.
    fn field(&self, i: usize) -> &[u8] {
        unquote(self.buf[self.fields[i].clone()].trim_ascii())
    }

    pub(super) fn text(&self, i: usize) -> Result<&str, TraceError> {
        std::str::from_utf8(self.field(i))
            .map_err(|_| self.cell_error(i, "expected UTF-8 text".to_string()))
    }

    /// A non-empty text field (an id).
    pub(super) fn id(&self, i: usize) -> Result<&str, TraceError> {
        let text = self.text(i)?;
        if text.is_empty() {
            return Err(self.cell_error(i, "expected an id, found an empty field".to_string()));
        }
        Ok(text)
    }

    pub(super) fn whole(&self, i: usize) -> Result<u64, TraceError> {
        let field = self.field(i);
        parse_whole(field).ok_or_else(|| {
            self.cell_error(
                i,
                format!("expected a whole number, found {}", shown(field)),
            )
        })
    }

    pub(super) fn number(&self, i: usize) -> Result<f64, TraceError> {
        let field = self.field(i);
        std::str::from_utf8(field)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                self.cell_error(
                    i,
                    format!("expected a non-negative number, found {}", shown(field)),
                )
            })
    }

    pub(super) fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub(super) fn require(&self, name: &str, expected: &str) -> Result<usize, TraceError> {
        self.column(name).ok_or_else(|| TraceError::MissingColumn {
            file: self.path.clone(),
            column: name.to_string(),
            expected: expected.to_string(),
        })
    }

    pub(super) fn cell_error(&self, i: usize, message: String) -> TraceError {
        let column = match self.header.get(i) {
            Some(name) if !name.is_empty() => Column::Name(name.clone()),
            _ => Column::Index(i + 1),
        };
        TraceError::Cell {
            file: self.path.clone(),
            line: self.line,
            column,
            message,
        }
    }

    pub(super) fn line_error(&self, message: String) -> TraceError {
        TraceError::Line {
            file: self.path.clone(),
            line: self.line,
            message,
        }
    }
}

fn unquote(field: &[u8]) -> &[u8] {
    match field {
        [b'"', inner @ .., b'"'] => inner,
        _ => field,
    }
}

fn unquote_str(field: &str) -> &str {
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

/// A field as an error message shows it: quoted, escaped, and cut after 40 characters.
pub(super) fn shown(field: &[u8]) -> String {
    let text = String::from_utf8_lossy(field);
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut:?}...")
    } else {
        format!("{text:?}")
    }
}

/// Digits only, no sign, no fraction; `None` on anything else or on overflow.
pub(super) fn parse_whole(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in field {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

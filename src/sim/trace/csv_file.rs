//! The CSV files of the traces, read one record at a time with the `csv` crate, with what an
//! error needs to name the file, the line and the column.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use csv::{ByteRecord, Reader, ReaderBuilder, Terminator};

use super::{io_error, Column, TraceError};

/// A CSV file read one record at a time into a reused record, with the header kept for errors.
///
/// The dialect is RFC 4180 with the leniencies these traces need: `\n` or `\r\n` line endings,
/// a UTF-8 byte order mark, blank lines (skipped), spaces around fields (trimmed), and one
/// trailing comma. Every record must have as many fields as the header.
pub(super) struct CsvFile {
    pub(super) path: PathBuf,
    reader: Reader<io::Chain<File, &'static [u8]>>,
    record: ByteRecord,
    /// The 1-based line of the current record (of its last line, if a quoted field spans lines).
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
        // Only `\n` ends a record, and one more is appended, so every record ends with a `\n`
        // that the reader has counted when it returns the record: its line is the reader's less
        // one. A `\r` before the `\n` stays in the last field, and trimming removes it.
        let reader = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(file.chain(&b"\n"[..]));
        let mut csv = CsvFile {
            path: path.to_path_buf(),
            reader,
            record: ByteRecord::new(),
            line: 0,
            header: Vec::new(),
        };
        if !csv.next_nonblank()? {
            return Err(TraceError::Line {
                file: csv.path,
                line: 1,
                message: format!("the file is empty; expected a header of {expected}"),
            });
        }
        csv.header = csv
            .record
            .iter()
            .map(|name| std::str::from_utf8(name.trim_ascii()).map(str::to_string))
            .collect::<Result<_, _>>()
            .map_err(|_| csv.line_error("the header is not UTF-8 text".to_string()))?;
        Ok(csv)
    }

    /// Reads the next record, and checks that it has as many fields as the header (one extra
    /// empty field, from a trailing comma, is tolerated). False at the end.
    pub(super) fn next_record(&mut self) -> Result<bool, TraceError> {
        if !self.next_nonblank()? {
            return Ok(false);
        }
        let (found, expected) = (self.record.len(), self.header.len());
        let trailing_comma = found == expected + 1 && self.field(expected).is_empty();
        if found != expected && !trailing_comma {
            return Err(self.line_error(format!(
                "expected {expected} fields as in the header, found {found}"
            )));
        }
        Ok(true)
    }

    /// Reads the next record that is not a blank line. False at the end.
    fn next_nonblank(&mut self) -> Result<bool, TraceError> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => return Err(self.read_error(e)),
            }
            self.line = self.reader.position().line() - 1;
            // The reader skips empty lines itself, but not those of spaces or a lone `\r`.
            let blank = self.record.len() == 1 && self.field(0).is_empty();
            if !blank {
                return Ok(true);
            }
        }
    }

    /// A failed read as an I/O error of the file: a flexible reader of byte records fails on
    /// nothing else.
    fn read_error(&self, e: csv::Error) -> TraceError {
        let source = match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
        };
        io_error(&self.path, source)
    }

    /// Field `i` of the current record, trimmed.
    fn field(&self, i: usize) -> &[u8] {
        self.record[i].trim_ascii()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::testing::{temp_dir, write};

    /// The lines and first fields of every record after the header.
    fn records(csv: &mut CsvFile) -> Result<Vec<(u64, String)>, TraceError> {
        let mut seen = Vec::new();
        while csv.next_record()? {
            seen.push((csv.line, csv.text(0)?.to_string()));
        }
        Ok(seen)
    }

    #[test]
    fn lines_count_as_in_the_file_whatever_the_line_endings() {
        let dir = temp_dir("csv");
        let path = dir.join("t.csv");
        write(
            &dir,
            "t.csv",
            "\u{feff}\"a\", b ,c\r\n\r\nx,1,2\n\n   \nq,\" 3\",4,\r\n\"z\",\"5,6\",7",
        );
        let mut csv = CsvFile::open(&path, "a,b,c").unwrap();
        assert_eq!(csv.header, ["a", "b", "c"], "BOM, quotes and spaces go");
        let mut seen = Vec::new();
        while csv.next_record().unwrap() {
            seen.push((
                csv.line,
                csv.text(0).unwrap().to_string(),
                csv.text(1).unwrap().to_string(),
            ));
        }
        assert_eq!(
            seen,
            [
                (3, "x".to_string(), "1".to_string()),
                (6, "q".to_string(), "3".to_string()),
                (7, "z".to_string(), "5,6".to_string()),
            ],
            "blank lines skipped but counted, a trailing comma tolerated, the last line unended"
        );
    }

    #[test]
    fn a_short_record_or_an_empty_file_names_its_line() {
        let dir = temp_dir("csv");
        let path = dir.join("t.csv");
        write(&dir, "t.csv", "a,b\r\n1,2\r\n\r\n3\r\n");
        let mut csv = CsvFile::open(&path, "a,b").unwrap();
        let message = records(&mut csv).unwrap_err().to_string();
        assert!(
            message.ends_with("t.csv line 4: expected 2 fields as in the header, found 1"),
            "{message}"
        );

        write(&dir, "t.csv", "\n  \n");
        let message = CsvFile::open(&path, "a,b").err().unwrap().to_string();
        assert!(
            message.ends_with("t.csv line 1: the file is empty; expected a header of a,b"),
            "{message}"
        );
    }
}

//! The history file: one CSV record per invocation made for a client, with its REPORT line's
//! figures (the columns are `sim::trace::HISTORY_COLUMNS`), for `warmgate advise` and
//! `warmgate simulate --trace`.
//!
//! The request path only queues a record (`try_send`, never waiting); a background task
//! appends them and flushes whenever the queue is empty. A record that finds the queue full
//! or the file at `max_bytes` is dropped and counted: the history is a sample for planning,
//! never a reason to slow a request.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::clock::Time;
use crate::config::HistorySection;
use crate::lambda::report::Report;
use crate::platform::spec::Architecture;
use crate::sim::trace::HISTORY_COLUMNS;
use crate::telemetry;

/// Records queued for the writer before new ones are dropped.
const QUEUE: usize = 16_384;

/// One invocation, as the history keeps it.
#[derive(Debug, Clone)]
pub struct Record {
    pub function: String,
    pub target: String,
    /// When it was sent, on the gateway's clock.
    pub at: Time,
    pub report: Report,
    pub architecture: Architecture,
}

/// The history's queue; the file is the writer's.
pub struct History {
    tx: mpsc::Sender<Record>,
    rx: Mutex<Option<mpsc::Receiver<Record>>>,
    path: PathBuf,
    max_bytes: u64,
    /// The Unix time of the gateway clock's origin, in ms: records carry wall-clock times
    /// (the gateway's clock runs at the backend's time scale; so do the records).
    origin_unix_ms: f64,
}

impl History {
    /// A history for `section`, if it names a file; `now` is the gateway clock's time.
    pub fn new(section: &HistorySection, now: Time) -> Option<Self> {
        let path = section.path.clone()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Some(Self {
            tx,
            rx: Mutex::new(Some(rx)),
            path,
            max_bytes: section.max_bytes,
            origin_unix_ms: (unix.saturating_sub(now)).as_secs_f64() * 1e3,
        })
    }

    /// Queues a record; drops it (counted) when the writer is behind.
    pub fn record(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            telemetry::history_dropped("behind");
        }
    }

    /// The writer: appends queued records until the gateway stops. Taken once.
    pub fn writer(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let mut rx = self.rx.lock().take()?;
        let (path, max_bytes, origin) = (self.path.clone(), self.max_bytes, self.origin_unix_ms);
        Some(async move {
            let mut file = match HistoryFile::open(&path, max_bytes) {
                Ok(file) => file,
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "history not kept: cannot open its file");
                    while rx.recv().await.is_some() {
                        telemetry::history_dropped("error");
                    }
                    return;
                }
            };
            tracing::info!(path = %path.display(), "history kept");
            while let Some(record) = rx.recv().await {
                file.append(&record, origin);
                while let Ok(record) = rx.try_recv() {
                    file.append(&record, origin);
                }
                file.flush();
            }
        })
    }
}

/// The open file, its size, and whether it has said it is full.
struct HistoryFile {
    out: std::io::BufWriter<std::fs::File>,
    bytes: u64,
    max_bytes: u64,
    written: u64,
    full_logged: bool,
}

impl HistoryFile {
    /// Opens `path` for appending, writing the header to a new or empty file.
    fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let bytes = file.metadata()?.len();
        let mut history = Self {
            out: std::io::BufWriter::new(file),
            bytes,
            max_bytes,
            written: 0,
            full_logged: false,
        };
        if bytes == 0 {
            let header = HISTORY_COLUMNS.join(",") + "\n";
            history.out.write_all(header.as_bytes())?;
            history.bytes += header.len() as u64;
        }
        Ok(history)
    }

    fn append(&mut self, record: &Record, origin_unix_ms: f64) {
        let line = line(record, origin_unix_ms);
        if self.bytes + line.len() as u64 > self.max_bytes {
            if !self.full_logged {
                tracing::warn!(
                    max_bytes = self.max_bytes,
                    "history file full: further records are dropped"
                );
                self.full_logged = true;
            }
            telemetry::history_dropped("full");
            return;
        }
        match self.out.write_all(line.as_bytes()) {
            Ok(()) => {
                self.bytes += line.len() as u64;
                self.written += 1;
            }
            Err(error) => {
                tracing::warn!(%error, "history record not written");
                telemetry::history_dropped("error");
            }
        }
    }

    fn flush(&mut self) {
        if let Err(error) = self.out.flush() {
            tracing::warn!(%error, "history not flushed");
        }
        telemetry::history_written(std::mem::take(&mut self.written));
    }
}

/// A record as a CSV line. Function and target names are Lambda names (letters, digits,
/// `-`, `_`, `$`): nothing to quote.
fn line(record: &Record, origin_unix_ms: f64) -> String {
    let report = &record.report;
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    format!(
        "{},{},{:.0},{},{},{},{},{},{},{}\n",
        record.function,
        record.target,
        origin_unix_ms + record.at.as_secs_f64() * 1e3,
        ms(report.duration),
        report.billed_duration.as_millis(),
        report.memory_size_mb,
        report.max_memory_used_mb,
        report.init_duration.map(ms).unwrap_or_default(),
        report.restore_duration.map(ms).unwrap_or_default(),
        record.architecture.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(init: Option<u64>) -> Report {
        Report {
            request_id: "r".into(),
            duration: Duration::from_micros(41_200),
            billed_duration: Duration::from_millis(42),
            memory_size_mb: 1024,
            max_memory_used_mb: 180,
            init_duration: init.map(Duration::from_millis),
            restore_duration: None,
            billed_restore_duration: None,
        }
    }

    #[tokio::test]
    async fn records_are_appended_under_one_header_and_read_back_as_a_trace() {
        let dir =
            std::env::temp_dir().join(format!("warmgate-history-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("warmgate-history.csv");
        let section = HistorySection {
            path: Some(path.clone()),
            max_bytes: 1 << 20,
        };
        for run in 0..2u64 {
            let history = History::new(&section, Duration::ZERO).unwrap();
            let writer = tokio::spawn(history.writer().unwrap());
            history.record(Record {
                function: "embed".into(),
                target: "live".into(),
                at: Duration::from_secs(run),
                report: report((run == 0).then_some(1500)),
                architecture: Architecture::Arm64,
            });
            drop(history);
            writer.await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("function,target").count(), 1, "{text}");
        let history = crate::sim::trace::read_history(&path).unwrap();
        let (trace, observed) = (history.trace, history.observed);
        assert_eq!(trace.functions.len(), 1);
        assert_eq!(trace.functions[0].arrivals.len(), 2);
        assert_eq!(trace.functions[0].lambda.architecture, Architecture::Arm64);
        assert_eq!(observed[0].inits_ms, [1500.0]);
        assert_eq!(observed[0].max_memory_used_mb, 180);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_full_file_drops_records_rather_than_grow() {
        let dir =
            std::env::temp_dir().join(format!("warmgate-history-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("warmgate-history.csv");
        let section = HistorySection {
            path: Some(path.clone()),
            max_bytes: 300,
        };
        let history = History::new(&section, Duration::ZERO).unwrap();
        let writer = tokio::spawn(history.writer().unwrap());
        for i in 0..20 {
            history.record(Record {
                function: "embed".into(),
                target: "live".into(),
                at: Duration::from_secs(i),
                report: report(None),
                architecture: Architecture::X86_64,
            });
        }
        drop(history);
        writer.await.unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 300, "{size} bytes");
        let trace = crate::sim::trace::read_history(&path).unwrap().trace;
        assert!((1..20).contains(&trace.functions[0].arrivals.len()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

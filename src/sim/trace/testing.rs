//! Helpers of the trace readers' tests: scratch directories and the real traces.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub(super) const MIN: Duration = Duration::from_secs(60);

/// A fresh, empty directory under the system's temp dir, removed when dropped.
pub(super) struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) fn temp_dir(name: &str) -> Scratch {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "warmgate-trace-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

pub(super) fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

/// A directory of `../shared/traces`. Panics when it is absent rather than skip: a test that
/// passes without reading the real trace would vouch for a reader it never ran.
pub(super) fn shared(sub: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/traces")
        .join(sub);
    assert!(
        path.exists(),
        "{} is absent: the real traces are expected at ../shared/traces beside the repository",
        path.display()
    );
    path
}

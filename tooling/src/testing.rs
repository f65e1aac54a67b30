//! What unit tests share: the team's offline scanner data, a lock for the
//! tests that run trivy (they share its cache and the scan's output
//! folder), and scratch directories. The tests of a real image are the
//! xtask's (xtask/tests/).

use std::sync::{Mutex, MutexGuard};

mod shared_data;
pub use shared_data::shared_data;

static TRIVY: Mutex<()> = Mutex::new(());

/// Held by every test that runs trivy or writes under target/xtask/scan.
pub fn trivy_lock() -> MutexGuard<'static, ()> {
    TRIVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A directory of the test's own, removed when dropped, on failure too.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

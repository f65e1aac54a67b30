//! Where the scanners' offline databases are, for the unit tests and the
//! xtask's own tests alike (xtask/tests/scanners.rs includes this file).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The offline stand-ins for the scanners' databases: `$XTASK_SHARED_DATA`,
/// else a `shared/data` folder beside the checkout or above it. A test
/// that needs them and finds none fails, saying where it looked: it never
/// passes without having run. `XTASK_ALLOW_MISSING_DATA=1` turns that into
/// a visible skip, for a machine that has no copy.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let found = std::env::var_os("XTASK_SHARED_DATA")
        .map(PathBuf::from)
        .or_else(|| {
            root.ancestors()
                .skip(1)
                .map(|dir| dir.join("shared/data"))
                .find(|dir| dir.join("trivy-db").is_dir())
        });
    if found.is_none() {
        let message = format!(
            "{test}: no shared/data (trivy-db, advisory-db.bundle) beside the checkout or above it; set XTASK_SHARED_DATA"
        );
        assert!(
            std::env::var_os("XTASK_ALLOW_MISSING_DATA").is_some(),
            "{message} (or XTASK_ALLOW_MISSING_DATA=1 to skip)"
        );
        // Straight to stderr: the test harness hides what `eprintln!`
        // writes for a passing test, and a skip must be seen.
        let _ = writeln!(std::io::stderr(), "SKIPPED {message}");
    }
    found
}

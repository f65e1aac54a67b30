//! `setup --reproducible-engine`: Debian 13's docker engine (26.1, whose
//! BuildKit rewrites layer times), with the containerd image store (which
//! exports OCI archives), beside the host's own engine.
//!
//! It runs in a network namespace of its own, so that it never touches the
//! host engine's bridge or firewall rules: it builds, and the host engine
//! runs containers. It runs at the lowest CPU priority (`nice -n 19`), so
//! that its builds yield to the containers `ci` times beside them. Its `.deb` needs only what Debian 12 has (libc6 2.34,
//! containerd, runc), so it is unpacked, not installed.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use xshell::Shell;

use super::apt::ForeignSuite;
use crate::docker::build::REPRODUCIBLE_ENGINE_HOST;
use crate::wait::{self, Poll};

/// Where the unpacked engine lives: outside `target/`, so that `cargo
/// clean` cannot remove a running daemon's binary.
const INSTALL_DIR: &str = "/opt/xtask-engine";
const DATA_ROOT: &str = "/var/lib/xtask-docker";
const EXEC_ROOT: &str = "/run/xtask-docker";
const PID_FILE: &str = "/run/xtask-docker.pid";
const DAEMON_JSON: &str = r#"{"features":{"containerd-snapshotter":true}}"#;
const START_TIMEOUT: Duration = Duration::from_mins(1);

/// The engine's version when it answers, else why not.
pub use crate::docker::build::reproducible_engine as probe;

/// Unpacks the engine when it is not there, and starts it when it does not
/// answer. Does nothing when it answers.
pub fn ensure(sh: &Shell, apt_dir: &Path, log_path: &Path) -> anyhow::Result<String> {
    if let Ok(version) = probe(sh) {
        return Ok(version);
    }
    let dockerd = Path::new(INSTALL_DIR).join("usr/sbin/dockerd");
    if !dockerd.exists() {
        ForeignSuite::new(apt_dir, "trixie").unpack(sh, "docker.io", Path::new(INSTALL_DIR))?;
    }
    let config = Path::new(INSTALL_DIR).join("daemon.json");
    std::fs::write(&config, DAEMON_JSON)
        .with_context(|| format!("cannot write {}", config.display()))?;
    // At the lowest CPU priority: its builds (`reproducible`, the
    // multi-platform publish) run beside the container proofs, whose
    // timings a build on every core would otherwise starve.
    let command: Vec<OsString> = [
        "nice".into(),
        "-n".into(),
        "19".into(),
        "unshare".into(),
        "--net".into(),
        dockerd.into_os_string(),
        "--config-file".into(),
        config.into_os_string(),
    ]
    .into_iter()
    .chain(
        [
            "--host",
            REPRODUCIBLE_ENGINE_HOST,
            "--data-root",
            DATA_ROOT,
            "--exec-root",
            EXEC_ROOT,
            "--pidfile",
            PID_FILE,
        ]
        .map(OsString::from),
    )
    .collect();
    super::start_detached(sh, &command, log_path)?;
    eprintln!(
        "setup: reproducible engine started on {REPRODUCIBLE_ENGINE_HOST}, logging to {}",
        log_path.display()
    );
    wait::until(START_TIMEOUT, Duration::from_millis(500), || {
        Ok(match probe(sh) {
            Ok(version) => Poll::Ready(version),
            Err(reason) => Poll::Waiting(reason),
        })
    })
    .with_context(|| {
        format!(
            "the reproducible engine did not answer; see {}",
            log_path.display()
        )
    })
}

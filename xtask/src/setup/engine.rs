//! `setup --reproducible-engine`: Debian 13's docker engine (26.1, whose
//! BuildKit rewrites layer times), with the containerd image store (which
//! exports OCI archives), beside the host's own engine.
//!
//! It runs in a network namespace of its own, so that it never touches the
//! host engine's bridge or firewall rules: it builds, and the host engine
//! runs containers. Its `.deb` needs only what Debian 12 has (libc6 2.34,
//! containerd, runc), so it is unpacked, not installed.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use xshell::{Shell, cmd};

use super::apt::ForeignSuite;
use crate::docker::build::REPRODUCIBLE_ENGINE_HOST;
use crate::process;
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
        let trixie = ForeignSuite::new(apt_dir, "trixie");
        trixie.update(sh)?;
        let deb = trixie.download(sh, "docker.io")?;
        sh.create_dir(INSTALL_DIR)?;
        process::run(cmd!(sh, "dpkg-deb -x {deb} {INSTALL_DIR}"))
            .context("cannot unpack Debian 13's docker.io")?;
    }
    let config = Path::new(INSTALL_DIR).join("daemon.json");
    std::fs::write(&config, DAEMON_JSON)
        .with_context(|| format!("cannot write {}", config.display()))?;
    if let Some(dir) = log_path.parent() {
        sh.create_dir(dir)?;
    }
    let log =
        File::create(log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let socket = REPRODUCIBLE_ENGINE_HOST.trim_start_matches("unix://");
    let status = Command::new("setsid")
        .args(["--fork", "unshare", "--net"])
        .arg(&dockerd)
        .arg("--config-file")
        .arg(&config)
        .args(["--host", &format!("unix://{socket}")])
        .args(["--data-root", DATA_ROOT])
        .args(["--exec-root", EXEC_ROOT])
        .args(["--pidfile", PID_FILE])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("cannot run setsid and unshare (util-linux)")?;
    if !status.success() {
        anyhow::bail!("starting {} failed: {status}", dockerd.display());
    }
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

//! `setup --reproducible-engine`: Debian 13's docker engine (26.1, whose
//! BuildKit rewrites layer times), with the containerd image store (which
//! exports OCI archives), beside the host's own engine.
//!
//! It runs in a network namespace of its own, so that it never touches the
//! host engine's bridge or firewall rules: it builds, and the host engine
//! runs containers. It runs at the least CPU weight, so that its builds take
//! only what the host's work leaves (`ci` runs them beside the other builds
//! and the container proofs): the daemon and the containers its builds run
//! are in a cgroup of their own (`cgroup-parent`), marked idle, else of the
//! least weight there is. `nice -n 19` alone would not do: the kernel weighs
//! each session (autogroup) and each cgroup as one, whatever the nice value
//! of the processes inside.
//!
//! Its `.deb` needs only what Debian 12 has (libc6 2.34, containerd, runc),
//! so it is unpacked, not installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
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
/// The cgroup the daemon and its builds run in, at the least CPU weight.
const CGROUP: &str = "xtask-reproducible";
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
    let idle = idle_cgroup();
    // The containerd image store: it exports OCI archives.
    let mut daemon_json = serde_json::json!({"features": {"containerd-snapshotter": true}});
    if idle.is_some() {
        daemon_json["cgroup-parent"] = format!("/{CGROUP}").into();
        // A path, not a systemd slice: dockerd picks the systemd driver on
        // a cgroup v2 host run by systemd, which would refuse it.
        daemon_json["exec-opts"] = serde_json::json!(["native.cgroupdriver=cgroupfs"]);
    } else {
        eprintln!(
            "setup: cannot make the cgroup {CGROUP} (cgroups are not writable here); the reproducible engine runs at nice 19 only, and its builds may slow the host's"
        );
    }
    std::fs::write(&config, daemon_json.to_string())
        .with_context(|| format!("cannot write {}", config.display()))?;
    // At the least CPU weight: its builds (`reproducible`, the
    // multi-platform publish) run beside the other builds and the container
    // proofs, whose timings a build on every core would otherwise starve.
    // The shell puts itself in the cgroup, then becomes the daemon, so
    // that everything the daemon starts (containerd too) is in it.
    let in_cgroup: Vec<OsString> = idle.map_or_else(Vec::new, |procs| {
        vec![
            "sh".into(),
            "-c".into(),
            r#"echo $$ > "$0" && exec "$@""#.into(),
            procs.into_os_string(),
        ]
    });
    let command: Vec<OsString> = in_cgroup
        .into_iter()
        .chain([
            "nice".into(),
            "-n".into(),
            "19".into(),
            "unshare".into(),
            "--net".into(),
            dockerd.into_os_string(),
            "--config-file".into(),
            config.into_os_string(),
        ])
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

/// Makes the cgroup [`CGROUP`] idle, or where the kernel cannot, of the
/// least CPU weight, and returns its `cgroup.procs`; `None` where no cgroup
/// can be made or weighed here.
fn idle_cgroup() -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    // cgroup v2 has one hierarchy, and lists its controllers at its root.
    let (dir, weight) = if root.join("cgroup.controllers").exists() {
        // The cpu controller must be handed down to the root's children.
        let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
        (root.join(CGROUP), ("cpu.weight", "1"))
    } else {
        (root.join("cpu").join(CGROUP), ("cpu.shares", "2"))
    };
    std::fs::create_dir_all(&dir).ok()?;
    // SCHED_IDLE for the whole group (Linux 5.15 and later): it runs only
    // when nothing else would. An idle group refuses a weight, so the
    // least weight is what older kernels get.
    let idle = std::fs::write(dir.join("cpu.idle"), "1").is_ok()
        || std::fs::read_to_string(dir.join("cpu.idle")).is_ok_and(|text| text.trim() == "1");
    (idle || std::fs::write(dir.join(weight.0), weight.1).is_ok()).then(|| dir.join("cgroup.procs"))
}

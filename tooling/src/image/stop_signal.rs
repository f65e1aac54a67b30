//! The stop signal, proved rather than read: conformance reads the image's
//! STOPSIGNAL line, this runs the image as production would, waits for its
//! readiness path, and `docker stop`s it. It must exit 0 before Docker's
//! kill: a service that ignores SIGTERM fails here, at build time, with
//! the cause.

use std::time::Duration;

use anyhow::Context;
use xshell::Shell;

use crate::backing::{self, Backing};
use crate::checks::Check;
use crate::docker::container::{RunSpec, Scope};
use crate::docker::hardening::Hardening;
use crate::docker::{Docker, ImageInspect};
use crate::metadata::Metadata;
use crate::output::duration as human;
use crate::readiness;

const NAME: &str = "stops on SIGTERM";
/// Names of everything the check creates start with this.
const PREFIX: &str = "xtask-image-stop";
const READY_GIVE_UP: Duration = Duration::from_secs(30);
/// `docker stop -t`: how long SIGTERM has before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// Runs the check on `image` (its id and inspection), with the manifest's
/// backing services and test settings; a run that cannot start fails it
/// with the reason. An image built for another platform cannot run here:
/// skipped, saying so. Backing services, when the manifest names any, are
/// a check of their own before it.
pub fn checks(
    sh: &Shell,
    docker: &Docker,
    (image, inspect): (&str, &ImageInspect),
    platform: Option<&str>,
    metadata: &Metadata,
) -> Vec<Check> {
    let expected = format!(
        "ready, then exit 0 on `docker stop` within {}",
        human(GRACE)
    );
    if let Some(platform) = platform.filter(|p| *p != crate::docker::host_platform()) {
        return vec![Check::skipped(
            NAME,
            expected,
            format!("built for {platform}, which this host cannot run"),
        )];
    }
    let (scope, _) = match Scope::open(docker, sh, PREFIX) {
        Ok(opened) => opened,
        Err(error) => return vec![Check::broken(NAME, expected, &error)],
    };
    let started = Backing::start(sh, docker, &scope, metadata);
    let mut checks: Vec<Check> = Backing::check_of(&started).into_iter().collect();
    checks.push(match &started {
        Ok(backing) => prove(sh, &scope, (image, inspect), metadata, backing, &expected)
            .unwrap_or_else(|error| Check::broken(NAME, expected, &error)),
        Err(_) => Check::skipped(NAME, expected, format!("not run: {}", backing::NOT_STARTED)),
    });
    let _ = scope.close(sh);
    checks
}

fn prove(
    sh: &Shell,
    scope: &Scope,
    (image, inspect): (&str, &ImageInspect),
    metadata: &Metadata,
    backing: &Backing,
    expected: &str,
) -> anyhow::Result<Check> {
    let hardening = Hardening::production("256m", "1");
    // The data directory on a volume of the scope, as in production (it
    // takes the image's ownership, which a tmpfs would not); any other
    // declared VOLUME on a tmpfs. Nothing outlives the check.
    let data = scope.volume(sh, "data")?;
    let scratch: Vec<&str> = inspect
        .config
        .volumes
        .iter()
        .flat_map(|v| v.keys())
        .map(String::as_str)
        .filter(|v| *v != metadata.data_dir)
        .collect();
    let spec = RunSpec {
        image,
        role: "stop",
        hardening: &hardening,
        volume: Some((&data, &metadata.data_dir)),
        scratch,
        publish: Some(metadata.port),
        network: backing.network(),
        env: backing.env(metadata),
        health: None,
        entrypoint: None,
        command: Vec::new(),
    };
    eprintln!("image: proving the stop signal: run, wait for readiness, docker stop");
    let (container, started) = scope.start(sh, &spec)?;
    let target = readiness::Target {
        address: readiness::Address::Published(metadata.port),
        ready_path: &metadata.ready_path,
        image: inspect,
        give_up: READY_GIVE_UP,
    };
    readiness::wait(sh, scope, &container, &target, started)
        .context("never ready, so SIGTERM could not be tried")?;
    let latency = scope.stop(sh, &container, GRACE)?;
    let state = scope.inspect(sh, &container)?.state;
    let passed = state.exit_code == 0 && !state.oom_killed && latency < GRACE;
    Ok(Check::judge(
        NAME,
        passed,
        format!("exit {} after {}", state.exit_code, human(latency)),
        expected,
    )
    .because(if state.exit_code == 0 {
        format!("exit 0, but only {} after SIGTERM", human(latency))
    } else {
        state.story(GRACE)
    }))
}

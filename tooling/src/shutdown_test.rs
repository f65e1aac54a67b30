//! `cargo xtask shutdown-test`: runs the image as production should and
//! proves its lifecycle. Each step adds its checks; a step that cannot run
//! fails its check with the reason, and the next step still runs.
//!
//! 1. `lifecycle.rs`: a hardened start, readiness and liveness, Docker's
//!    HEALTHCHECK, writes to the data volume, an idle stop;
//! 2. `drain.rs`: a restart, then SIGTERM under load: every request in
//!    flight answered, readiness 503, nothing dropped;
//! 3. `lifecycle.rs` again: a second restart, every acknowledged write there;
//! 4. `deadline.rs`: a request that never completes cannot hold the
//!    container past `SHUTDOWN_TIMEOUT`;
//! 5. `health_check.rs`: the image's health probe fails, in time, with
//!    nothing listening and against a listener that never answers
//!    (`silent_server.rs`);
//! 6. cleanup: nothing the run created is left behind. `summary.rs` shows
//!    the settings, the checks and the figures.

mod deadline;
mod drain;
mod health_check;
mod lifecycle;
mod silent_server;
mod summary;
mod traffic;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use xshell::Shell;

use crate::backing::Backing;
use crate::checks::{Check, Status, Verdict};
use crate::docker::container::{
    Container, HealthOverride, Network, Removed, RunSpec, Scope, State, env_duration,
};
use crate::docker::hardening::Hardening;
use crate::docker::{Docker, ImageInspect};
use crate::flags;
use crate::http::Client;
use crate::last_build;
use crate::metadata::Metadata;
use crate::output::{self, duration as human};
use crate::readiness;
use crate::wait::{self, Poll};
use summary::Figures;

/// Names of everything the test creates start with this.
const PREFIX: &str = "xtask-shutdown-test";
/// The start-up budget: `docker run` to the first ready answer.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// How long to keep waiting past the budget, to still report a figure.
const READY_GIVE_UP: Duration = Duration::from_secs(30);
const HEALTHY_GIVE_UP: Duration = Duration::from_mins(1);
/// `docker stop` waits this much longer than `SHUTDOWN_TIMEOUT`, so a kill
/// by docker (exit 137) is never mistaken for the server's own deadline.
const STOP_MARGIN: Duration = Duration::from_secs(10);
/// How far past `SHUTDOWN_TIMEOUT` the deadline exit may come.
const DEADLINE_SLACK: Duration = Duration::from_secs(2);
const WRITES_BEFORE_DRAIN: usize = 3;
/// Steady traffic before the signal, so the stream is flowing when it lands.
const LOAD_LEAD: Duration = Duration::from_millis(300);
const EXIT_KILLED: i64 = 137;

impl flags::ShutdownTest {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        if self.slow_uploads == 0 {
            bail!("--slow-uploads must be at least 1: the drain needs requests in flight");
        }
        if self.shutdown_timeout < Duration::from_secs(1) || self.deadline < Duration::from_secs(1)
        {
            bail!("--shutdown-timeout and --deadline must be at least 1s");
        }
        if self.shutdown_delay >= self.shutdown_timeout {
            bail!(
                "--shutdown-delay ({}) must be shorter than --shutdown-timeout ({}): the delay is part of it",
                human(self.shutdown_delay),
                human(self.shutdown_timeout)
            );
        }
        let image_ref = last_build::resolve(&sh.current_dir(), self.image.as_deref())?;
        let docker = Docker::connect(sh)?;
        let image = docker.inspect_image(sh, &image_ref.reference)?;
        let (scope, swept) = Scope::open(&docker, sh, PREFIX)?;
        if swept != Removed::default() {
            progress(&format!(
                "removed {} containers and {} volumes left by an interrupted run",
                swept.containers, swept.volumes
            ));
        }
        let hardening = Hardening::production(&self.memory, &self.cpus);
        let backing = Backing::start(sh, &docker, &scope, metadata);
        let no_backing = Backing::default();
        let mut test = Test {
            sh,
            scope: &scope,
            flags: &self,
            metadata,
            image: &image_ref.reference,
            inspect: &image,
            hardening: &hardening,
            tag: format!("st{}-{}", std::process::id(), crate::git::unix_now()),
            checks: Vec::new(),
            figures: Figures::default(),
            blocked: None,
            not_run: None,
            backing: backing.as_ref().unwrap_or(&no_backing),
        };
        if let Some(check) = Backing::check_of(&backing) {
            test.push(check);
        }
        if backing.is_err() {
            test.blocked = Some(crate::backing::NOT_STARTED);
            test.not_run = test.blocked.map(str::to_owned);
        }
        if test.blocked.is_none() {
            test.lifecycle();
        }
        test.deadline();
        test.health_check_without_server();
        test.health_check_against_silent_server();
        test.list_not_run();
        let Test {
            mut checks,
            mut figures,
            ..
        } = test;
        let (removed, left) = scope.close(sh);
        figures.removed_containers = removed.containers;
        figures.removed_volumes = removed.volumes;
        checks.push(crate::docker::container::cleanup_check(
            removed.to_string(),
            &left,
        ));
        Ok(self.verdict(
            &image_ref.display_name(&image),
            &image,
            &hardening,
            &metadata.drain,
            checks,
            &figures,
        ))
    }

    fn health_override(&self) -> HealthOverride {
        HealthOverride {
            interval: self.health_interval,
            start_period: self.health_start_period,
        }
    }
}

struct Test<'a> {
    sh: &'a Shell,
    scope: &'a Scope,
    flags: &'a flags::ShutdownTest,
    metadata: &'a Metadata,
    image: &'a str,
    inspect: &'a ImageInspect,
    hardening: &'a Hardening,
    /// Makes this run's note titles unique.
    tag: String,
    checks: Vec<Check>,
    figures: Figures,
    /// Why the service cannot be started at all, once that is known (it
    /// never became ready, or a backing service did not start): the steps
    /// after it are not run rather than failed again.
    blocked: Option<&'static str>,
    backing: &'a Backing,
    /// Why a step stopped before its last check, for the checks it left.
    not_run: Option<String>,
}

/// Every check of a run, in order, with what it expects: one that no step
/// reached is listed as not run rather than left out.
const CHECKS: [(&str, &str); 13] = [
    ("hardened run", "the settings above, non-root"),
    ("start to ready", "ready within the start-up budget"),
    ("liveness", "200 from the health path"),
    ("start to healthy", "docker reports healthy"),
    ("idle stop", "exit 0 before docker's kill"),
    ("writes to the volume", "the volume's contents change"),
    (
        "drain: in-flight requests",
        "every request in flight at SIGTERM answered 2xx",
    ),
    (
        "drain: readiness answers 503",
        "503 while draining, not 200 again",
    ),
    ("drain: exit status", "exit 0"),
    ("drain: stop latency under load", "before docker's kill"),
    ("requests dropped", "0"),
    ("durability", "every 201 write there after a restart"),
    ("deadline", "non-zero exit before docker's kill"),
];

/// Why the checks after a broken one were not reached.
fn not_run_because(broken: &str) -> String {
    match broken {
        "start to ready" => "the service never became ready".to_owned(),
        other => format!("the step stopped at \"{other}\""),
    }
}

/// A check as the progress lines show it: `ok`, `FAIL` or `skipped`.
fn progress_line(check: &Check) -> String {
    let mark = match check.status {
        Status::Pass => "ok     ",
        Status::Fail => "FAIL   ",
        Status::Skipped => "skipped",
        Status::Cached => "cached ",
    };
    let account = if check.status == Status::Skipped {
        check.actual.as_deref().unwrap_or_default()
    } else {
        &check.measured
    };
    format!("{mark} {}: {account}", check.name)
}

/// A step that failed to run at all: the check it was measuring.
struct Broken {
    check: &'static str,
    expected: String,
    error: anyhow::Error,
}

trait BrokenContext<T> {
    fn broken(self, check: &'static str, expected: impl Into<String>) -> Result<T, Broken>;
}

impl<T> BrokenContext<T> for anyhow::Result<T> {
    fn broken(self, check: &'static str, expected: impl Into<String>) -> Result<T, Broken> {
        self.map_err(|error| Broken {
            check,
            expected: expected.into(),
            error,
        })
    }
}

impl<'a> Test<'a> {
    fn push(&mut self, check: Check) {
        progress(&progress_line(&check));
        self.checks.push(check);
    }

    /// A step that stopped early: its check fails with the cause, and the
    /// checks it never reached are listed as not run, with why.
    fn record_broken(&mut self, result: Result<(), Broken>) {
        if let Err(broken) = result {
            if broken.check == "start to ready" {
                self.blocked
                    .get_or_insert("the service never became ready (see \"start to ready\")");
            }
            let reason = not_run_because(broken.check);
            self.push(Check::broken(broken.check, broken.expected, &broken.error));
            self.not_run.get_or_insert(reason);
        }
    }

    /// The checks no step reached, as SKIPPED with the reason, in the
    /// order they run.
    fn list_not_run(&mut self) {
        let Some(reason) = self.not_run.clone() else {
            return;
        };
        // The backing services come first, as they ran.
        let mut ordered: Vec<Check> = self
            .checks
            .iter()
            .position(|c| c.name == crate::backing::CHECK)
            .map(|at| self.checks.remove(at))
            .into_iter()
            .collect();
        for (name, expected) in CHECKS {
            if let Some(at) = self.checks.iter().position(|c| c.name == name) {
                ordered.push(self.checks.remove(at));
            } else {
                let check = Check::skipped(name, expected, format!("not run: {reason}"));
                progress(&progress_line(&check));
                ordered.push(check);
            }
        }
        ordered.append(&mut self.checks);
        self.checks = ordered;
    }

    /// The image's VOLUMEs other than `except`: each gets a tmpfs, since
    /// docker would otherwise make an anonymous volume, which cannot be
    /// labelled and so could outlive an interrupted run.
    fn declared_volumes(&self, except: Option<&str>) -> Vec<&'a str> {
        let mut volumes: Vec<&'a str> = self
            .inspect
            .config
            .volumes
            .iter()
            .flat_map(|v| v.keys())
            .map(String::as_str)
            .filter(|v| Some(*v) != except)
            .collect();
        volumes.sort_unstable();
        volumes
    }

    fn grace(timeout: Duration) -> Duration {
        // `docker stop -t` takes whole seconds.
        Duration::from_secs(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)) + STOP_MARGIN
    }

    /// A container of the image under the production settings, with
    /// nothing published and the image's VOLUMEs on tmpfs.
    fn spec<'s>(&self, role: &'s str) -> RunSpec<'s>
    where
        'a: 's,
    {
        RunSpec {
            image: self.image,
            role,
            hardening: self.hardening,
            volume: None,
            scratch: self.declared_volumes(None),
            publish: None,
            network: Network::Bridge,
            env: Vec::new(),
            health: None,
            entrypoint: None,
            command: Vec::new(),
        }
    }

    /// The server, its data on the named `volume`, published on loopback.
    fn server_spec<'s>(
        &self,
        role: &'s str,
        volume: &'s str,
        shutdown: ShutdownSettings,
    ) -> RunSpec<'s>
    where
        'a: 's,
    {
        // The names the manifest gives the service's settings; none when it
        // has no such setting.
        let drain = &self.metadata.drain;
        // The manifest's settings first, so that `--env` overrides them.
        let mut env = self.backing.env(self.metadata);
        env.extend(self.flags.env.iter().cloned());
        if !drain.shutdown_timeout_env.is_empty() {
            env.push((
                drain.shutdown_timeout_env.clone(),
                env_duration(shutdown.timeout),
            ));
        }
        if !shutdown.delay.is_zero() && !drain.shutdown_delay_env.is_empty() {
            env.push((
                drain.shutdown_delay_env.clone(),
                env_duration(shutdown.delay),
            ));
        }
        RunSpec {
            volume: Some((volume, &self.metadata.data_dir)),
            scratch: self.declared_volumes(Some(&self.metadata.data_dir)),
            publish: Some(self.metadata.port),
            network: self.backing.network(),
            env,
            health: Some(self.flags.health_override()),
            ..self.spec(role)
        }
    }

    fn client(addr: SocketAddr) -> Client {
        Client::new(addr, Duration::from_secs(10))
    }

    /// Starts a server container and waits until it is ready.
    fn start_server(
        &mut self,
        role: &str,
        volume: &str,
        shutdown: ShutdownSettings,
    ) -> anyhow::Result<(Container, Instant, SocketAddr, Duration)> {
        let (container, started) = self.launch(role, volume, shutdown)?;
        let ready = self.wait_ready(&container, started)?;
        Ok((container, started, ready.addr, ready.after))
    }

    /// Starts a server container, without waiting for it.
    fn launch(
        &mut self,
        role: &str,
        volume: &str,
        shutdown: ShutdownSettings,
    ) -> anyhow::Result<(Container, Instant)> {
        progress(&format!("starting the server ({role})"));
        let spec = self.server_spec(role, volume, shutdown);
        self.scope.start(self.sh, &spec)
    }

    /// Waits until the readiness path answers 200 on the published port;
    /// fails with the container's exit code and log if it stops first.
    fn wait_ready(
        &mut self,
        container: &Container,
        started: Instant,
    ) -> anyhow::Result<readiness::Ready> {
        let target = readiness::Target {
            address: readiness::Address::Published(self.metadata.port),
            ready_path: &self.metadata.ready_path,
            image: self.inspect,
            give_up: READY_GIVE_UP,
        };
        let ready = readiness::wait(self.sh, self.scope, container, &target, started)?;
        self.figures
            .start_to_ready_ms
            .push(output::millis(ready.after));
        Ok(ready)
    }

    /// Polls docker until its HEALTHCHECK says `healthy`.
    fn wait_healthy(&self, container: &Container, started: Instant) -> anyhow::Result<Duration> {
        let bound = HEALTHY_GIVE_UP.saturating_sub(started.elapsed());
        wait::until(bound, Duration::from_millis(100), || {
            let state = self.scope.inspect(self.sh, container)?.state;
            match state.health_status() {
                Some("healthy") => return Ok(Poll::Ready(started.elapsed())),
                Some("unhealthy") => bail!("docker marked it unhealthy: {}", last_probe(&state)),
                None => bail!("the image has no HEALTHCHECK"),
                Some(_) => {}
            }
            if !state.running {
                bail!("the container exited with code {}", state.exit_code);
            }
            Ok(Poll::Waiting(format!(
                "{} ({})",
                state.health_status().unwrap_or("unknown"),
                last_probe(&state)
            )))
        })
    }
}

fn last_probe(state: &State) -> String {
    state
        .health
        .as_ref()
        .and_then(|h| h.log.last())
        .map_or_else(
            || "no probe has run".to_owned(),
            |p| {
                format!(
                    "last probe exit {}: {}",
                    p.exit_code,
                    output::plain(p.output.trim())
                )
            },
        )
}

/// A check the manifest says does not apply to this service: shown, never
/// a pass.
fn not_applicable(name: &str, expected: &str, why: &str) -> Check {
    Check::skipped(name, expected, format!("not applicable (manifest): {why}"))
}

/// A request that failed, as a verdict names it: `POST /api/v1/notes:
/// status 404`, or the reason it got no answer.
fn request_failed(method: &str, path: &str, what: &str) -> String {
    format!("{method} {path}: {what}")
}

/// The server's shutdown settings for one container.
#[derive(Debug, Clone, Copy)]
struct ShutdownSettings {
    /// `SHUTDOWN_TIMEOUT`: from the signal to exit, the delay included.
    timeout: Duration,
    /// `SHUTDOWN_DELAY`: not ready but serving, before the drain; 0 leaves
    /// it unset.
    delay: Duration,
}

impl ShutdownSettings {
    fn without_delay(timeout: Duration) -> Self {
        Self {
            timeout,
            delay: Duration::ZERO,
        }
    }
}

/// A progress line of this command's: [`crate::docker::container::progress`].
fn progress(text: &str) {
    crate::docker::container::progress("shutdown-test", text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_timeouts_are_written_as_the_server_reads_them() {
        assert_eq!(env_duration(Duration::from_secs(2)), "2s");
        assert_eq!(env_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn docker_waits_longer_than_the_servers_own_deadline() {
        assert_eq!(Test::grace(Duration::from_secs(2)), Duration::from_secs(12));
        assert_eq!(
            Test::grace(Duration::from_millis(1500)),
            Duration::from_secs(12)
        );
    }

    #[test]
    fn a_failed_request_names_its_method_path_and_status() {
        assert_eq!(
            request_failed("POST", "/api/v1/notes", "status 404"),
            "POST /api/v1/notes: status 404"
        );
        assert_eq!(
            request_failed("GET", "/ready", "connect: connection refused"),
            "GET /ready: connect: connection refused"
        );
    }
}

//! `cargo xtask shutdown-test`: runs the image as production should and
//! proves its lifecycle: hardened start, readiness, Docker's HEALTHCHECK, a
//! drain under load that loses nothing, durability across restarts, the
//! shutdown deadline, and the health check failing when it should.

mod health_check;
mod summary;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use xshell::Shell;

use crate::built_image;
use crate::checks::{self, Check};
use crate::container::{
    self, Container, Hardening, HealthOverride, Network, Removed, RunSpec, Scope, State,
};
use crate::docker::Docker;
use crate::docker::ImageInspect;
use crate::drain_load::{self, Acknowledged, Load, Plan};
use crate::flags;
use crate::loopback_http::{Client, Failure, Started};
use crate::metadata::Metadata;
use crate::output;
use crate::report::{self, duration as human};
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
const DATA_DIR: &str = "/data";
const NOTES_PATH: &str = "/api/v1/notes";
const WRITES_BEFORE_DRAIN: usize = 3;
/// Steady traffic before the signal, so the stream is flowing when it lands.
const LOAD_LEAD: Duration = Duration::from_millis(300);
const EXIT_KILLED: i64 = 137;

impl flags::ShutdownTest {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<()> {
        if self.slow_uploads == 0 {
            bail!("--slow-uploads must be at least 1: the drain needs requests in flight");
        }
        if self.shutdown_timeout < Duration::from_secs(1) || self.deadline < Duration::from_secs(1)
        {
            bail!("--shutdown-timeout and --deadline must be at least 1s");
        }
        let image_ref = built_image::resolve(&sh.current_dir(), self.image.as_deref())?;
        let docker = Docker::connect(sh)?;
        let image = docker.inspect_image(sh, &image_ref.reference)?;
        let (scope, swept) = Scope::open(&docker, sh, PREFIX)?;
        if swept != Removed::default() {
            progress(&format!(
                "removed {} containers and {} volumes left by an interrupted run",
                swept.containers, swept.volumes
            ));
        }
        let hardening = Hardening {
            memory: self.memory.clone(),
            cpus: self.cpus.clone(),
            pids_limit: 256,
            tmp_size: "16m".to_owned(),
        };
        let mut test = Test {
            sh,
            scope: &scope,
            flags: &self,
            metadata,
            image: &image_ref.reference,
            inspect: &image,
            hardening: &hardening,
            tag: format!("st{}-{}", std::process::id(), unix_seconds()),
            checks: Vec::new(),
            figures: Figures::default(),
        };
        test.lifecycle();
        test.deadline();
        test.health_check_without_server();
        test.health_check_against_silent_server();
        let Test {
            checks,
            mut figures,
            ..
        } = test;
        let (removed, left) = scope.close(sh);
        figures.removed_containers = removed.containers;
        figures.removed_volumes = removed.volumes;
        let mut checks = checks;
        checks.push(
            Check::judge(
                "cleanup",
                left.is_empty(),
                format!(
                    "removed {} containers, {} volumes",
                    removed.containers, removed.volumes
                ),
                "nothing left behind",
            )
            .because(format!("still present: {}", left.join(", "))),
        );
        let name = image_ref.display_name(&image);
        let health = image.config.healthcheck.clone().unwrap_or_default();
        if self.json {
            let json = serde_json::json!({
                "image": name,
                "image_id": image.id,
                "settings": self.settings_json(&hardening, &image, &health),
                "checks": checks,
                "figures": figures,
                "passed": checks.iter().all(|c| c.passed),
            });
            output::print_json(&json)?;
        } else {
            output::print(&self.render(&name, &image, &health, &hardening, &checks, &figures))?;
        }
        match checks::failure_line(&checks) {
            Some(line) => bail!("shutdown-test of {name}: {line}"),
            None => Ok(()),
        }
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
        let mark = if check.passed { "ok  " } else { "FAIL" };
        progress(&format!("{mark} {}: {}", check.name, check.measured));
        self.checks.push(check);
    }

    fn record_broken(&mut self, result: Result<(), Broken>) {
        if let Err(broken) = result {
            self.push(Check::broken(broken.check, broken.expected, &broken.error));
        }
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

    fn server_spec<'s>(
        &self,
        role: &'s str,
        volume: &'s str,
        shutdown_timeout: Duration,
    ) -> RunSpec<'s>
    where
        'a: 's,
    {
        RunSpec {
            image: self.image,
            role,
            hardening: self.hardening,
            volume: Some((volume, DATA_DIR)),
            scratch: self.declared_volumes(Some(DATA_DIR)),
            publish: Some(self.metadata.port),
            network: Network::Bridge,
            env: vec![(
                "SHUTDOWN_TIMEOUT".to_owned(),
                env_duration(shutdown_timeout),
            )],
            health: Some(self.flags.health_override()),
            entrypoint: None,
            command: Vec::new(),
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
        shutdown_timeout: Duration,
    ) -> anyhow::Result<(Container, Instant, SocketAddr, Duration)> {
        progress(&format!("starting the server ({role})"));
        let spec = self.server_spec(role, volume, shutdown_timeout);
        let (container, started) = self.scope.start(self.sh, &spec)?;
        let addr = self
            .scope
            .published_addr(self.sh, &container, self.metadata.port)?;
        let ready = self.wait_ready(&container, addr, started)?;
        self.figures.start_to_ready_ms.push(report::millis(ready));
        Ok((container, started, addr, ready))
    }

    /// Polls the readiness path until it answers 200; fails at once if the
    /// container exits.
    fn wait_ready(
        &self,
        container: &Container,
        addr: SocketAddr,
        started: Instant,
    ) -> anyhow::Result<Duration> {
        let client = Client::new(addr, Duration::from_secs(1));
        let path = &self.metadata.ready_path;
        let mut last: String;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match client.get(path) {
                Ok(response) if response.status == 200 => return Ok(started.elapsed()),
                Ok(response) => last = format!("status {}", response.status),
                Err(failure) => last = failure.reason,
            }
            if started.elapsed() > READY_GIVE_UP {
                bail!(
                    "{path} not ready after {} (last: {last}); logs: {}",
                    human(READY_GIVE_UP),
                    self.logs(container)
                );
            }
            if attempt.is_multiple_of(10) {
                let state = self.scope.inspect(self.sh, container)?.state;
                if !state.running {
                    let engine_error = if state.error.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", state.error)
                    };
                    bail!(
                        "the container exited with code {}{engine_error} before it was ready; logs: {}",
                        state.exit_code,
                        self.logs(container)
                    );
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls docker until its HEALTHCHECK says `healthy`.
    fn wait_healthy(&self, container: &Container, started: Instant) -> anyhow::Result<Duration> {
        loop {
            let state = self.scope.inspect(self.sh, container)?.state;
            match state.health_status() {
                Some("healthy") => return Ok(started.elapsed()),
                Some("unhealthy") => bail!("docker marked it unhealthy: {}", last_probe(&state)),
                None => bail!("the image has no HEALTHCHECK"),
                Some(_) => {}
            }
            if !state.running {
                bail!("the container exited with code {}", state.exit_code);
            }
            if started.elapsed() > HEALTHY_GIVE_UP {
                bail!(
                    "still {} after {} ({})",
                    state.health_status().unwrap_or("unknown"),
                    human(HEALTHY_GIVE_UP),
                    last_probe(&state)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self, container: &Container) -> String {
        let logs = self.scope.logs_tail(self.sh, container, 5);
        if logs.is_empty() {
            "(none)".to_owned()
        } else {
            logs.lines().collect::<Vec<_>>().join(" | ")
        }
    }

    /// Start, health, writes, idle stop, drain under load, durability.
    fn lifecycle(&mut self) {
        let result = self.try_lifecycle();
        self.record_broken(result);
    }

    fn try_lifecycle(&mut self) -> Result<(), Broken> {
        let hardened = "the settings above, non-root";
        let volume = self
            .scope
            .volume(self.sh, "data")
            .broken("hardened run", hardened)?;
        let shutdown_timeout = self.flags.shutdown_timeout;
        let (first, started, addr, ready) = self
            .start_server("first", &volume, shutdown_timeout)
            .broken("hardened run", hardened)?;
        self.check_hardening(&first)
            .broken("hardened run", hardened)?;
        self.push(Check::judge(
            "start to ready",
            ready < READY_WITHIN,
            human(ready),
            format!("< {}", human(READY_WITHIN)),
        ));
        self.check_liveness(addr);
        // A health check that never turns healthy fails its check; the
        // rest of the lifecycle can still be proved.
        let healthy = "docker reports healthy";
        match self.wait_healthy(&first, started) {
            Ok(to_healthy) => {
                self.figures.start_to_healthy_ms = Some(report::millis(to_healthy));
                self.push(Check::judge(
                    "start to healthy",
                    true,
                    human(to_healthy),
                    healthy,
                ));
            }
            Err(error) => self.push(Check::broken("start to healthy", healthy, &error)),
        }
        let mut acknowledged = self.writes_before_drain(addr);
        self.idle_stop(&first, shutdown_timeout)
            .broken("idle stop", "exit 0 before docker's kill")?;
        self.scope.remove(first);

        let drained = "every request in flight at SIGTERM answered 2xx";
        let (second, _, addr, _) = self
            .start_server("drain", &volume, shutdown_timeout)
            .broken("drain: in-flight requests", drained)?;
        acknowledged.extend(
            self.drain_under_load(&second, addr, shutdown_timeout)
                .broken("drain: in-flight requests", drained)?,
        );
        self.scope.remove(second);
        self.figures.acknowledged_writes = acknowledged.len();

        let survived = "every 201 write there after a restart";
        let (third, _, addr, _) = self
            .start_server("verify", &volume, shutdown_timeout)
            .broken("durability", survived)?;
        self.durability(addr, &acknowledged);
        self.scope.remove(third);
        Ok(())
    }

    /// The liveness path, which orchestrators probe, answers 200.
    fn check_liveness(&mut self, addr: SocketAddr) {
        let path = &self.metadata.health_path;
        let expected = format!("200 from {path}");
        let check = match Client::new(addr, Duration::from_secs(1)).get(path) {
            Ok(response) => Check::judge(
                "liveness",
                response.status == 200,
                format!("status {}", response.status),
                expected,
            ),
            Err(failure) => Check::judge("liveness", false, failure.reason, expected),
        };
        self.push(check);
    }

    fn check_hardening(&mut self, container: &Container) -> anyhow::Result<()> {
        let inspect = self.scope.inspect(self.sh, container)?;
        let gaps = inspect.hardening_gaps(DATA_DIR);
        let measured = if gaps.is_empty() {
            format!(
                "all in force, user {}, {} MiB, {} CPU",
                inspect.config.user,
                inspect.host_config.memory / (1 << 20),
                nanos_to_cpus(inspect.host_config.nano_cpus)
            )
        } else {
            gaps.join(", ")
        };
        self.push(Check::judge(
            "hardened run",
            gaps.is_empty(),
            measured,
            "the settings above, non-root",
        ));
        Ok(())
    }

    fn writes_before_drain(&mut self, addr: SocketAddr) -> Vec<Acknowledged> {
        let client = Self::client(addr);
        let mut acknowledged = Vec::new();
        let mut problems = Vec::new();
        for n in 0..WRITES_BEFORE_DRAIN {
            let title = format!("{}-before-{n}", self.tag);
            let body = "written before the drain".to_owned();
            let json = serde_json::json!({ "title": title, "body": body }).to_string();
            match client.post_json(NOTES_PATH, &json) {
                Ok(response) => match response.json().and_then(|v| id_of(&v)) {
                    Some(id) if response.status == 201 => {
                        acknowledged.push(Acknowledged { id, title, body });
                    }
                    _ => problems.push(format!(
                        "status {}: {}",
                        response.status,
                        report::truncate(&response.body_text(), 80)
                    )),
                },
                Err(failure) => problems.push(failure.reason),
            }
        }
        self.push(
            Check::judge(
                "writes to the volume",
                problems.is_empty(),
                format!("{}/{WRITES_BEFORE_DRAIN} answered 201", acknowledged.len()),
                "201 with an id for each",
            )
            .because(problems.join("; ")),
        );
        acknowledged
    }

    fn idle_stop(
        &mut self,
        container: &Container,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<()> {
        progress("stopping the idle server");
        let grace = Self::grace(shutdown_timeout);
        let latency = self.scope.stop(self.sh, container, grace)?;
        let state = self.scope.inspect(self.sh, container)?.state;
        self.figures.stop_idle_ms = Some(report::millis(latency));
        self.push(Check::judge(
            "idle stop",
            state.exit_code == 0 && !state.oom_killed && latency < grace,
            format!("{}, exit {}", human(latency), state.exit_code),
            format!("exit 0 within {}", human(grace)),
        ));
        Ok(())
    }

    fn drain_under_load(
        &mut self,
        container: &Container,
        addr: SocketAddr,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<Vec<Acknowledged>> {
        let plan = Plan {
            slow_uploads: self.flags.slow_uploads,
            upload_bytes: 16 * 1024,
            short_workers: self.flags.short_clients,
            short_pause: Duration::from_millis(10),
            short_body_pause: Duration::from_millis(40),
            hold_after_signal: Duration::from_secs(1),
            trickle: Duration::from_millis(500),
            max_requests: 5_000,
            max_duration: shutdown_timeout + STOP_MARGIN + Duration::from_secs(10),
            probe_interval: Duration::from_millis(25),
            held_probes: 4,
            held_probe_spacing: Duration::from_millis(200),
        };
        progress(&format!(
            "opening {} slow uploads and {} streams of short writes",
            plan.slow_uploads, plan.short_workers
        ));
        let tag = format!("{}-drain", self.tag);
        let load = Load::start(
            Self::client(addr),
            &plan,
            &tag,
            NOTES_PATH,
            &self.metadata.ready_path,
        );
        thread::sleep(LOAD_LEAD);
        let grace = Self::grace(shutdown_timeout);
        progress("stopping the server under load");
        let stop = self.scope.stop_in_background(container, grace);
        let signalled = Instant::now();
        load.signal_sent();
        let stop = stop
            .and_then(|handle| container::wait_for_stop(&handle, grace + Duration::from_secs(15)));
        let latency = signalled.elapsed();
        let seen = load.finish();
        stop?;
        let state = self.scope.inspect(self.sh, container)?.state;
        self.figures.stop_under_load_ms = Some(report::millis(latency));
        self.judge_drain(&plan, &seen, &state, latency, grace);
        Ok(drain_load::acknowledged(&seen.records))
    }

    fn judge_drain(
        &mut self,
        plan: &Plan,
        seen: &drain_load::Seen,
        state: &State,
        latency: Duration,
        grace: Duration,
    ) {
        let tally = drain_load::tally(&seen.records, seen.signal_at);
        let uploads = seen
            .records
            .iter()
            .filter(|r| r.kind == drain_load::Kind::SlowUpload)
            .collect::<Vec<_>>();
        let uploads_ok = uploads
            .iter()
            .filter(|r| matches!(&r.result, Ok(a) if (200..300).contains(&a.status)))
            .count();
        let short_in_flight = tally.in_flight_at_signal.saturating_sub(uploads.len());
        let short_ok = tally.in_flight_completed.saturating_sub(uploads_ok);
        let all_in_flight_ok = uploads_ok == plan.slow_uploads
            && tally.in_flight_completed == tally.in_flight_at_signal;
        let upload_failures: Vec<String> = uploads
            .iter()
            .filter_map(|r| match &r.result {
                Ok(a) if (200..300).contains(&a.status) => None,
                Ok(a) => Some(format!("{}: status {}", r.title, a.status)),
                Err(f) => Some(format!("{}: {}", r.title, f.reason)),
            })
            .collect();
        self.push(
            Check::judge(
                "drain: in-flight requests",
                all_in_flight_ok,
                format!(
                    "{uploads_ok}/{} slow uploads, {short_ok}/{short_in_flight} short writes answered 2xx",
                    plan.slow_uploads
                ),
                "every request in flight at SIGTERM answered 2xx",
            )
            .because(in_flight_story(
                &upload_failures,
                plan.slow_uploads,
                short_in_flight - short_ok.min(short_in_flight),
                short_in_flight,
            )),
        );
        let readiness = drain_load::readiness_verdict(&seen.probes);
        let (ready_ok, ready_seen) = match readiness {
            Ok(seen) => (true, seen),
            Err(seen) => (false, seen),
        };
        self.push(
            Check::judge(
                "drain: readiness answers 503",
                ready_ok,
                ready_seen.clone(),
                "503 while draining, not 200 again",
            )
            .because(ready_seen),
        );
        self.push(
            Check::judge(
                "drain: exit status",
                state.exit_code == 0 && !state.oom_killed,
                format!("exit {}", state.exit_code),
                "exit 0",
            )
            .because(exit_story(state, grace)),
        );
        self.push(Check::judge(
            "drain: stop latency under load",
            latency < grace && state.exit_code != EXIT_KILLED,
            human(latency),
            format!("< {} (docker's kill)", human(grace)),
        ));
        self.push(
            Check::judge(
                "requests dropped",
                tally.dropped == 0 && tally.wrong_status == 0,
                format!("{} of {} sent", tally.dropped, tally.sent),
                "0",
            )
            .because(format!(
                "{} dropped, {} wrong statuses: {}",
                tally.dropped,
                tally.wrong_status,
                tally.examples.join("; ")
            )),
        );
        self.figures.requests_dropped = Some(tally.dropped);
        self.figures.requests = Some(tally);
    }

    fn durability(&mut self, addr: SocketAddr, acknowledged: &[Acknowledged]) {
        let client = Self::client(addr);
        let mut missing = Vec::new();
        for note in acknowledged {
            let path = format!("{NOTES_PATH}/{}", note.id);
            let found = match client.get(&path) {
                Ok(response) if response.status == 200 => {
                    let json = response.json().unwrap_or_default();
                    if json["title"] == note.title.as_str() && json["body"] == note.body.as_str() {
                        None
                    } else {
                        Some(format!("{}: different content", note.id))
                    }
                }
                Ok(response) => Some(format!("{}: status {}", note.id, response.status)),
                Err(failure) => Some(format!("{}: {}", note.id, failure.reason)),
            };
            missing.extend(found);
        }
        let found = acknowledged.len() - missing.len();
        self.figures.writes_found_after_restart = Some(found);
        missing.truncate(5);
        self.push(
            Check::judge(
                "durability",
                missing.is_empty() && !acknowledged.is_empty(),
                format!("{found}/{} acknowledged writes found", acknowledged.len()),
                "every 201 write there after a restart",
            )
            .because(if acknowledged.is_empty() {
                "no write was acknowledged, so none could be looked for".to_owned()
            } else {
                format!("missing: {}", missing.join("; "))
            }),
        );
    }

    /// A request that never completes must not hold the container past
    /// `SHUTDOWN_TIMEOUT`.
    fn deadline(&mut self) {
        let result = self.try_deadline();
        self.record_broken(result);
    }

    fn try_deadline(&mut self) -> Result<(), Broken> {
        let deadline = self.flags.deadline;
        let grace = Self::grace(deadline);
        let expected = format!(
            "non-zero exit (not {EXIT_KILLED}) {}–{} after SIGTERM",
            human(deadline),
            human(deadline + DEADLINE_SLACK)
        );
        let volume = self
            .scope
            .volume(self.sh, "deadline")
            .broken("deadline", expected.clone())?;
        let (container, _, addr, _) = self
            .start_server("deadline", &volume, deadline)
            .broken("deadline", expected.clone())?;
        let mut upload = match Self::client(addr).begin_upload(NOTES_PATH, "application/json", 4096)
        {
            Ok(Started::Continue(upload)) => upload,
            Ok(Started::Answered(response)) => {
                return Err(anyhow!(
                    "the server answered {} before the body arrived",
                    response.status
                ))
                .broken("deadline", expected);
            }
            Err(failure) => return Err(failure_error(&failure)).broken("deadline", expected),
        };
        upload
            .send(br#"{"title":"never finished","body":""#)
            .map_err(|f| failure_error(&f))
            .broken("deadline", expected.clone())?;
        progress("stopping the server with a request that never completes");
        let latency = self
            .scope
            .stop(self.sh, &container, grace)
            .broken("deadline", expected.clone())?;
        drop(upload);
        let state = self
            .scope
            .inspect(self.sh, &container)
            .broken("deadline", expected.clone())?
            .state;
        self.figures.deadline_stop_ms = Some(report::millis(latency));
        self.figures.deadline_exit_code = Some(state.exit_code);
        let on_time = latency + Duration::from_millis(250) >= deadline
            && latency <= deadline + DEADLINE_SLACK;
        let passed =
            state.exit_code != 0 && state.exit_code != EXIT_KILLED && !state.oom_killed && on_time;
        let measured = format!("exit {} after {}", state.exit_code, human(latency));
        let story = if state.exit_code == 0 {
            format!("{measured}: exit 0 although a request was cut off")
        } else if on_time {
            exit_story(&state, grace)
        } else if latency < deadline {
            format!("{measured}: exited before the deadline, without waiting for the request")
        } else {
            format!("{measured}: the request held the container past the deadline")
        };
        self.push(Check::judge("deadline", passed, measured, expected).because(story));
        self.scope.remove(container);
        Ok(())
    }
}

/// Why requests in flight at the signal failed, briefly.
fn in_flight_story(
    upload_failures: &[String],
    uploads: usize,
    short_failed: usize,
    short_in_flight: usize,
) -> String {
    let mut story = Vec::new();
    if let Some(first) = upload_failures.first() {
        story.push(format!(
            "{} of {uploads} slow uploads failed (first: {first})",
            upload_failures.len()
        ));
    }
    if short_failed > 0 {
        story.push(format!(
            "{short_failed} of {short_in_flight} short writes in flight failed"
        ));
    }
    story.join("; ")
}

/// An exit code in words.
fn exit_story(state: &State, grace: Duration) -> String {
    match state.exit_code {
        0 => "exit 0".to_owned(),
        EXIT_KILLED if state.oom_killed => {
            "exit 137: killed for exceeding the memory limit".to_owned()
        }
        EXIT_KILLED => format!(
            "exit 137: killed by docker after {} (SIGTERM not handled in time)",
            human(grace)
        ),
        code => format!("exit {code}"),
    }
}

fn last_probe(state: &State) -> String {
    state
        .health
        .as_ref()
        .and_then(|h| h.log.last())
        .map_or_else(
            || "no probe has run".to_owned(),
            |p| format!("last probe exit {}: {}", p.exit_code, p.output.trim()),
        )
}

fn failure_error(failure: &Failure) -> anyhow::Error {
    anyhow!("{}", failure.reason)
}

fn id_of(value: &serde_json::Value) -> Option<String> {
    match &value["id"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `SHUTDOWN_TIMEOUT` as the server reads it: `2s`, or `1500ms`.
fn env_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

fn nanos_to_cpus(nanos: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let cpus = nanos as f64 / 1e9;
    format!("{cpus}")
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn progress(text: &str) {
    // Once interrupted, failures are the interrupt's doing, not the server's.
    if !crate::container::interrupted() {
        eprintln!("shutdown-test: {text}");
    }
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
    fn an_exit_137_is_explained() {
        let state: State = serde_json::from_str(
            r#"{"Status":"exited","Running":false,"ExitCode":137,"OOMKilled":false,
                "StartedAt":"2026-01-01T00:00:00Z","FinishedAt":"2026-01-01T00:00:12Z"}"#,
        )
        .unwrap();
        assert!(
            exit_story(&state, Duration::from_secs(12)).contains("killed by docker after 12 s")
        );
    }

    #[test]
    fn ids_may_be_numbers_or_strings() {
        assert_eq!(id_of(&serde_json::json!({"id": 7})), Some("7".into()));
        assert_eq!(id_of(&serde_json::json!({"id": "a-b"})), Some("a-b".into()));
        assert_eq!(id_of(&serde_json::json!({})), None);
    }
}

//! The lifecycle: a hardened start, readiness and liveness, Docker's
//! HEALTHCHECK, writes to the data volume, an idle stop; after the drain, a
//! restart on the same volume to find every acknowledged write.

use std::net::SocketAddr;
use std::time::Duration;

use super::traffic::Acknowledged;
use super::{
    Broken, BrokenContext, READY_WITHIN, ShutdownSettings, Test, WRITES_BEFORE_DRAIN, human,
    not_applicable, progress, request_failed,
};
use crate::checks::Check;
use crate::docker::container::{Container, Contents};
use crate::http::Client;
use crate::metadata::{BackingKind, DrainMethod};
use crate::output;

impl Test<'_> {
    /// Start, health, writes, idle stop, drain under load, durability.
    pub(super) fn lifecycle(&mut self) {
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
        let within = format!("< {}", human(READY_WITHIN));
        let (first, started) = self
            .launch(
                "first",
                &volume,
                ShutdownSettings::without_delay(shutdown_timeout),
            )
            .broken("start to ready", within.clone())?;
        self.check_hardening(&first)
            .broken("hardened run", hardened)?;
        let ready = self
            .wait_ready(&first, started)
            .broken("start to ready", within.clone())?;
        let addr = ready.addr;
        self.push(Check::judge(
            "start to ready",
            ready.after < READY_WITHIN,
            human(ready.after),
            within,
        ));
        self.check_liveness(addr);
        // A health check that never turns healthy fails its check; the
        // rest of the lifecycle can still be proved.
        let healthy = "docker reports healthy";
        match self.wait_healthy(&first, started) {
            Ok(to_healthy) => {
                self.figures.start_to_healthy_ms = Some(output::millis(to_healthy));
                self.push(Check::judge(
                    "start to healthy",
                    true,
                    human(to_healthy),
                    healthy,
                ));
            }
            Err(error) => self.push(Check::broken("start to healthy", healthy, &error)),
        }
        let mut acknowledged = self.writes_before_drain(&first, addr);
        self.idle_stop(&first, shutdown_timeout)
            .broken("idle stop", "exit 0 before docker's kill")?;
        if let Some(writes) = acknowledged.pending.take() {
            self.judge_writes(&first, writes);
        }
        let mut acknowledged = acknowledged.writes;
        self.scope.remove(first);

        let drained = "every request in flight at SIGTERM answered 2xx";
        let (second, _, addr, _) = self
            .start_server(
                "drain",
                &volume,
                ShutdownSettings {
                    timeout: shutdown_timeout,
                    delay: self.flags.shutdown_delay,
                },
            )
            .broken("drain: in-flight requests", drained)?;
        acknowledged.extend(
            self.drain_under_load(&second, addr, shutdown_timeout)
                .broken("drain: in-flight requests", drained)?,
        );
        self.scope.remove(second);
        self.figures.acknowledged_writes = acknowledged.len();

        let survived = "every 201 write there after a restart";
        let (third, _, addr, _) = self
            .start_server(
                "verify",
                &volume,
                ShutdownSettings::without_delay(shutdown_timeout),
            )
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
            Ok(response) => {
                let status = format!("status {}", response.status);
                Check::judge("liveness", response.status == 200, &status, expected)
                    .because(request_failed("GET", path, &status))
            }
            Err(failure) => Check::judge("liveness", false, "no answer", expected)
                .because(request_failed("GET", path, &failure.reason)),
        };
        self.push(check);
    }

    fn check_hardening(&mut self, container: &Container) -> anyhow::Result<()> {
        let inspect = self.scope.inspect(self.sh, container)?;
        let gaps = self.hardening.gaps(&inspect, &self.metadata.data_dir);
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

    /// The manifest's writes, sent to the first server; judged once it has
    /// stopped, when what reached the volume can be read.
    fn writes_before_drain(&mut self, container: &Container, addr: SocketAddr) -> Writes {
        let drain = self.metadata.drain.clone();
        if drain.method != DrainMethod::Post {
            self.push(not_applicable(
                "writes to the volume",
                "the volume's contents change",
                "the drain's request is a read",
            ));
            return Writes::default();
        }
        let database = self
            .metadata
            .services
            .iter()
            .find(|(_, service)| service.kind == BackingKind::Postgres);
        let mut writes = Writes::default();
        if let Some((name, _)) = database {
            // Acknowledged writes are still counted for the drain and read
            // back for durability; only the volume is not where they go.
            self.push(not_applicable(
                "writes to the volume",
                "the volume's contents change",
                &format!(
                    "the service keeps its data in PostgreSQL (services.{name}); durability reads it back after a restart"
                ),
            ));
            writes.writes = self.send_writes(addr).0;
            return writes;
        }
        let before = self.scope.contents(container, &self.metadata.data_dir);
        let (acknowledged, problems) = self.send_writes(addr);
        writes.writes = acknowledged;
        writes.pending = Some(PendingWrites { before, problems });
        writes
    }

    /// The manifest's writes: those acknowledged, and why the others were not.
    fn send_writes(&self, addr: SocketAddr) -> (Vec<Acknowledged>, Vec<String>) {
        let drain = &self.metadata.drain;
        let path = drain.path.as_str();
        let client = Self::client(addr);
        let mut acknowledged = Vec::new();
        let mut problems = Vec::new();
        for n in 0..WRITES_BEFORE_DRAIN {
            let title = format!("{}-before-{n}", self.tag);
            let body = "written before the drain".to_owned();
            let json = drain.body(&title, &body);
            match client.post(path, &drain.content_type, &json) {
                Ok(response) => match response.json().and_then(|v| drain.id_in(&v)) {
                    Some(id) if response.status == 201 => {
                        acknowledged.push(Acknowledged { id, title, body });
                    }
                    Some(_) => problems.push(request_failed(
                        "POST",
                        path,
                        &format!(
                            "status {}, not 201: {}",
                            response.status,
                            output::truncate(&response.body_text(), 80)
                        ),
                    )),
                    None => problems.push(request_failed(
                        "POST",
                        path,
                        &format!(
                            "status {}, no id in the answer: {}",
                            response.status,
                            output::truncate(&response.body_text(), 80)
                        ),
                    )),
                },
                Err(failure) => problems.push(request_failed("POST", path, &failure.reason)),
            }
        }
        (acknowledged, problems)
    }

    /// "writes to the volume": every write acknowledged, and the volume's
    /// contents changed by the time the server stopped. Acknowledgements
    /// alone prove nothing: a service may keep its writes in memory.
    fn judge_writes(&mut self, container: &Container, pending: PendingWrites) {
        let data_dir = self.metadata.data_dir.clone();
        let expected = format!("201 with an id for each, and {data_dir} changed");
        let acknowledged = WRITES_BEFORE_DRAIN - pending.problems.len();
        let after = self.scope.contents(container, &data_dir);
        let (before, after) = match (pending.before, after) {
            (Ok(before), Ok(after)) => (before, after),
            (Err(error), _) | (_, Err(error)) => {
                self.push(Check::broken("writes to the volume", expected, &error));
                return;
            }
        };
        let changed = after.changed_since(&before);
        let passed = pending.problems.is_empty() && !changed.is_empty();
        let measured = format!(
            "{acknowledged}/{WRITES_BEFORE_DRAIN} answered 201; {} in {data_dir} changed",
            plural(changed.len(), "entry", "entries")
        );
        let actual = if pending.problems.is_empty() {
            format!(
                "{acknowledged} writes were acknowledged, but nothing in {data_dir} changed by the time the service stopped ({} there): the writes never reached the volume",
                plural(after.0.len(), "entry", "entries")
            )
        } else {
            pending.problems.join("; ")
        };
        self.push(Check::judge("writes to the volume", passed, measured, expected).because(actual));
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
        self.figures.stop_idle_ms = Some(output::millis(latency));
        self.push(
            Check::judge(
                "idle stop",
                state.exit_code == 0 && !state.oom_killed && latency < grace,
                format!("{}, exit {}", human(latency), state.exit_code),
                format!("exit 0 within {}", human(grace)),
            )
            .because(if state.exit_code == 0 && !state.oom_killed {
                format!("exit 0, but only {} after SIGTERM", human(latency))
            } else {
                state.story(grace)
            }),
        );
        Ok(())
    }

    fn durability(&mut self, addr: SocketAddr, acknowledged: &[Acknowledged]) {
        let drain = self.metadata.drain.clone();
        if !drain.durable() {
            self.push(not_applicable(
                "durability",
                "every 201 write there after a restart",
                "the drain names no write with an id and a read-back path",
            ));
            return;
        }
        let client = Self::client(addr);
        let mut missing = Vec::new();
        for note in acknowledged {
            let path = drain.read_back_path(&note.id).unwrap_or_default();
            let found = match client.get(&path) {
                // The tag is unique to this write: its answer must carry it.
                Ok(response) if response.status == 200 => {
                    if response.body_text().contains(&note.title) {
                        None
                    } else {
                        Some(request_failed(
                            "GET",
                            &path,
                            "answered without the write's tag",
                        ))
                    }
                }
                Ok(response) => Some(request_failed(
                    "GET",
                    &path,
                    &format!("status {}", response.status),
                )),
                Err(failure) => Some(request_failed("GET", &path, &failure.reason)),
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
}

fn nanos_to_cpus(nanos: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let cpus = nanos as f64 / 1e9;
    format!("{cpus}")
}

/// The writes sent before the drain: those acknowledged, and what is
/// needed to judge them once the server has stopped.
#[derive(Default)]
struct Writes {
    writes: Vec<Acknowledged>,
    pending: Option<PendingWrites>,
}

struct PendingWrites {
    /// The data directory before the first write.
    before: anyhow::Result<Contents>,
    /// Writes that were not acknowledged, and why.
    problems: Vec<String>,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

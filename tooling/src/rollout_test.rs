//! `cargo xtask rollout-test`: a rolling restart behind a real load
//! balancer, with every failed request counted.
//!
//! 1. `haproxy.rs`: HAProxy from Debian 13, a local image made offline,
//!    health-checking the readiness path of each replica;
//! 2. two replicas of the image, hardened as in production, each on its own
//!    loopback port (host network: a restarted replica keeps its address);
//! 3. `traffic.rs`: clients send requests through HAProxy at a bounded rate;
//! 4. each replica in turn: `docker stop`; `docker start` once HAProxy has
//!    taken it out, as a replaced instance is gone for good; on once HAProxy
//!    sends it traffic again;
//! 5. the same rollout with `SHUTDOWN_DELAY=0`, to show what the delay buys;
//! 6. cleanup: nothing the run created is left. `summary.rs` shows the
//!    settings, the figures and the checks.

mod haproxy;
mod summary;
mod traffic;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use crate::checks::{Check, Verdict};
use crate::docker::container::{Container, Network, Removed, RunSpec, Scope, env_duration};
use crate::docker::hardening::Hardening;
use crate::docker::{Docker, ImageInspect};
use crate::flags;
use crate::last_build;
use crate::metadata::Metadata;
use crate::output::{self, duration as human};
use crate::readiness;
use crate::wait::{self, Poll};
use haproxy::REPLICAS;
use traffic::{Load, Shape, Tally};

/// Names of everything the test creates start with this.
const PREFIX: &str = "xtask-rollout-test";
/// `docker stop` waits this much longer than `SHUTDOWN_TIMEOUT`, so that
/// docker's kill never cuts the server's own shutdown short.
const STOP_MARGIN: Duration = Duration::from_secs(10);
const READY_GIVE_UP: Duration = Duration::from_secs(30);
const ROTATION_GIVE_UP: Duration = Duration::from_secs(30);
/// Traffic flows this long before the first stop and after the last start.
const LOAD_LEAD: Duration = Duration::from_secs(1);
/// The clients stop by themselves after this long, whatever happens.
const LOAD_BOUND: Duration = Duration::from_mins(5);
/// A real endpoint, which reads the database.
const LOAD_PATH: &str = "/api/v1/notes?limit=1";
/// What `shutdown-test` proves the server under.
const MEMORY: &str = "256m";
const CPUS: &str = "1";

/// One rolling restart and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    pub shutdown_delay_ms: u64,
    pub requests: Tally,
    pub stops: Vec<Stop>,
}

/// One replica's stop.
#[derive(Debug, Clone, Serialize)]
pub struct Stop {
    pub replica: &'static str,
    pub exit_code: i64,
    pub took_ms: u64,
}

impl flags::RolloutTest {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        self.validate()?;
        let root = sh.current_dir();
        let image_ref = last_build::resolve(&root, self.image.as_deref())?;
        let docker = Docker::connect(sh)?;
        let image = docker.inspect_image(sh, &image_ref.reference)?;
        let balancer =
            haproxy::image(sh, &docker, &root).context("cannot make the load balancer's image")?;
        let (scope, swept) = Scope::open(&docker, sh, PREFIX)?;
        if swept != Removed::default() {
            progress(&format!(
                "removed {} containers and {} volumes left by an interrupted run",
                swept.containers, swept.volumes
            ));
        }
        let hardening = Hardening::production(MEMORY, CPUS);
        let test = Test {
            sh,
            scope: &scope,
            flags: &self,
            metadata,
            image: &image_ref.reference,
            inspect: &image,
            balancer: &balancer,
            hardening: &hardening,
        };
        let mut checks = Vec::new();
        let mut rollouts = Vec::new();
        for delay in [self.shutdown_delay, Duration::ZERO] {
            progress(&format!(
                "rolling restart with SHUTDOWN_DELAY={}",
                env_duration(delay)
            ));
            match test.rollout(delay) {
                Ok(rollout) => {
                    checks.extend(summary::checks(&rollout, self.shutdown_delay));
                    rollouts.push(rollout);
                }
                Err(error) => checks.push(Check::broken(
                    summary::rollout_check_name(delay),
                    "a rolling restart of both replicas under load",
                    &error,
                )),
            }
        }
        let (removed, left) = scope.close(sh);
        checks.push(crate::docker::container::cleanup_check(
            removed.to_string(),
            &left,
        ));
        for check in &checks {
            let mark = if check.failed() { "FAIL" } else { "ok  " };
            progress(&format!("{mark} {}: {}", check.name, check.measured));
        }
        Ok(summary::verdict(
            &self,
            &summary::Subject {
                name: &image_ref.display_name(&image),
                image: &image,
                balancer: &balancer,
                hardening: &hardening,
                ready_path: &metadata.ready_path,
            },
            &rollouts,
            checks,
        ))
    }

    /// Bad input is one line, before anything starts.
    fn validate(&self) -> anyhow::Result<()> {
        if self.clients == 0 || self.clients > 32 {
            bail!("--clients must be 1 to 32");
        }
        if self.rate == 0 || self.rate > 200 {
            bail!("--rate must be 1 to 200 requests per second per client");
        }
        if self.check_fall == 0 || self.check_interval < Duration::from_millis(100) {
            bail!("--check-fall must be at least 1 and --check-interval at least 100ms");
        }
        let noticed = self.noticed_within();
        if self.shutdown_delay <= noticed {
            bail!(
                "--shutdown-delay ({}) must exceed the check interval × fall ({}): \
                 the load balancer would still send to a replica that stopped listening",
                human(self.shutdown_delay),
                human(noticed)
            );
        }
        if self.shutdown_delay >= self.shutdown_timeout {
            bail!("--shutdown-delay must be shorter than --shutdown-timeout, which bounds it");
        }
        Ok(())
    }

    /// How long, at most, HAProxy goes on sending to a replica whose
    /// readiness fails: `fall` failed checks, `inter` apart.
    fn noticed_within(&self) -> Duration {
        self.check_interval * self.check_fall
    }

    fn shape(&self) -> Shape {
        Shape {
            clients: self.clients,
            rate: self.rate,
            max_duration: LOAD_BOUND,
            max_requests: usize::try_from(u64::from(self.rate) * LOAD_BOUND.as_secs())
                .unwrap_or(usize::MAX),
        }
    }
}

struct Test<'a> {
    sh: &'a Shell,
    scope: &'a Scope,
    flags: &'a flags::RolloutTest,
    metadata: &'a Metadata,
    image: &'a str,
    inspect: &'a ImageInspect,
    balancer: &'a str,
    hardening: &'a Hardening,
}

struct Replica {
    name: &'static str,
    addr: SocketAddr,
    container: Container,
}

impl Test<'_> {
    /// Two replicas behind HAProxy under load, each restarted in turn.
    fn rollout(&self, delay: Duration) -> anyhow::Result<Rollout> {
        let [frontend, stats, first, second] = free_loopback_ports()?;
        let settings = haproxy::Settings {
            frontend,
            stats,
            replicas: [first, second],
            ready_path: self.metadata.ready_path.clone(),
            check_interval: self.flags.check_interval,
            check_fall: self.flags.check_fall,
        };
        let label = if delay.is_zero() { "nodelay" } else { "delay" };
        let mut replicas = Vec::new();
        for (name, addr) in REPLICAS.into_iter().zip(settings.replicas) {
            let container = self.start_replica(&format!("{label}-{name}"), addr, delay)?;
            replicas.push(Replica {
                name,
                addr,
                container,
            });
        }
        for replica in &replicas {
            self.wait_ready(replica)?;
        }
        let balancer = self.start_balancer(&format!("{label}-lb"), &settings)?;
        self.wait_in_rotation(&settings, &balancer, &REPLICAS)?;

        progress(&format!(
            "load: {} clients × {} requests/s through {frontend}",
            self.flags.clients, self.flags.rate
        ));
        let load = Load::start(frontend, LOAD_PATH, self.flags.shape());
        std::thread::sleep(LOAD_LEAD);
        let grace = grace(self.flags.shutdown_timeout);
        let mut stops = Vec::new();
        for replica in &replicas {
            progress(&format!("docker stop replica {}", replica.name));
            let took = self.scope.stop(self.sh, &replica.container, grace)?;
            let exited = self.scope.inspect(self.sh, &replica.container)?.state;
            if exited.running {
                bail!("replica {} still runs after docker stop", replica.name);
            }
            stops.push(Stop {
                replica: replica.name,
                exit_code: exited.exit_code,
                took_ms: output::millis(took),
            });
            progress(&format!(
                "replica {} stopped (exit {}) in {}; docker start",
                replica.name,
                exited.exit_code,
                human(took)
            ));
            // As a replaced instance is gone for good: start it again only
            // once HAProxy no longer counts on it.
            self.wait_out_of_rotation(&settings, &balancer, replica.name)?;
            self.scope.start_again(self.sh, &replica.container)?;
            self.wait_ready(replica)?;
            self.wait_in_rotation(&settings, &balancer, &REPLICAS)?;
        }
        std::thread::sleep(LOAD_LEAD);
        let requests = load.finish();
        progress(&format!(
            "{} requests, {} failed ({})",
            requests.sent,
            requests.failed,
            requests.kinds()
        ));
        self.scope.remove(balancer);
        for replica in replicas {
            self.scope.remove(replica.container);
        }
        Ok(Rollout {
            shutdown_delay_ms: output::millis(delay),
            requests,
            stops,
        })
    }

    /// A replica under the production settings, listening on `addr` of the
    /// host's loopback, its data on a volume of its own.
    fn start_replica(
        &self,
        role: &str,
        addr: SocketAddr,
        delay: Duration,
    ) -> anyhow::Result<Container> {
        let data_dir = self.metadata.data_dir.as_str();
        let volume = self.scope.volume(self.sh, &format!("{role}-data"))?;
        // The image's other VOLUMEs get a tmpfs: an anonymous volume cannot
        // be labelled, so could outlive an interrupted run.
        let scratch: Vec<&str> = self
            .inspect
            .config
            .volumes
            .iter()
            .flat_map(|v| v.keys())
            .map(String::as_str)
            .filter(|v| *v != data_dir)
            .collect();
        let env = [
            ("LISTEN_ADDR", addr.to_string()),
            ("SHUTDOWN_DELAY", env_duration(delay)),
            (
                "SHUTDOWN_TIMEOUT",
                env_duration(self.flags.shutdown_timeout),
            ),
        ];
        let spec = RunSpec {
            image: self.image,
            role,
            hardening: self.hardening,
            volume: Some((&volume, data_dir)),
            scratch,
            publish: None,
            network: Network::Host,
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            health: None,
            entrypoint: None,
            command: Vec::new(),
        };
        progress(&format!("starting replica {role} on {addr}"));
        Ok(self.scope.start(self.sh, &spec)?.0)
    }

    /// HAProxy, hardened as the replicas are, as `nobody`.
    fn start_balancer(
        &self,
        role: &str,
        settings: &haproxy::Settings,
    ) -> anyhow::Result<Container> {
        let spec = RunSpec {
            image: self.balancer,
            role,
            hardening: self.hardening,
            volume: None,
            scratch: Vec::new(),
            publish: None,
            network: Network::Host,
            env: settings.env(),
            health: None,
            entrypoint: None,
            command: Vec::new(),
        };
        progress(&format!(
            "starting HAProxy on {} (checks {} every {}, out after {})",
            settings.frontend,
            settings.ready_path,
            human(settings.check_interval),
            settings.check_fall
        ));
        Ok(self.scope.start(self.sh, &spec)?.0)
    }

    /// Polls the replica's readiness path until it answers 200; fails with
    /// its exit code and log if it stops first.
    fn wait_ready(&self, replica: &Replica) -> anyhow::Result<()> {
        let target = readiness::Target {
            address: readiness::Address::Fixed(replica.addr),
            ready_path: &self.metadata.ready_path,
            image: self.inspect,
            give_up: READY_GIVE_UP,
        };
        readiness::wait(
            self.sh,
            self.scope,
            &replica.container,
            &target,
            Instant::now(),
        )
        .with_context(|| format!("replica {} not ready on {}", replica.name, replica.addr))?;
        Ok(())
    }

    /// Waits until HAProxy reports every one of `names` UP.
    fn wait_in_rotation(
        &self,
        settings: &haproxy::Settings,
        balancer: &Container,
        names: &[&str],
    ) -> anyhow::Result<()> {
        self.wait_for_balancer(settings, balancer, names, "in rotation", |s| s == "UP")
    }

    /// Waits until HAProxy has taken `name` out: `DOWN`, not `UP 1/2`.
    fn wait_out_of_rotation(
        &self,
        settings: &haproxy::Settings,
        balancer: &Container,
        name: &str,
    ) -> anyhow::Result<()> {
        self.wait_for_balancer(settings, balancer, &[name], "out of rotation", |s| {
            s.starts_with("DOWN")
        })
    }

    fn wait_for_balancer(
        &self,
        settings: &haproxy::Settings,
        balancer: &Container,
        names: &[&str],
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        wait::until(ROTATION_GIVE_UP, Duration::from_millis(100), || {
            Ok(match haproxy::replica_states(settings.stats) {
                Ok(states)
                    if names
                        .iter()
                        .all(|n| states.get(*n).is_some_and(|s| wanted(s))) =>
                {
                    Poll::Ready(())
                }
                Ok(states) => Poll::Waiting(format!("{states:?}")),
                Err(error) => Poll::Waiting(format!("{error:#}")),
            })
        })
        .with_context(|| {
            format!(
                "HAProxy did not put {} {what} within {}; its logs: {}",
                names.join(" and "),
                human(started.elapsed()),
                self.scope.log_lines(self.sh, balancer)
            )
        })
    }
}

/// Distinct free ports on 127.0.0.1, held open together so that none is
/// given twice, then released for the containers to bind.
fn free_loopback_ports<const N: usize>() -> anyhow::Result<[SocketAddr; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free ports on 127.0.0.1")?;
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .context("cannot read a listener's port")?;
    addrs
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected {N} ports"))
}

/// `docker stop -t`: whole seconds, past the server's own deadline.
fn grace(timeout: Duration) -> Duration {
    Duration::from_secs(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)) + STOP_MARGIN
}

/// A progress line of this command's: [`crate::docker::container::progress`].
fn progress(text: &str) {
    crate::docker::container::progress("rollout-test", text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> flags::RolloutTest {
        let cli =
            flags::Cli::try_parse_from(["cargo xtask", "rollout-test"].iter().chain(args.iter()))
                .unwrap();
        match cli.command {
            flags::Command::RolloutTest(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        parse(&[]).validate().unwrap();
    }

    #[test]
    fn a_delay_the_balancer_would_outlast_is_refused() {
        let error = parse(&["--shutdown-delay", "1s"]).validate().unwrap_err();
        assert!(error.to_string().contains("must exceed"), "{error}");
        let error = parse(&["--shutdown-delay", "3s", "--check-interval", "2s"])
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("(4 s)"), "{error}");
    }

    #[test]
    fn a_delay_as_long_as_the_timeout_is_refused() {
        let error = parse(&["--shutdown-delay", "10s", "--shutdown-timeout", "10s"])
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("shorter"), "{error}");
    }

    #[test]
    fn load_outside_its_bounds_is_refused() {
        assert!(parse(&["--clients", "0"]).validate().is_err());
        assert!(parse(&["--rate", "0"]).validate().is_err());
        assert!(parse(&["--rate", "1000"]).validate().is_err());
    }

    #[test]
    fn ports_are_distinct_and_on_loopback() {
        let ports = free_loopback_ports::<4>().unwrap();
        for (i, a) in ports.iter().enumerate() {
            assert!(a.ip().is_loopback());
            assert!(ports[i + 1..].iter().all(|b| b.port() != a.port()));
        }
    }

    #[test]
    fn delays_are_written_as_the_server_reads_them() {
        assert_eq!(env_duration(Duration::ZERO), "0s");
        assert_eq!(env_duration(Duration::from_secs(3)), "3s");
        assert_eq!(env_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(grace(Duration::from_millis(1500)), Duration::from_secs(12));
    }
}

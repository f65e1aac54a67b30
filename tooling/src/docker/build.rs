//! Building an image with BuildKit: the build command's arguments for the
//! builder found (pure, tested without an engine), running it, and whether
//! the builder can build reproducibly.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use xshell::Shell;

use crate::process;
use crate::tools::{self, Builder, BuilderKind};

/// One BuildKit build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub no_cache: bool,
    /// Stages built without the cache while the others take it
    /// (`--no-cache-filter`, buildx only).
    pub no_cache_stages: Vec<String>,
    /// Runs every `RUN` without a network.
    pub network_none: bool,
    pub platform: Option<String>,
    pub cache_from: Vec<String>,
    pub cache_to: Vec<String>,
    /// Where the builder writes the new image's id.
    pub iidfile: PathBuf,
    /// Where the build's output goes instead of stderr.
    pub log: Option<PathBuf>,
    pub output: Output,
    /// Layer file times clamped to `SOURCE_DATE_EPOCH` (BuildKit 0.13 on).
    pub rewrite_timestamps: bool,
    /// Seconds since the epoch that BuildKit stamps the image with; buildx
    /// passes it on as the build argument of the same name.
    pub source_date_epoch: Option<i64>,
}

/// Where a build's image goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Output {
    /// Into the engine's image store.
    #[default]
    Load,
    /// An OCI image layout archive, as a registry would receive it.
    OciArchive(PathBuf),
}

/// The arguments of the build command for a builder. Fails for what the
/// builder cannot do, rather than dropping it.
pub fn build_args(kind: BuilderKind, request: &BuildRequest) -> anyhow::Result<Vec<OsString>> {
    let mut args: Vec<OsString> = match kind {
        BuilderKind::Buildx => {
            let mut output = match &request.output {
                Output::Load => "type=docker".to_owned(),
                Output::OciArchive(dest) => format!("type=oci,dest={}", dest.display()),
            };
            if request.rewrite_timestamps {
                output.push_str(",rewrite-timestamp=true");
            }
            vec![
                "buildx".into(),
                "build".into(),
                "--output".into(),
                output.into(),
                // A provenance attestation records the build's own times and
                // ids, so that no two builds would share a digest.
                "--provenance=false".into(),
            ]
        }
        BuilderKind::BuiltIn => {
            if request.output != Output::Load || request.rewrite_timestamps {
                anyhow::bail!(
                    "OCI archives and rewritten timestamps need the buildx plugin: run `{}`",
                    tools::SETUP
                );
            }
            if !request.cache_to.is_empty() {
                anyhow::bail!("--cache-to needs the buildx plugin: run `{}`", tools::SETUP);
            }
            if !request.no_cache_stages.is_empty() {
                anyhow::bail!(
                    "building one stage without the cache needs the buildx plugin: run `{}`",
                    tools::SETUP
                );
            }
            if let Some(spec) = request.cache_from.iter().find(|spec| spec.contains('=')) {
                anyhow::bail!(
                    "--cache-from {spec} needs the buildx plugin (the built-in BuildKit only reads images): run `{}`",
                    tools::SETUP
                );
            }
            vec!["build".into()]
        }
    };
    args.push("--file".into());
    args.push(request.dockerfile.clone().into());
    args.push("--iidfile".into());
    args.push(request.iidfile.clone().into());
    for tag in &request.tags {
        args.push("--tag".into());
        args.push(tag.into());
    }
    for (name, value) in &request.build_args {
        args.push("--build-arg".into());
        args.push(format!("{name}={value}").into());
    }
    if request.no_cache {
        args.push("--no-cache".into());
    }
    for stage in &request.no_cache_stages {
        args.push("--no-cache-filter".into());
        args.push(stage.into());
    }
    if request.network_none {
        args.push("--network=none".into());
    }
    if let Some(platform) = &request.platform {
        args.push("--platform".into());
        args.push(platform.into());
    }
    for spec in &request.cache_from {
        args.push("--cache-from".into());
        args.push(spec.into());
    }
    for spec in &request.cache_to {
        args.push("--cache-to".into());
        args.push(spec.into());
    }
    args.push(request.context.clone().into());
    Ok(args)
}

/// Runs a build, all its output on stderr (stdout stays free for `--json`),
/// and returns the new image's id (for an archive, its path).
pub fn build(sh: &Shell, builder: &Builder, request: &BuildRequest) -> anyhow::Result<String> {
    let args = build_args(builder.kind, request)?;
    let client = &builder.client;
    let mut command = xshell::cmd!(sh, "{client} {args...}");
    if builder.kind == BuilderKind::BuiltIn {
        command = command.env("DOCKER_BUILDKIT", "1");
    }
    if let Some(epoch) = request.source_date_epoch {
        command = command.env("SOURCE_DATE_EPOCH", epoch.to_string());
    }
    match &request.log {
        None => process::run(command)
            .context("the image build failed; BuildKit's output above says where")?,
        Some(log) => process::run_logged(command, log).with_context(|| {
            format!(
                "the image build failed; BuildKit's output in {} says where",
                log.display()
            )
        })?,
    }
    if let Output::OciArchive(dest) = &request.output {
        // The archive is the result; the engine's store holds nothing new.
        return Ok(dest.display().to_string());
    }
    let id = sh.read_file(&request.iidfile).with_context(|| {
        format!(
            "the build wrote no image id to {}",
            request.iidfile.display()
        )
    })?;
    Ok(id.trim().to_owned())
}

/// Empties the builder's whole build cache: the steps of earlier builds,
/// and the cache mounts (`RUN --mount=type=cache`), which `--no-cache`
/// keeps. What a cold build of the bench must start without.
pub fn prune_build_cache(sh: &Shell, builder: &Builder) -> anyhow::Result<()> {
    let client = &builder.client;
    let command = match builder.kind {
        BuilderKind::Buildx => "buildx",
        BuilderKind::BuiltIn => "builder",
    };
    let mut run = xshell::cmd!(sh, "{client} {command} prune --force --all");
    if builder.kind == BuilderKind::BuiltIn {
        run = run.env("DOCKER_BUILDKIT", "1");
    }
    process::read(run)
        .map(drop)
        .context("cannot empty the builder's build cache")
}

/// What decides whether a builder can build reproducibly.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuilderFacts {
    pub kind: BuilderKind,
    /// buildx's driver: `docker` (the engine's own BuildKit),
    /// `docker-container`, `remote`…
    pub driver: String,
    /// BuildKit's version as the builder reports it, when it does.
    pub buildkit: Option<String>,
    /// The engine's version.
    pub engine: String,
    /// Whether the engine keeps images in containerd's store.
    pub containerd_store: bool,
}

impl BuilderFacts {
    /// Asks the builder and the engine.
    pub fn read(sh: &Shell, builder: &Builder) -> anyhow::Result<BuilderFacts> {
        let client = &builder.client;
        let format = "{{.ServerVersion}}|{{json .DriverStatus}}";
        let info = process::read(xshell::cmd!(sh, "{client} info --format {format}"))
            .context("cannot ask the docker engine for its version")?;
        let (engine, driver_status) = info.trim().split_once('|').unwrap_or((info.trim(), ""));
        let (driver, buildkit) = if builder.kind == BuilderKind::Buildx {
            let inspect = process::read(xshell::cmd!(sh, "{client} buildx inspect"))
                .context("cannot inspect the buildx builder")?;
            parse_inspect(&inspect)
        } else {
            ("docker".to_owned(), None)
        };
        Ok(BuilderFacts {
            kind: builder.kind,
            driver,
            buildkit,
            engine: engine.to_owned(),
            containerd_store: driver_status.contains("io.containerd.snapshotter"),
        })
    }

    /// `Ok` when two builds of one source can give one digest: an OCI
    /// export with layer timestamps rewritten (BuildKit 0.13, in engine 26
    /// on). Otherwise the reason, plainly.
    pub fn reproducible(&self) -> Result<(), String> {
        if self.kind == BuilderKind::BuiltIn {
            return Err(format!(
                "the built-in BuildKit of client {} cannot export an OCI archive with rewritten timestamps; the buildx plugin can: run `{}`",
                self.engine,
                tools::SETUP
            ));
        }
        if self.driver != "docker" {
            return match self.buildkit.as_deref().and_then(major_minor) {
                Some(version) if version < (0, 13) => Err(format!(
                    "the {} builder's BuildKit {} predates rewrite-timestamp (0.13)",
                    self.driver,
                    self.buildkit.as_deref().unwrap_or_default()
                )),
                _ => Ok(()),
            };
        }
        let mut missing = Vec::new();
        if major_minor(&self.engine).is_none_or(|version| version < (26, 0)) {
            missing.push("its BuildKit predates rewrite-timestamp (engine 26 or later has it)");
        }
        if !self.containerd_store {
            missing.push("its classic image store cannot export an OCI archive (the containerd image store can)");
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "engine {} cannot build reproducibly: {}; `sudo {} --reproducible-engine` starts Debian 13's engine beside it, then set DOCKER_HOST={}",
            self.engine,
            missing.join(", and "),
            tools::SETUP,
            REPRODUCIBLE_ENGINE_HOST
        ))
    }
}

/// Where `setup --reproducible-engine` makes its engine listen.
pub const REPRODUCIBLE_ENGINE_HOST: &str = "unix:///run/xtask-docker.sock";

/// The version of the engine `setup --reproducible-engine` started, when it
/// answers; else why not.
pub fn reproducible_engine(sh: &Shell) -> Result<String, String> {
    let format = "{{.Server.Version}}";
    xshell::cmd!(
        sh,
        "docker --host {REPRODUCIBLE_ENGINE_HOST} version --format {format}"
    )
    .quiet()
    .ignore_stderr()
    .read()
    .map(|version| version.trim().to_owned())
    .map_err(|_| format!("no engine answers on {REPRODUCIBLE_ENGINE_HOST}"))
}

/// The first node's driver and BuildKit version from `docker buildx inspect`.
fn parse_inspect(inspect: &str) -> (String, Option<String>) {
    let field = |name: &str| {
        inspect
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
    };
    let buildkit = field("BuildKit version:")
        .or_else(|| field("Buildkit:"))
        .filter(|version| !version.contains("unknown"));
    (field("Driver:").unwrap_or_default(), buildkit)
}

/// `26.1.5+dfsg1` or `v0.13.2` as (26, 1) or (0, 13).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version
        .trim()
        .trim_start_matches('v')
        .split(['.', '+', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Where the engine at hand cannot build reproducibly and the one
/// `setup --reproducible-engine` started answers, every docker command of
/// this run goes to that one. A `DOCKER_HOST` the user set is kept.
pub fn choose_engine(sh: &Shell) -> anyhow::Result<()> {
    if let Some(apart) = reproducible_engine_apart(sh)? {
        eprintln!(
            "image: engine {} cannot build reproducibly; building on engine {} at {REPRODUCIBLE_ENGINE_HOST}",
            apart.at_hand, apart.version
        );
        sh.set_var("DOCKER_HOST", REPRODUCIBLE_ENGINE_HOST);
    }
    Ok(())
}

/// The engine reproducible builds go to when it is not the one at hand.
pub struct EngineApart {
    /// The version of the engine at hand, which cannot build reproducibly.
    pub at_hand: String,
    /// The version of the one `setup --reproducible-engine` started.
    pub version: String,
}

/// Where reproducible builds run: `None` for the engine at hand (or the one
/// a `DOCKER_HOST` the user set names), else the one `setup
/// --reproducible-engine` started. An error when neither can.
pub fn reproducible_engine_apart(sh: &Shell) -> anyhow::Result<Option<EngineApart>> {
    if std::env::var_os("DOCKER_HOST").is_some() {
        return Ok(None);
    }
    let Ok(builder) = crate::tools::buildkit(sh) else {
        return Ok(None);
    };
    let facts = BuilderFacts::read(sh, &builder)?;
    let Err(reason) = facts.reproducible() else {
        return Ok(None);
    };
    match reproducible_engine(sh) {
        Ok(version) => Ok(Some(EngineApart {
            at_hand: facts.engine,
            version,
        })),
        Err(_) => anyhow::bail!(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> BuildRequest {
        BuildRequest {
            context: ".".into(),
            dockerfile: "Dockerfile".into(),
            tags: vec!["server:1".into()],
            build_args: vec![("PROFILE".into(), "size".into())],
            iidfile: "target/iid".into(),
            ..BuildRequest::default()
        }
    }

    fn words(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn buildx_loads_the_image_into_the_engine() {
        let args = build_args(BuilderKind::Buildx, &request()).unwrap();
        assert_eq!(
            words(&args),
            [
                "buildx",
                "build",
                "--output",
                "type=docker",
                "--provenance=false",
                "--file",
                "Dockerfile",
                "--iidfile",
                "target/iid",
                "--tag",
                "server:1",
                "--build-arg",
                "PROFILE=size",
                "."
            ]
        );
    }

    #[test]
    fn offline_builds_run_without_a_network() {
        let request = BuildRequest {
            network_none: true,
            no_cache: true,
            platform: Some("linux/amd64".into()),
            ..request()
        };
        let args = build_args(BuilderKind::BuiltIn, &request).unwrap();
        let args = words(&args);
        assert_eq!(args[0], "build");
        assert!(args.contains(&"--network=none"));
        assert!(args.contains(&"--no-cache"));
        assert!(args.windows(2).any(|w| w == ["--platform", "linux/amd64"]));
        assert_eq!(args.last(), Some(&"."));
    }

    #[test]
    fn a_stage_without_the_cache_is_buildx_only() {
        let request = BuildRequest {
            no_cache_stages: vec!["build".into()],
            ..request()
        };
        let args = build_args(BuilderKind::Buildx, &request).unwrap();
        let args = words(&args);
        assert!(args.windows(2).any(|w| w == ["--no-cache-filter", "build"]));
        assert!(!args.contains(&"--no-cache"));
        let refused = build_args(BuilderKind::BuiltIn, &request).unwrap_err();
        assert!(refused.to_string().contains("buildx"), "{refused}");
    }

    #[test]
    fn cache_specs_pass_through_to_buildx() {
        let request = BuildRequest {
            cache_from: vec!["type=gha".into()],
            cache_to: vec!["type=gha,mode=max".into()],
            ..request()
        };
        let args = build_args(BuilderKind::Buildx, &request).unwrap();
        let args = words(&args);
        assert!(args.windows(2).any(|w| w == ["--cache-from", "type=gha"]));
        assert!(
            args.windows(2)
                .any(|w| w == ["--cache-to", "type=gha,mode=max"])
        );
    }

    fn facts(driver: &str, buildkit: Option<&str>, engine: &str, containerd: bool) -> BuilderFacts {
        BuilderFacts {
            kind: BuilderKind::Buildx,
            driver: driver.into(),
            buildkit: buildkit.map(Into::into),
            engine: engine.into(),
            containerd_store: containerd,
        }
    }

    #[test]
    fn debian_12s_engine_cannot_reproduce_and_says_why_and_what_can() {
        let reason = facts("docker", None, "20.10.24+dfsg1", false)
            .reproducible()
            .unwrap_err();
        assert!(
            reason.starts_with("engine 20.10.24+dfsg1 cannot build reproducibly"),
            "{reason}"
        );
        assert!(reason.contains("rewrite-timestamp"), "{reason}");
        assert!(reason.contains("containerd image store"), "{reason}");
        assert!(reason.contains("--reproducible-engine"), "{reason}");
        let reason = facts("docker", None, "26.1.5+dfsg1", false)
            .reproducible()
            .unwrap_err();
        assert!(!reason.contains("predates"), "{reason}");
    }

    #[test]
    fn engine_26_with_containerd_and_a_new_container_builder_can() {
        assert!(
            facts("docker", None, "26.1.5+dfsg1", true)
                .reproducible()
                .is_ok()
        );
        assert!(
            facts("docker-container", Some("v0.25.1"), "20.10.24", false)
                .reproducible()
                .is_ok()
        );
        let old = facts("docker-container", Some("v0.12.5"), "28.0.1", false);
        assert!(old.reproducible().unwrap_err().contains("0.12.5"));
        let built_in = BuilderFacts {
            kind: BuilderKind::BuiltIn,
            ..facts("docker", None, "20.10.24", false)
        };
        assert!(built_in.reproducible().unwrap_err().contains("buildx"));
    }

    #[test]
    fn reads_driver_and_buildkit_from_buildx_inspect() {
        let inspect = "Name:          default\nDriver:        docker\n\nNodes:\nName:             default\nEndpoint:         default\nStatus:           running\nBuildKit version: v0.0.0+unknown\n";
        assert_eq!(parse_inspect(inspect), ("docker".to_owned(), None));
        let inspect =
            "Name: builder\nDriver: docker-container\nNodes:\nBuildKit version: v0.25.1\n";
        assert_eq!(
            parse_inspect(inspect),
            ("docker-container".to_owned(), Some("v0.25.1".to_owned()))
        );
    }

    #[test]
    fn buildx_archives_with_rewritten_timestamps_and_no_provenance() {
        let request = BuildRequest {
            output: Output::OciArchive("target/a.tar".into()),
            rewrite_timestamps: true,
            ..request()
        };
        let args = build_args(BuilderKind::Buildx, &request).unwrap();
        let args = words(&args);
        assert!(args.windows(2).any(|w| w
            == [
                "--output",
                "type=oci,dest=target/a.tar,rewrite-timestamp=true"
            ]));
        assert!(args.contains(&"--provenance=false"));
        assert!(build_args(BuilderKind::BuiltIn, &request).is_err());
    }

    #[test]
    fn the_built_in_builder_refuses_cache_exports_instead_of_dropping_them() {
        let request = BuildRequest {
            cache_to: vec!["type=gha".into()],
            ..request()
        };
        let error = build_args(BuilderKind::BuiltIn, &request).unwrap_err();
        assert!(error.to_string().contains("buildx"), "{error}");
        let request = BuildRequest {
            cache_from: vec!["type=gha".into()],
            ..super::tests::request()
        };
        assert!(build_args(BuilderKind::BuiltIn, &request).is_err());
    }
}

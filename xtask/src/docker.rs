//! Talking to the docker engine: checking that it answers, building with
//! BuildKit, importing root filesystems and reading images back.
//!
//! What docker prints is parsed by pure functions ([`ImageInspect::parse`],
//! [`build_args`]), tested on fixtures without an engine.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::Deserialize;
use xshell::Shell;

use crate::image_history;
use crate::process;
use crate::tools::{self, Builder, BuilderKind, Tool};

/// A docker client whose engine answers.
#[derive(Debug, Clone)]
pub struct Docker {
    client: PathBuf,
}

impl Docker {
    /// The first docker client on PATH, once its engine has answered.
    pub fn connect(sh: &Shell) -> anyhow::Result<Docker> {
        let client = tools::require(sh, Tool::DockerClient)?.path;
        let engine = tools::probe(sh, Tool::DockerEngine);
        if let Some(reason) = engine.missing {
            anyhow::bail!(
                "the docker engine does not answer: {reason} (`{}` starts dockerd when it is stopped)",
                tools::SETUP
            );
        }
        Ok(Docker { client })
    }

    /// The client, for processes that outlive a shell command: streams,
    /// background stops, cleanup on Ctrl+C.
    pub fn program(&self) -> &Path {
        &self.client
    }

    /// Runs `docker <args>` quietly and returns its standard output; a
    /// failure is one line ending with docker's own reason.
    pub fn output<I, S>(&self, sh: &Shell, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        process::read(sh.cmd(&self.client).args(args))
    }

    /// Whether the engine has an image under this name or id.
    pub fn image_exists(&self, sh: &Shell, reference: &str) -> anyhow::Result<bool> {
        let client = &self.client;
        let output = xshell::cmd!(sh, "{client} image inspect --format")
            .arg("{{.Id}}")
            .arg(reference)
            .quiet()
            .ignore_status()
            .ignore_stderr()
            .output()
            .with_context(|| format!("cannot run {}", self.client.display()))?;
        Ok(output.status.success())
    }

    /// `docker image inspect`, with a missing image said plainly.
    pub fn inspect_image(&self, sh: &Shell, reference: &str) -> anyhow::Result<ImageInspect> {
        let json = self
            .output(sh, ["image", "inspect", reference])
            .map_err(|error| {
                if is_missing_image(&error.to_string()) {
                    anyhow!("image {reference} not found (build it with `cargo xtask image`)")
                } else {
                    error.context(format!("cannot inspect image {reference}"))
                }
            })?;
        ImageInspect::parse(&json)
            .with_context(|| format!("cannot read the inspection of {reference}"))
    }

    /// Imports a root filesystem tarball as an image and returns its id.
    /// `changes` are Dockerfile instructions such as `ENV PATH=…`.
    pub fn import(
        &self,
        sh: &Shell,
        tarball: &Path,
        changes: &[&str],
        tag: &str,
    ) -> anyhow::Result<String> {
        let mut args: Vec<OsString> = vec!["import".into()];
        for change in changes {
            args.push("--change".into());
            args.push((*change).into());
        }
        args.push(tarball.into());
        args.push(tag.into());
        let id = self
            .output(sh, args)
            .with_context(|| format!("cannot import {} as {tag}", tarball.display()))?;
        Ok(id.trim().to_owned())
    }

    /// The `repository:tag` names the engine has for one repository.
    pub fn tags_of(&self, sh: &Shell, repository: &str) -> anyhow::Result<Vec<String>> {
        let listing = self.output(
            sh,
            [
                "image",
                "ls",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                repository,
            ],
        )?;
        Ok(listing.lines().map(str::to_owned).collect())
    }

    /// Removes a tag (the image too, when nothing else uses it).
    pub fn remove_image(&self, sh: &Shell, reference: &str) -> anyhow::Result<()> {
        self.output(sh, ["image", "rm", reference])
            .with_context(|| format!("cannot remove image {reference}"))?;
        Ok(())
    }

    /// Every path in the image's filesystem, as `tar -t` lists the export of a
    /// container created (never started) from it.
    pub fn image_paths(&self, sh: &Shell, reference: &str) -> anyhow::Result<Vec<String>> {
        let container = self
            .output(sh, ["create", "--entrypoint", "/", reference])
            .with_context(|| format!("cannot create a container from {reference}"))?;
        let container = container.trim();
        let listing = duct::cmd!(&self.client, "export", container)
            .pipe(duct::cmd!("tar", "-t"))
            .stderr_null()
            .read();
        // `--volumes`: the image declares a VOLUME, whose anonymous volume
        // would otherwise outlive the container.
        let removed = self.output(sh, ["rm", "--volumes", container]);
        let listing = listing.with_context(|| format!("cannot list the files of {reference}"))?;
        removed?;
        Ok(parse_tar_listing(&listing))
    }
}

/// Engines word it `No such image` or, older ones, `no such image`.
fn is_missing_image(error: &str) -> bool {
    error.to_ascii_lowercase().contains("no such image")
}

/// `tar -t` prints `./etc/passwd` or `etc/passwd`, directories with a
/// trailing slash; this gives `etc/passwd` and `etc`.
pub fn parse_tar_listing(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|line| line.trim_start_matches("./").trim_end_matches('/'))
        .filter(|path| !path.is_empty() && *path != ".")
        .map(str::to_owned)
        .collect()
}

/// One BuildKit build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub no_cache: bool,
    /// Runs every `RUN` without a network.
    pub network_none: bool,
    pub platform: Option<String>,
    pub cache_from: Vec<String>,
    pub cache_to: Vec<String>,
    /// Where the builder writes the new image's id.
    pub iidfile: PathBuf,
}

/// The arguments of the build command for a builder. Fails for what the
/// builder cannot do, rather than dropping it.
pub fn build_args(kind: BuilderKind, request: &BuildRequest) -> anyhow::Result<Vec<OsString>> {
    let mut args: Vec<OsString> = match kind {
        BuilderKind::Buildx => vec!["buildx".into(), "build".into(), "--load".into()],
        BuilderKind::BuiltIn => {
            if !request.cache_to.is_empty() {
                anyhow::bail!("--cache-to needs the buildx plugin: run `{}`", tools::SETUP);
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
/// and returns the new image's id.
pub fn build(sh: &Shell, builder: &Builder, request: &BuildRequest) -> anyhow::Result<String> {
    let args = build_args(builder.kind, request)?;
    let client = &builder.client;
    let mut command = xshell::cmd!(sh, "{client} {args...}");
    if builder.kind == BuilderKind::BuiltIn {
        command = command.env("DOCKER_BUILDKIT", "1");
    }
    process::run(command).context("the image build failed; BuildKit's output above says where")?;
    let id = sh.read_file(&request.iidfile).with_context(|| {
        format!(
            "the build wrote no image id to {}",
            request.iidfile.display()
        )
    })?;
    Ok(id.trim().to_owned())
}

/// What `docker image inspect` says about an image, as far as the xtask reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Unpacked size of all layers, in bytes.
    pub size: u64,
    pub config: ImageConfig,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    pub user: String,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub entrypoint: Option<Vec<String>>,
    pub healthcheck: Option<Healthcheck>,
    /// Mount points the image declares with VOLUME.
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
}

/// Durations are in nanoseconds, as the engine reports them; 0 means the default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RootFs {
    pub layers: Vec<String>,
}

impl ImageInspect {
    /// Reads the JSON array `docker image inspect` prints for one image.
    pub fn parse(json: &str) -> anyhow::Result<ImageInspect> {
        let mut images: Vec<ImageInspect> = serde_json::from_str(json)?;
        match images.len() {
            1 => Ok(images.remove(0)),
            n => anyhow::bail!("expected one image, the inspection has {n}"),
        }
    }

    /// The image's name for people: its first tag, else its short id.
    pub fn display_name(&self) -> String {
        self.repo_tags
            .as_ref()
            .and_then(|tags| tags.first().cloned())
            .unwrap_or_else(|| image_history::short_id(&self.id))
    }

    pub fn layer_count(&self) -> usize {
        self.root_fs.layers.len()
    }

    pub fn exposes(&self, port: u16) -> bool {
        self.config
            .exposed_ports
            .as_ref()
            .is_some_and(|ports| ports.contains_key(&format!("{port}/tcp")))
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = include_str!("../fixtures/image-inspect.json");
    const TINY_INSPECT: &str = include_str!("../fixtures/tiny-inspect.json");
    const SERVER_INSPECT: &str = include_str!("../fixtures/server-inspect.json");

    #[test]
    fn reads_the_configuration_of_a_built_image() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        assert_eq!(image.config.user, "65532:65532");
        assert_eq!(image.config.stop_signal.as_deref(), Some("SIGTERM"));
        assert!(image.exposes(8080));
        assert!(!image.exposes(80));
        assert_eq!(image.layer_count(), 3);
        assert_eq!(image.size, 27_553_803);
        let health = image.config.healthcheck.unwrap();
        assert_eq!(
            health.test,
            ["CMD", "/usr/local/bin/server", "--health-check"]
        );
        assert_eq!(health.interval, 5_000_000_000);
    }

    #[test]
    fn reads_labels() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        assert_eq!(
            image.label("org.opencontainers.image.title"),
            Some("server")
        );
        assert_eq!(image.label("org.example.missing"), None);
    }

    #[test]
    fn inspect_gives_size_layers_user_and_healthcheck() {
        let image = ImageInspect::parse(SERVER_INSPECT).unwrap();
        assert!(image.size > 10_000_000);
        assert_eq!(image.root_fs.layers.len(), 3);
        assert_eq!(image.config.user, "65532:65532");
        let volumes = image.config.volumes.unwrap();
        assert_eq!(volumes.keys().collect::<Vec<_>>(), ["/data"]);
        let health = image.config.healthcheck.unwrap();
        assert_eq!(health.interval, 5_000_000_000);
        assert_eq!(health.timeout, 3_000_000_000);
    }

    #[test]
    fn the_display_name_is_the_first_tag() {
        let image = ImageInspect::parse(TINY_INSPECT).unwrap();
        assert_eq!(image.display_name(), "xtask-prove/tiny:1");
    }

    #[test]
    fn an_image_without_configuration_still_parses() {
        let json = r#"[{"Id":"sha256:1","Size":0,"Config":{},"RootFS":{"Type":"layers"}}]"#;
        let image = ImageInspect::parse(json).unwrap();
        assert_eq!(image.layer_count(), 0);
        assert!(image.config.healthcheck.is_none());
    }

    #[test]
    fn an_inspection_of_no_image_is_an_error() {
        assert!(ImageInspect::parse("[]").is_err());
    }

    #[test]
    fn a_missing_image_is_recognised_in_either_wording() {
        assert!(is_missing_image(
            "`docker image inspect nosuch:1` failed: Error response from daemon: no such image: nosuch:1: No such image: nosuch:1"
        ));
        assert!(!is_missing_image(
            "`docker image inspect x` failed: Cannot connect to the Docker daemon"
        ));
    }

    #[test]
    fn tar_listings_become_plain_paths() {
        let listing = "./\n./bin\n./etc/\n./etc/passwd\nusr/bin/\n";
        assert_eq!(
            parse_tar_listing(listing),
            ["bin", "etc", "etc/passwd", "usr/bin"]
        );
    }

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
                "--load",
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

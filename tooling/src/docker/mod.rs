//! Talking to the docker engine: every docker invocation of the xtask is in
//! this module. Here: the client whose engine answers, images (inspect,
//! import, tags, files). Its submodules build, run, save and read history.
//!
//! What docker prints is parsed by pure functions, tested on fixtures
//! without an engine.

pub mod build;
pub mod container;
pub mod hardening;
pub mod history;
pub mod oci_layout;
pub mod save;
pub mod tar_stream;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::Deserialize;
use xshell::Shell;

use crate::process;
use crate::tools::{self, Tool};

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

    /// Copies one file out of an image, through a container created (never
    /// started) from it.
    pub fn copy_from_image(
        &self,
        sh: &Shell,
        reference: &str,
        path: &str,
        destination: &Path,
    ) -> anyhow::Result<()> {
        let container = self
            .output(sh, ["create", "--entrypoint", "/", reference])
            .with_context(|| format!("cannot create a container from {reference}"))?;
        let container = container.trim();
        let copied = self.output(
            sh,
            [
                OsString::from("cp"),
                format!("{container}:{path}").into(),
                destination.into(),
            ],
        );
        let removed = self.output(sh, ["rm", "--volumes", container]);
        copied.with_context(|| format!("cannot copy {path} out of {reference}"))?;
        removed?;
        Ok(())
    }

    /// Every path in the image's filesystem, as `tar -t` lists the export of a
    /// container created (never started) from it.
    pub fn image_paths(&self, sh: &Shell, reference: &str) -> anyhow::Result<Vec<String>> {
        let container = self
            .output(sh, ["create", "--entrypoint", "/", reference])
            .with_context(|| format!("cannot create a container from {reference}"))?;
        let container = container.trim();
        let listing = process::stream(
            &format!("export a container of {reference}"),
            sh.cmd(&self.client).args(["export", container]),
        )
        .and_then(|export| export_paths(export).context("cannot read the export"));
        // `--volumes`: the image declares a VOLUME, whose anonymous volume
        // would otherwise outlive the container.
        let removed = self.output(sh, ["rm", "--volumes", container]);
        let listing = listing.with_context(|| format!("cannot list the files of {reference}"))?;
        removed?;
        Ok(listing)
    }
}

/// Engines word it `No such image` or, older ones, `no such image`.
fn is_missing_image(error: &str) -> bool {
    error.to_ascii_lowercase().contains("no such image")
}

/// `tar -t` prints `./etc/passwd` or `etc/passwd`, directories with a
/// trailing slash; this gives `etc/passwd` and `etc`.
fn export_paths(export: impl std::io::Read) -> anyhow::Result<Vec<String>> {
    let mut paths = Vec::new();
    for entry in tar::Archive::new(export).entries()? {
        let entry = entry?;
        paths.push(entry.path()?.to_string_lossy().into_owned());
    }
    Ok(normalized_paths(paths.iter().map(String::as_str)))
}

/// Archive paths as the image holds them: no `./`, no trailing `/`.
pub fn normalized_paths<'a>(paths: impl Iterator<Item = &'a str>) -> Vec<String> {
    paths
        .map(|line| line.trim_start_matches("./").trim_end_matches('/'))
        .filter(|path| !path.is_empty() && *path != ".")
        .map(str::to_owned)
        .collect()
}

/// The engine's platform for this machine, as `docker build --platform` names it.
pub(crate) fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// What `docker image inspect` says about an image, as far as the xtask reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Registry manifest digests; none until the image is pushed.
    #[serde(default)]
    pub repo_digests: Option<Vec<String>>,
    /// `amd64`, `arm64`.
    #[serde(default)]
    pub architecture: String,
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
    /// `NAME=value` pairs.
    pub env: Option<Vec<String>>,
    pub working_dir: String,
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
            .unwrap_or_else(|| history::short_id(&self.id))
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

    /// The image's HEALTHCHECK command, its program and arguments, when it
    /// is an exec-form `CMD` that runs without a shell.
    pub fn healthcheck_command(&self) -> anyhow::Result<(String, Vec<String>)> {
        let test = self
            .config
            .healthcheck
            .as_ref()
            .map(|h| h.test.clone())
            .unwrap_or_default();
        match test.split_first() {
            Some((kind, command)) if kind == "CMD" && !command.is_empty() => {
                Ok((command[0].clone(), command[1..].to_vec()))
            }
            _ => anyhow::bail!(
                "the image's HEALTHCHECK is {test:?}, not an exec-form CMD that can run without a shell"
            ),
        }
    }

    /// The value the image's environment gives `name`.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.config
            .env
            .as_ref()?
            .iter()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = include_str!("../../fixtures/image-inspect.json");
    const TINY_INSPECT: &str = include_str!("../../fixtures/tiny-inspect.json");
    const SERVER_INSPECT: &str = include_str!("../../fixtures/server-inspect.json");

    #[test]
    fn reads_the_configuration_of_a_built_image() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        assert_eq!(image.config.user, "65532:65532");
        assert_eq!(image.config.stop_signal.as_deref(), Some("SIGTERM"));
        assert!(image.exposes(8080));
        assert!(!image.exposes(80));
        assert_eq!(image.layer_count(), 3);
        assert_eq!(image.size, 34_390_531);
        let health = image.config.healthcheck.as_ref().unwrap();
        assert_eq!(health.test, ["CMD", "/usr/local/bin/healthcheck"]);
        assert_eq!(health.interval, 5_000_000_000);
        assert_eq!(image.env("HEALTHCHECK_PORT"), Some("8080"));
        assert_eq!(image.env("DATA_DIR"), Some("/data"));
        assert_eq!(image.env("HEALTHCHECK"), None, "a name, not a prefix");
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
            normalized_paths(listing.lines()),
            ["bin", "etc", "etc/passwd", "usr/bin"]
        );
    }
}

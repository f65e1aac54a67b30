//! Building an image with BuildKit: the build command's arguments for the
//! builder found (pure, tested without an engine), and running it.

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
    /// Runs every `RUN` without a network.
    pub network_none: bool,
    pub platform: Option<String>,
    pub cache_from: Vec<String>,
    pub cache_to: Vec<String>,
    /// Where the builder writes the new image's id.
    pub iidfile: PathBuf,
    /// Where the build's output goes instead of stderr.
    pub log: Option<PathBuf>,
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
    let id = sh.read_file(&request.iidfile).with_context(|| {
        format!(
            "the build wrote no image id to {}",
            request.iidfile.display()
        )
    })?;
    Ok(id.trim().to_owned())
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

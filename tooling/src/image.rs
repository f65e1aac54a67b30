//! `cargo xtask image`: lints the Dockerfile, builds the container image
//! with BuildKit, records what it built in `target/xtask/image.json`, and
//! checks the image is what it must be.
//!
//! 1. hadolint on the Dockerfile (a finding fails the verdict, not the build);
//! 2. the build context, from `cargo metadata` (`context.rs`);
//! 3. offline: the local base images (`offline.rs`), made when out of date;
//! 4. the BuildKit build, its output on stderr;
//! 5. the image's conformance (`conformance.rs`), its stop signal proved
//!    (`stop_signal.rs`), and `image.json`.
//!
//! `reproducible` replaces 4 and 5: two builds with no cache into
//! OCI archives, their digests compared, and what differs named
//! (`reproducible.rs`, `layout_diff.rs`).

mod conformance;
mod layout_diff;
pub(crate) mod reproducible;
mod stop_signal;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use xshell::Shell;

use crate::build_context::{self, Bases, bundled};
use crate::checks::{Check, Verdict};
use crate::docker::Docker;
use crate::docker::build::{self, BuildRequest, BuilderFacts, Output};
use crate::flags;
use crate::git::{self, Revision};
use crate::hadolint;
use crate::last_build::ImageReport;
use crate::metadata::{self, Metadata, Runtime};
use crate::output;
use crate::provenance::{self, Base, Recipe};
use crate::tools::{self, Builder};
use conformance::Expectations;

/// Everything one build needs, decided before it runs.
pub(crate) struct Plan {
    pub root: std::path::PathBuf,
    pub lint: Check,
    pub docker: Docker,
    pub builder: Builder,
    pub facts: BuilderFacts,
    pub revision: Revision,
    pub tags: Vec<String>,
    pub created: String,
    pub bases: Bases,
    pub request: BuildRequest,
}

impl Plan {
    /// The planned build, into an OCI archive at `dest` with its layer
    /// times rewritten: what a registry would receive, bit for bit.
    pub(crate) fn archive_request(&self, dest: &Path) -> BuildRequest {
        BuildRequest {
            output: Output::OciArchive(dest.to_path_buf()),
            rewrite_timestamps: true,
            // Beside the archive: `image`'s own id file may be read meanwhile.
            iidfile: dest.with_extension("iid"),
            ..self.request.clone()
        }
    }

    /// What the build is made from and by, for its provenance.
    pub(crate) fn recipe(&self, sh: &Shell) -> anyhow::Result<Recipe> {
        let resolve = |role: &str, reference: &str| {
            if reference == "minimal" {
                // The Dockerfile's own stage, not an image.
                Base {
                    role: role.to_owned(),
                    reference: format!("stage:{reference}"),
                    digest: None,
                }
            } else {
                Base::resolve(sh, &self.docker, role, reference)
            }
        };
        let mut bases = vec![
            resolve("builder", &self.bases.builder),
            resolve("runtime", &self.bases.runtime),
        ];
        if let Some(vendor) = &self.bases.vendor {
            bases.push(resolve("vendor", vendor));
        }
        let build_args: std::collections::BTreeMap<String, String> =
            self.request.build_args.iter().cloned().collect();
        Ok(Recipe {
            source: build_args.get("SOURCE").cloned().unwrap_or_default(),
            commit: self.revision.commit.clone(),
            clean: !self.revision.dirty,
            cargo_lock_sha256: provenance::sha256_of(&self.root.join("Cargo.lock"))?,
            bases,
            build_args,
            xtask_version: env!("CARGO_PKG_VERSION").to_owned(),
            engine: self.facts.engine.clone(),
            buildkit: self.facts.buildkit.clone(),
            builder: format!(
                "{}/{}",
                match self.builder.kind {
                    tools::BuilderKind::Buildx => "buildx",
                    tools::BuilderKind::BuiltIn => "docker-build",
                },
                self.facts.driver
            ),
        })
    }
}

impl flags::Image {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        if self.check_reproducible.is_some() {
            build::choose_engine(sh)?;
        }
        let plan = self.plan(sh, metadata)?;
        if let Some(rebuild) = self.check_reproducible {
            return reproducible::check(sh, &plan, &metadata.package, rebuild);
        }
        self.build(sh, metadata, plan)
    }

    /// Lints, finds the builder, makes the offline stand-ins when asked,
    /// and writes the build context.
    fn plan(&self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Plan> {
        let root = sh.current_dir();
        let dockerfile = build_context::Dockerfile::read(&root, metadata)?;
        let lint = lint(sh, &dockerfile.path);
        let docker = Docker::connect(sh)?;
        let builder = tools::require_buildkit(sh)?;
        let facts = BuilderFacts::read(sh, &builder)?;
        if self.offline {
            check_offline_platform(self.platform.as_deref())?;
        }

        let revision = Revision::read(sh)?;
        let tags = if self.tags.is_empty() {
            metadata.default_tags(
                &revision.describe(&revision.short),
                &self.tag_suffix(metadata),
            )
        } else {
            self.tags.clone()
        };
        let epoch = source_date_epoch(&revision)?;
        let created = git::rfc3339_utc(epoch);
        let mut bases = self.bases(sh, &docker, &root, metadata, &dockerfile.text)?;
        if self.runtime(metadata) == Runtime::Minimal {
            // The Dockerfile's stage of that name, not an image.
            "minimal".clone_into(&mut bases.runtime);
        }
        let work = root.join("target/xtask");
        sh.create_dir(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        let prepared =
            build_context::prepare(sh, &root, metadata, &dockerfile, &work.join("image"))?;
        let source = prepared
            .repository
            .or_else(|| git::remote_url(sh))
            .unwrap_or_default();
        let defines_size_profile = metadata::root_manifest_has(&root, &["profile", "size"]);
        if self.optimize && !defines_size_profile {
            eprintln!(
                "image: {} defines no [profile.size]; building with the built-in one (opt-level \"z\", fat LTO, one codegen unit, panic = \"abort\", stripped)",
                root.join("Cargo.toml").display()
            );
        }
        let mut build_args = self.build_args(
            metadata,
            &revision,
            (&created, &source),
            &bases,
            defines_size_profile,
        );
        build_args.push(("CRATES_DIGEST".to_owned(), prepared.crates_digest));
        let request = BuildRequest {
            context: ".".into(),
            dockerfile: prepared.dockerfile,
            tags: tags.clone(),
            build_args,
            no_cache: self.no_cache,
            no_cache_stages: Vec::new(),
            network_none: self.offline,
            platform: self.platform.clone(),
            cache_from: self.cache_from.clone(),
            cache_to: self.cache_to.clone(),
            iidfile: work.join("image.iid"),
            log: None,
            output: Output::Load,
            rewrite_timestamps: facts.reproducible().is_ok(),
            source_date_epoch: Some(epoch),
        };
        Ok(Plan {
            root,
            lint,
            docker,
            builder,
            facts,
            revision,
            tags,
            created,
            bases,
            request,
        })
    }

    /// Builds into an OCI archive at `dest` (several platforms make one
    /// index), on an engine that can export one: the one at hand, or the
    /// one `setup --reproducible-engine` started. Returns the archive.
    pub(crate) fn build_archive(
        &self,
        sh: &Shell,
        metadata: &Metadata,
        dest: &Path,
    ) -> anyhow::Result<std::path::PathBuf> {
        build::choose_engine(sh)?;
        let plan = self.plan(sh, metadata)?;
        if let Some(dir) = dest.parent() {
            sh.create_dir(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        build::build(sh, &plan.builder, &plan.archive_request(dest))?;
        Ok(dest.to_path_buf())
    }

    /// Builds into the engine, then proves the image conforms.
    fn build(self, sh: &Shell, metadata: &Metadata, plan: Plan) -> anyhow::Result<Verdict> {
        let start = Instant::now();
        let built = build::build(sh, &plan.builder, &plan.request);
        if built.is_err() && !self.offline {
            eprintln!("hint: the base images come from a registry; without one, use --offline");
        }
        let image_id = built?;
        let duration_secs = start.elapsed().as_secs_f64();
        // After the build: an online base is only then in the engine.
        let recipe = plan.recipe(sh)?;
        let Plan {
            root,
            lint,
            docker,
            builder,
            facts,
            revision,
            tags,
            created,
            bases,
            request: _,
        } = plan;

        let image = docker.inspect_image(sh, &image_id)?;
        let paths = docker.image_paths(sh, &image_id)?;
        let mut checks = vec![lint];
        checks.extend(conformance::checks(
            &image,
            &paths,
            &Expectations::of(metadata),
        ));
        checks.extend(stop_signal::checks(
            sh,
            &docker,
            (&image_id, &image),
            self.platform.as_deref(),
            metadata,
        ));
        let report = ImageReport {
            image_id,
            tags,
            size_bytes: image.size,
            layers: image.layer_count(),
            duration_secs,
            offline_prepare_secs: bases.prepare_secs,
            optimize: self.optimize,
            offline: self.offline,
            profile: self.profile().to_owned(),
            version: metadata.version.clone(),
            revision: revision.describe(&revision.commit),
            created,
            builder_image: bases.builder,
            runtime_image: bases.runtime,
            vendor_image: bases.vendor,
            platform: self.platform,
            builder: builder.to_string(),
            recipe: Some(recipe),
            violations: checks
                .iter()
                .filter(|c| c.failed())
                .map(|c| format!("{}: {}", c.name, c.actual.as_deref().unwrap_or_default()))
                .collect(),
        };
        let path = report.save(&root)?;
        let mut verdict = verdict(&report, path.strip_prefix(&root).unwrap_or(&path), checks);
        if facts.reproducible().is_err() {
            let _ = writeln!(
                verdict.text,
                "  layer times not rewritten: engine {} cannot (`reproducible` says why)",
                facts.engine
            );
        }
        Ok(verdict)
    }
}

/// The build's account, its headline and its checks.
fn verdict(report: &ImageReport, saved: &Path, checks: Vec<Check>) -> Verdict {
    let conforming = if checks.iter().any(Check::failed) {
        "does not conform"
    } else {
        "conforms"
    };
    Verdict {
        text: summary(report, saved),
        headline: format!(
            "{}, {} layers, {conforming}",
            output::size(report.size_bytes),
            report.layers
        ),
        checks,
        ..Verdict::new("image", report.reference().to_owned()).with_details(report)
    }
}

/// hadolint on the Dockerfile: a finding is shown now and fails the
/// verdict, but does not stop the build.
fn lint(sh: &Shell, dockerfile: &Path) -> Check {
    let lint = hadolint::check(sh, dockerfile);
    if lint.failed() {
        eprintln!(
            "image: hadolint: {}",
            lint.actual.as_deref().unwrap_or(&lint.measured)
        );
    }
    lint
}

impl flags::Image {
    /// `--runtime`, else the manifest's.
    pub(crate) fn runtime(&self, metadata: &Metadata) -> Runtime {
        self.runtime.unwrap_or(metadata.runtime)
    }

    /// What tells this build's tags apart: `-minimal`, `-optimized`, both
    /// or neither.
    pub(crate) fn tag_suffix(&self, metadata: &Metadata) -> String {
        let mut suffix = String::new();
        if self.runtime(metadata) == Runtime::Minimal {
            suffix.push_str("-minimal");
        }
        if self.optimize {
            suffix.push_str("-optimized");
        }
        suffix
    }

    /// Packages the offline builder must hold besides its own: the
    /// manifest's builder packages, and for the minimal runtime its extras.
    /// With neither, the builder stays as it was.
    fn builder_extras(&self, metadata: &Metadata) -> Vec<String> {
        let mut extras = metadata.builder_packages.clone();
        if self.runtime(metadata) == Runtime::Minimal {
            extras.extend(metadata.runtime_extras.iter().cloned());
        }
        extras.sort();
        extras.dedup();
        extras
    }

    /// cargo's environment in the build: the table's `build-env`, and for
    /// `--optimize` where the root manifest defines no `size` profile, the
    /// built-in one (the table's own variables win).
    fn build_env(
        &self,
        metadata: &Metadata,
        defines_size_profile: bool,
    ) -> std::collections::BTreeMap<String, String> {
        let mut env = std::collections::BTreeMap::new();
        if self.optimize && !defines_size_profile {
            env.extend(bundled::size_profile_env());
        }
        env.extend(metadata.build_env.clone());
        env
    }

    /// `--optimize` builds with the workspace's size-tuned profile.
    pub(crate) fn profile(&self) -> &'static str {
        if self.optimize { "size" } else { "release" }
    }

    /// The Dockerfile's defaults online; local stand-ins offline.
    fn bases(
        &self,
        sh: &Shell,
        docker: &Docker,
        root: &Path,
        metadata: &Metadata,
        dockerfile: &str,
    ) -> anyhow::Result<Bases> {
        if self.offline {
            let stand_ins =
                crate::stand_ins::prepare(sh, docker, root, &self.builder_extras(metadata))?;
            return Ok(Bases {
                builder: stand_ins.builder,
                runtime: stand_ins.runtime,
                vendor: Some(stand_ins.vendor),
                prepare_secs: Some(stand_ins.prepare_secs),
            });
        }
        Ok(Bases {
            builder: arg_default(dockerfile, "BUILDER_IMAGE").unwrap_or_default(),
            runtime: arg_default(dockerfile, "RUNTIME_IMAGE").unwrap_or_default(),
            vendor: None,
            prepare_secs: None,
        })
    }

    /// The Dockerfile's build arguments: what to build, profile, UPX packing, OCI labels, and for
    /// offline builds the stand-in images.
    /// `labels` are the creation time and the source's URL;
    /// `defines_size_profile`, whether the root manifest has `[profile.size]`.
    pub(crate) fn build_args(
        &self,
        metadata: &Metadata,
        revision: &Revision,
        (created, source): (&str, &str),
        bases: &Bases,
        defines_size_profile: bool,
    ) -> Vec<(String, String)> {
        let mut args = vec![
            ("PACKAGE", metadata.package.clone()),
            ("BINARY", metadata.binary.clone()),
            ("PORT", metadata.port.to_string()),
            ("HEALTH_PATH", metadata.health_path.clone()),
            ("DATA_DIR", metadata.data_dir.clone()),
            (
                "MINIMAL_ROOTFS",
                (self.runtime(metadata) == Runtime::Minimal).to_string(),
            ),
            ("MINIMAL_EXTRAS", metadata.runtime_extras.join(" ")),
            ("BUILDER_PACKAGES", metadata.builder_packages.join(" ")),
            (
                "BUILD_ENV",
                shell_assignments(&self.build_env(metadata, defines_size_profile)),
            ),
            (
                "RUNTIME_FILES",
                metadata
                    .runtime_files
                    .iter()
                    .map(|file| format!("{}:{}", file.from, file.to))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("PROFILE", self.profile().to_owned()),
            ("UPX_PACK", self.optimize.to_string()),
            ("SOURCE", source.to_owned()),
            ("REVISION", revision.describe(&revision.commit)),
            ("VERSION", metadata.version.clone()),
            ("CREATED", created.to_owned()),
        ];
        if self.offline {
            args.extend([
                ("BUILDER_IMAGE", bases.builder.clone()),
                ("VENDOR_IMAGE", bases.vendor.clone().unwrap_or_default()),
            ]);
        }
        if self.offline || self.runtime(metadata) == Runtime::Minimal {
            args.push(("RUNTIME_IMAGE", bases.runtime.clone()));
        }
        // Platforms of this host's architecture share one compile, on the
        // host's platform; another architecture compiles on its own.
        if let Some(list) = &self.platform
            && list
                .split(',')
                .all(|platform| of_host_architecture(platform.trim()))
        {
            args.push(("COMPILE_PLATFORM", crate::docker::host_platform()));
        }
        args.into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }
}

/// `NAME='value'` words a shell reads back exactly (the Dockerfile `eval`s
/// them): every value single-quoted, its own quotes escaped.
fn shell_assignments(variables: &std::collections::BTreeMap<String, String>) -> String {
    variables
        .iter()
        .map(|(name, value)| format!("{name}='{}'", value.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The stand-ins are made for the host's architecture only.
/// The stand-ins are this host's architecture; its variants
/// (`linux/amd64/v2`) run on it too. `platform` may list several.
fn check_offline_platform(platform: Option<&str>) -> anyhow::Result<()> {
    for platform in platform.into_iter().flat_map(|list| list.split(',')) {
        let platform = platform.trim();
        if !of_host_architecture(platform) {
            anyhow::bail!(
                "--offline builds for this host's platform ({}) and its variants only, not {platform}",
                crate::docker::host_platform()
            );
        }
    }
    Ok(())
}

/// Whether `platform` is this host's (`linux/amd64`) or one of its variants
/// (`linux/amd64/v2`): code compiled here runs there.
fn of_host_architecture(platform: &str) -> bool {
    let host = crate::docker::host_platform();
    platform == host
        || platform
            .strip_prefix(&host)
            .is_some_and(|variant| variant.starts_with('/'))
}

/// The image's creation time: `SOURCE_DATE_EPOCH` when set, as reproducible
/// builds agree, otherwise the commit time, so that rebuilding one commit
/// gives the same configuration.
fn source_date_epoch(revision: &Revision) -> anyhow::Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds")),
        Err(_) => Ok(revision.commit_time),
    }
}

/// The default value of a Dockerfile `ARG name=value`.
fn arg_default(dockerfile: &str, name: &str) -> Option<String> {
    dockerfile.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("ARG ")?.trim();
        let value = rest.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.trim_matches('"').to_owned())
    })
}

fn summary(report: &ImageReport, path: &Path) -> String {
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52 bytes
    let megabytes = report.size_bytes as f64 / 1e6;
    let prepare = report
        .offline_prepare_secs
        .map(|secs| format!(" (offline stand-ins ready in {secs:.1} s)"))
        .unwrap_or_default();
    format!(
        "built {}\n  id       {}\n  size     {megabytes:.1} MB ({} bytes)\n  layers   {}\n  build    {:.1} s{prepare}\n  profile  {}{}\n  report   {}\n",
        report.tags.join(" "),
        report.image_id,
        report.size_bytes,
        report.layers,
        report.duration_secs,
        report.profile,
        if report.optimize { " + UPX" } else { "" },
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_file(name: &str) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        std::fs::read_to_string(root.join(name)).unwrap()
    }

    fn metadata() -> Metadata {
        Metadata::load(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()).unwrap()
    }

    #[test]
    fn reads_the_defaults_of_dockerfile_args() {
        let dockerfile = "ARG A=1\nARG BUILDER_IMAGE=rust:1-slim\nARG EMPTY=\"\"\nARG NONE\n";
        assert_eq!(
            arg_default(dockerfile, "BUILDER_IMAGE").as_deref(),
            Some("rust:1-slim")
        );
        assert_eq!(arg_default(dockerfile, "EMPTY").as_deref(), Some(""));
        assert_eq!(arg_default(dockerfile, "NONE"), None);
        assert_eq!(arg_default(dockerfile, "BUILDER"), None);
    }

    #[test]
    fn the_default_builder_has_the_pinned_toolchain_on_debian_13() {
        let toolchain: toml::Table =
            toml::from_str(&workspace_file("rust-toolchain.toml")).unwrap();
        let channel = toolchain["toolchain"]["channel"].as_str().unwrap();
        let builder = arg_default(&workspace_file("Dockerfile"), "BUILDER_IMAGE").unwrap();
        assert_eq!(builder, format!("rust:{channel}-slim-trixie"));
    }

    #[test]
    fn the_default_runtime_is_distroless_cc_on_debian_13_as_nonroot() {
        let runtime = arg_default(&workspace_file("Dockerfile"), "RUNTIME_IMAGE").unwrap();
        assert_eq!(runtime, "gcr.io/distroless/cc-debian13:nonroot");
    }

    /// A team adopting the workspace edits the manifest table, not the
    /// Dockerfile: it names no package, binary, port or path of its own.
    #[test]
    fn the_dockerfile_names_no_service() {
        let dockerfile = workspace_file("Dockerfile");
        let metadata = metadata();
        for arg in ["PACKAGE", "BINARY"] {
            assert!(dockerfile.contains(&format!("ARG {arg}\n")), "{arg}");
            assert_eq!(arg_default(&dockerfile, arg), None, "{arg} has a default");
        }
        let build_args = build_args_of(&flags(false, false));
        for arg in ["PORT", "HEALTH_PATH", "DATA_DIR"] {
            assert!(arg_default(&dockerfile, arg).is_some(), "{arg}");
            assert!(build_args.iter().any(|(name, _)| name == arg), "{arg}");
        }
        assert!(dockerfile.contains(&format!(
            "ENTRYPOINT [\"{}\"]",
            crate::metadata::SERVICE_PATH
        )));
        assert!(dockerfile.contains(&format!("CMD [\"{}\"]", crate::metadata::HEALTHCHECK_PATH)));
        assert!(dockerfile.contains("EXPOSE ${PORT}"));
        assert!(dockerfile.contains("VOLUME ${DATA_DIR}"));
        let code: String = dockerfile
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect();
        assert!(
            !code.contains(&metadata.binary),
            "the Dockerfile names {:?}",
            metadata.binary
        );
    }

    #[test]
    fn the_dockerfile_has_no_syntax_line_to_pull() {
        let dockerfile = workspace_file("Dockerfile");
        assert!(!dockerfile.lines().any(|line| line.starts_with("# syntax=")));
    }

    fn flags(optimize: bool, offline: bool) -> flags::Image {
        flags::Image {
            tags: vec![],
            optimize,
            no_cache: false,
            platform: None,
            cache_from: vec![],
            cache_to: vec![],
            offline,
            runtime: None,
            check_reproducible: None,
        }
    }

    fn bases() -> Bases {
        Bases {
            builder: "xtask-offline/builder:1".into(),
            runtime: "xtask-offline/runtime:2".into(),
            vendor: Some("xtask-offline/vendor:3".into()),
            prepare_secs: Some(0.1),
        }
    }

    fn build_args_of(image: &flags::Image) -> Vec<(String, String)> {
        let revision = Revision {
            commit: "cd8af26aaaa".into(),
            short: "cd8af26".into(),
            dirty: false,
            commit_time: 0,
        };
        image.build_args(
            &metadata(),
            &revision,
            ("1970-01-01T00:00:00Z", "https://example.com/api"),
            &bases(),
            true,
        )
    }

    fn arg<'a>(args: &'a [(String, String)], name: &str) -> Option<&'a str> {
        args.iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn the_build_names_the_metadata_package_and_binary() {
        let args = build_args_of(&flags(false, false));
        assert_eq!(arg(&args, "PACKAGE"), Some(metadata().package.as_str()));
        assert_eq!(arg(&args, "BINARY"), Some(metadata().binary.as_str()));
    }

    #[test]
    fn the_default_build_uses_the_release_profile_without_upx() {
        let args = build_args_of(&flags(false, false));
        assert_eq!(arg(&args, "PROFILE"), Some("release"));
        assert_eq!(arg(&args, "UPX_PACK"), Some("false"));
        assert_eq!(
            arg(&args, "BUILDER_IMAGE"),
            None,
            "online keeps the Dockerfile's"
        );
    }

    #[test]
    fn optimize_selects_the_size_profile_and_upx() {
        let args = build_args_of(&flags(true, false));
        assert_eq!(arg(&args, "PROFILE"), Some("size"));
        assert_eq!(arg(&args, "UPX_PACK"), Some("true"));
    }

    #[test]
    fn platforms_of_the_hosts_architecture_share_one_compile_and_others_do_not() {
        let host = crate::docker::host_platform();
        let with = |platform: Option<String>| {
            let image = flags::Image {
                platform,
                ..flags(false, false)
            };
            arg(&build_args_of(&image), "COMPILE_PLATFORM").map(str::to_owned)
        };
        assert_eq!(
            with(None),
            None,
            "the Dockerfile's default: the target's own"
        );
        assert_eq!(with(Some(format!("{host},{host}/v2"))), Some(host.clone()));
        assert_eq!(with(Some(format!("{host}, linux/s390x"))), None);
    }

    #[test]
    fn offline_points_all_three_images_at_the_stand_ins() {
        let args = build_args_of(&flags(false, true));
        assert_eq!(arg(&args, "BUILDER_IMAGE"), Some("xtask-offline/builder:1"));
        assert_eq!(arg(&args, "RUNTIME_IMAGE"), Some("xtask-offline/runtime:2"));
        assert_eq!(arg(&args, "VENDOR_IMAGE"), Some("xtask-offline/vendor:3"));
    }

    #[test]
    fn the_labels_name_source_revision_version_and_time() {
        let args = build_args_of(&flags(false, false));
        assert_eq!(arg(&args, "REVISION"), Some("cd8af26aaaa"));
        assert_eq!(arg(&args, "VERSION"), Some(metadata().version.as_str()));
        assert_eq!(arg(&args, "CREATED"), Some("1970-01-01T00:00:00Z"));
        assert_eq!(arg(&args, "SOURCE"), Some("https://example.com/api"));
    }

    #[test]
    fn build_variables_reach_a_shell_exactly_as_written() {
        let variables = std::collections::BTreeMap::from([
            ("SQLX_OFFLINE".to_owned(), "true".to_owned()),
            ("GREETING".to_owned(), "it's $HOME; `x`".to_owned()),
        ]);
        let words = shell_assignments(&variables);
        // As the Dockerfile's RUN does, with the words as the build argument.
        let sh = xshell::Shell::new().unwrap();
        let script = r#"eval "export ${BUILD_ENV}"; printf '%s|%s' "$GREETING" "$SQLX_OFFLINE""#;
        let printed = xshell::cmd!(sh, "sh -c {script}")
            .env("BUILD_ENV", &words)
            .read()
            .unwrap();
        assert_eq!(printed, "it's $HOME; `x`|true");
    }

    #[test]
    fn offline_builds_refuse_a_foreign_platform() {
        assert!(check_offline_platform(None).is_ok());
        assert!(check_offline_platform(Some(&crate::docker::host_platform())).is_ok());
        let error = check_offline_platform(Some("linux/s390x")).unwrap_err();
        assert!(error.to_string().contains("linux/s390x"), "{error}");
        let variants = format!("{0},{0}/v2", crate::docker::host_platform());
        assert!(check_offline_platform(Some(&variants)).is_ok());
        let mixed = format!("{},linux/s390x", crate::docker::host_platform());
        assert!(check_offline_platform(Some(&mixed)).is_err());
    }

    #[test]
    fn the_summary_names_id_size_layers_and_duration() {
        let report = ImageReport {
            optimize: true,
            profile: "size".into(),
            duration_secs: 3.94,
            offline_prepare_secs: None,
            ..crate::last_build::tests::example()
        };
        let text = summary(&report, Path::new("target/xtask/image.json"));
        for part in [
            "sha256:53dc",
            "27.6 MB",
            "layers   3",
            "3.9 s",
            "size + UPX",
        ] {
            assert!(text.contains(part), "{part} missing from\n{text}");
        }
    }
}

//! The builds the benchmark compares, each made from its own copy of
//! the work tree, so that the edits it times never touch the real one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

use crate::build_context::Bases;
use crate::docker::build::BuildRequest;
use crate::flags;
use crate::git::Revision;
use crate::metadata::Metadata;

const NAIVE_DOCKERFILE: &str = include_str!("naive.Dockerfile");
const CHEF_SLIM_DOCKERFILE: &str = include_str!("chef-slim.Dockerfile");
const CHEF_TARGET_CACHE_DOCKERFILE: &str = include_str!("chef-target-cache.Dockerfile");
const CHEF_SCCACHE_DOCKERFILE: &str = include_str!("chef-sccache.Dockerfile");

/// Where the snapshot of the sccache arm holds the sccache binary.
pub const SCCACHE_IN_CONTEXT: &str = ".bench-tools/sccache";

/// The alternatives' build context leaves out only what no team sends.
const ALTERNATIVE_DOCKERIGNORE: &str = "target/\n.git/\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// A plain multi-stage build of the workspace on a slim runtime.
    Naive,
    /// cargo-chef as its README shows it, on a slim runtime.
    ChefSlim,
    /// cargo-chef with `target/` in a BuildKit cache mount.
    ChefTargetCache,
    /// cargo-chef with sccache, its cache in a BuildKit cache mount.
    ChefSccache,
    /// `cargo build --release` on the host: the floor, no image.
    Host,
    /// This project's `cargo xtask image`.
    Project,
    /// This project's `cargo xtask image --optimize`.
    ProjectOptimized,
    /// This project's `cargo xtask image --runtime minimal`.
    ProjectMinimal,
}

impl Variant {
    pub const ALL: [Variant; 8] = [
        Variant::Naive,
        Variant::ChefSlim,
        Variant::ChefTargetCache,
        Variant::ChefSccache,
        Variant::Host,
        Variant::Project,
        Variant::ProjectOptimized,
        Variant::ProjectMinimal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Naive => "naive",
            Variant::ChefSlim => "chef-slim",
            Variant::ChefTargetCache => "chef-target-cache",
            Variant::ChefSccache => "chef-sccache",
            Variant::Host => "host",
            Variant::Project => "project",
            Variant::ProjectOptimized => "project-optimized",
            Variant::ProjectMinimal => "project-minimal",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Variant::Naive => "multi-stage, cargo build --release, Debian 13 slim",
            Variant::ChefSlim => "cargo-chef per its README, Debian 13 slim",
            Variant::ChefTargetCache => {
                "cargo-chef with target/ in a BuildKit cache mount, the binary copied out, Debian 13 slim"
            }
            Variant::ChefSccache => {
                "cargo-chef with sccache (from crates.io), its cache in a BuildKit cache mount, Debian 13 slim"
            }
            Variant::Host => {
                "cargo build --release of the service on the host: the floor, no image"
            }
            Variant::Project => "cargo xtask image (distroless-style cc, chef, cache mounts)",
            Variant::ProjectOptimized => "cargo xtask image --optimize (size profile, UPX)",
            Variant::ProjectMinimal => {
                "cargo xtask image --runtime minimal (the binaries' ELF closure, no distroless base)"
            }
        }
    }

    /// Whether the variant makes an image (all but `host`).
    pub fn builds_image(self) -> bool {
        self != Variant::Host
    }

    fn is_project(self) -> bool {
        matches!(
            self,
            Variant::Project | Variant::ProjectOptimized | Variant::ProjectMinimal
        )
    }

    /// The file a one-line change to the server's code goes into.
    pub const SERVER_FILE: &'static str = "server/src/main.rs";
    /// Files outside the server's code: the xtask and a server test.
    pub const OUTSIDE_FILES: [&'static str; 2] = ["tooling/src/lib.rs", "server/tests/api.rs"];
}

/// The base images every variant builds from, all made offline.
pub struct VariantBases {
    pub project: Bases,
    /// The slim runtime of the alternatives.
    pub slim: String,
}

/// Copies the files git knows of (tracked, or new and not ignored) into
/// `dir`, with the variant's Dockerfile and ignore file: the project's, as
/// `cargo xtask image` writes them, or the alternative's own.
pub fn snapshot(
    sh: &Shell,
    root: &Path,
    dir: &Path,
    variant: Variant,
    metadata: &Metadata,
) -> anyhow::Result<()> {
    sh.remove_path(dir)?;
    let listing = crate::process::read(xshell::cmd!(
        sh,
        "git ls-files -z --cached --others --exclude-standard"
    ))
    .context("cannot list the work tree's files")?;
    for path in listing.split('\0').filter(|p| !p.is_empty()) {
        let from = root.join(path);
        if !from.is_file() {
            continue; // deleted in the work tree, not yet in the index
        }
        let to = dir.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("cannot copy {path}"))?;
    }
    let (dockerfile, ignore) = match variant {
        Variant::Naive => (Some(NAIVE_DOCKERFILE), Some(ALTERNATIVE_DOCKERIGNORE)),
        Variant::ChefSlim => (Some(CHEF_SLIM_DOCKERFILE), Some(ALTERNATIVE_DOCKERIGNORE)),
        Variant::ChefTargetCache => (
            Some(CHEF_TARGET_CACHE_DOCKERFILE),
            Some(ALTERNATIVE_DOCKERIGNORE),
        ),
        Variant::ChefSccache => (
            Some(CHEF_SCCACHE_DOCKERFILE),
            Some(ALTERNATIVE_DOCKERIGNORE),
        ),
        Variant::Project | Variant::ProjectOptimized | Variant::ProjectMinimal | Variant::Host => {
            (None, None)
        }
    };
    if let Some(dockerfile) = dockerfile {
        std::fs::write(dir.join("Dockerfile"), dockerfile)?;
    }
    if let Some(ignore) = ignore {
        std::fs::write(dir.join(".dockerignore"), ignore)?;
    }
    if variant.is_project() {
        let dockerfile = crate::build_context::Dockerfile::read(dir, metadata)?;
        crate::build_context::prepare(sh, dir, metadata, &dockerfile, &project_dir(dir))?;
    }
    Ok(())
}

/// sccache's release the `chef-sccache` variant builds with.
const SCCACHE_VERSION: &str = "0.19.0";

/// Puts sccache, built from crates.io on the host (its local cache only, no
/// cloud storage), where the `chef-sccache` Dockerfile copies it from.
/// Built once into `tools` and kept there.
pub fn add_sccache(sh: &Shell, tools: &Path, dir: &Path) -> anyhow::Result<()> {
    let binary = tools.join("bin/sccache");
    if !binary.is_file() {
        eprintln!("bench: building sccache {SCCACHE_VERSION} from crates.io (once)");
        let cargo = crate::process::cargo();
        crate::process::run(xshell::cmd!(
            sh,
            "{cargo} install --quiet --locked --no-default-features sccache --version {SCCACHE_VERSION} --root {tools}"
        ))
        .context("cannot build sccache from crates.io")?;
    }
    let to = dir.join(SCCACHE_IN_CONTEXT);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::copy(&binary, &to)
        .with_context(|| format!("cannot copy {} to {}", binary.display(), to.display()))?;
    Ok(())
}

/// Where the project's Dockerfile and its ignore file go in a snapshot.
fn project_dir(dir: &Path) -> PathBuf {
    dir.join("target/xtask/image")
}

/// The build of `variant` from its snapshot `dir`.
pub fn request(
    variant: Variant,
    dir: &Path,
    bases: &VariantBases,
    metadata: &Metadata,
    revision: &Revision,
    work: &Path,
) -> BuildRequest {
    let build_args = if variant.is_project() {
        let minimal = variant == Variant::ProjectMinimal;
        let image = flags::Image {
            tags: vec![],
            optimize: variant == Variant::ProjectOptimized,
            no_cache: false,
            platform: None,
            cache_from: vec![],
            cache_to: vec![],
            offline: true,
            runtime: minimal.then_some(crate::metadata::Runtime::Minimal),
            check_reproducible: None,
        };
        let mut project = bases.project.clone();
        if minimal {
            // The Dockerfile's stage of that name, as `image` sets it.
            "minimal".clone_into(&mut project.runtime);
        }
        let created = crate::git::rfc3339_utc(revision.commit_time);
        let defines_size_profile = crate::metadata::root_manifest_has(dir, &["profile", "size"]);
        image.build_args(
            metadata,
            revision,
            // The bench measures build time; the source label changes nothing.
            (&created, ""),
            &project,
            defines_size_profile,
        )
    } else {
        vec![
            ("BUILDER_IMAGE".to_owned(), bases.project.builder.clone()),
            ("RUNTIME_IMAGE".to_owned(), bases.slim.clone()),
            (
                "VENDOR_IMAGE".to_owned(),
                bases.project.vendor.clone().unwrap_or_default(),
            ),
        ]
    };
    BuildRequest {
        context: dir.to_path_buf(),
        dockerfile: if variant.is_project() {
            crate::build_context::written_dockerfile(&project_dir(dir), &metadata.package)
        } else {
            dir.join("Dockerfile")
        },
        tags: vec![format!(
            "{}-bench/{}:latest",
            metadata.image,
            variant.name()
        )],
        build_args,
        no_cache: false,
        no_cache_stages: vec![],
        network_none: true,
        platform: None,
        cache_from: vec![],
        cache_to: vec![],
        iidfile: work.join(format!("{}.iid", variant.name())),
        log: None,
        output: crate::docker::build::Output::Load,
        rewrite_timestamps: false,
        source_date_epoch: None,
    }
}

/// Where a variant's snapshot and logs live.
pub fn dir(work: &Path, variant: Variant) -> PathBuf {
    work.join(variant.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alternatives are written for this workspace's server; they run it
    /// as the project's image does, from the manifest table's values.
    #[test]
    fn the_alternatives_run_the_same_server_the_same_way() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let metadata = Metadata::load(root).unwrap();
        let binary = format!("/usr/local/bin/{}", metadata.binary);
        for text in [
            NAIVE_DOCKERFILE,
            CHEF_SLIM_DOCKERFILE,
            CHEF_TARGET_CACHE_DOCKERFILE,
            CHEF_SCCACHE_DOCKERFILE,
        ] {
            for line in [
                format!("ENV DATABASE_URL=sqlite://{}/server.db", metadata.data_dir),
                format!("VOLUME {}", metadata.data_dir),
                format!("EXPOSE {}", metadata.port),
                format!("CMD [\"{binary}\", \"--health-check\"]"),
                format!("ENTRYPOINT [\"{binary}\"]"),
                // The service's package alone: another member of the
                // workspace may need what the builder lacks.
                format!("--package {}", metadata.package),
            ] {
                assert!(text.contains(&line), "an alternative lacks {line}");
            }
        }
    }
}

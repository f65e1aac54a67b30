//! `cargo xtask sbom`: SPDX 2.3 and CycloneDX 1.6 documents for an image,
//! made here from what the image and the workspace say, so they need no
//! scanner and no network:
//!
//! 1. the image's Debian packages, from dpkg's database in the image
//!    (`sbom/debian.rs`);
//! 2. the crates compiled into the binary, which no image scanner can see
//!    (`sbom/crates.rs`);
//! 3. both documents, deterministic: the time is the commit's (or
//!    `SOURCE_DATE_EPOCH`), the serial number is derived from the image id
//!    (`sbom/spdx.rs`, `sbom/cyclonedx.rs`, `sbom/purl.rs`).

mod audit;
mod crates;
mod cross_check;
mod cyclonedx;
mod debian;
mod purl;
mod spdx;
mod validate;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::checks::{Check, Verdict};
use crate::docker::Docker;
use crate::flags;
use crate::git::{self, Revision};
use crate::last_build::{self, ImageRef};
use crate::metadata::{self, Metadata};
use crate::output::Table;
use crate::process;

pub use crates::CrateGraph;
pub use debian::Deb;

/// The label the image's Dockerfile records its source revision in.
const REVISION_LABEL: &str = "org.opencontainers.image.revision";

impl flags::Sbom {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let image = last_build::resolve(&root, self.image.as_deref())?;
        let made = make(sh, &root, metadata, &image)?;
        eprintln!("sbom: validating both documents, and comparing with syft's and trivy's");
        let proofs = made.proofs(sh, &root, &image);
        Ok(made.verdict(proofs))
    }
}

/// The image, as the SBOM names it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSubject {
    /// The repository part of its name: `server`.
    pub name: String,
    pub tag: Option<String>,
    /// `sha256:…`, the image config's digest.
    pub id: String,
    /// The registry's manifest digest, once pushed.
    pub digest: Option<String>,
}

impl ImageSubject {
    pub fn id_hex(&self) -> &str {
        self.id.strip_prefix("sha256:").unwrap_or(&self.id)
    }

    pub fn purl(&self) -> String {
        purl::oci(&self.name, &self.id, self.tag.as_deref())
    }

    pub fn display(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The service's binary in the image.
#[derive(Debug, Clone, Serialize)]
pub struct Binary {
    pub name: String,
    pub version: String,
    pub path: String,
    pub license: Option<String>,
}

/// Everything both documents say.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub image: ImageSubject,
    pub binary: Binary,
    pub debs: Vec<Deb>,
    /// `debian-13`, from base-files' version, for the packages' purls.
    pub distro: Option<String>,
    pub crates: CrateGraph,
    /// RFC 3339, whole seconds.
    pub created: String,
    /// The source revision the image's label names.
    pub revision: String,
    /// Derived from the image id and revision: the same inputs, the same serial.
    pub serial: String,
    pub tool_version: String,
}

/// The SBOM of one image, written.
pub struct Made {
    pub inventory: Inventory,
    pub spdx: PathBuf,
    pub cyclonedx: PathBuf,
    /// Why the crates read from the work tree may not be the image's, if so.
    crates_mismatch: Option<String>,
}

/// Where the documents go.
pub fn output_dir(root: &Path) -> PathBuf {
    root.join("target/xtask/sbom")
}

/// Reads the image and the workspace and writes both documents.
pub fn make(
    sh: &Shell,
    root: &Path,
    metadata: &Metadata,
    image: &ImageRef,
) -> anyhow::Result<Made> {
    let docker = Docker::connect(sh)?;
    let inspect = docker.inspect_image(sh, &image.reference)?;
    let display = image.display_name(&inspect);
    let (name, tag) = match display.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), Some(tag.to_owned())),
        _ => (display.clone(), None),
    };
    eprintln!("sbom: reading the Debian packages of {display}");
    let debs = debian::read_from_image(&docker, sh, &image.reference)?;
    let target = rust_target(&inspect.architecture)?;
    eprintln!(
        "sbom: resolving the crates of {} for {target}",
        metadata.package
    );
    let crates = crates::read(sh, root, &metadata.package, target)?;
    let head = Revision::read(sh)?;
    let built_from = inspect
        .label(crate::build_context::CRATES_DIGEST_LABEL)
        .filter(|digest| !digest.is_empty());
    let (revision, crates_mismatch) = match inspect.label(REVISION_LABEL) {
        Some(revision) => (
            revision.to_owned(),
            match built_from {
                Some(digest) => crates_changed_since_build(sh, root, digest),
                None => crates_mismatch(sh, revision),
            },
        ),
        None => (
            head.describe(&head.commit),
            Some(format!(
                "the image has no {REVISION_LABEL} label to match the crates to"
            )),
        ),
    };
    let created = git::rfc3339_utc(git::source_date_epoch_set()?.unwrap_or(head.commit_time));
    let distro = debs
        .iter()
        .find(|deb| deb.name == "base-files")
        .and_then(|deb| deb.version.split(['.', '+', '~']).next())
        .map(|major| format!("debian-{major}"));
    let inventory = Inventory {
        serial: purl::uuid_v5(&format!("{}#{revision}", inspect.id)),
        image: ImageSubject {
            name,
            tag,
            id: inspect.id.clone(),
            digest: inspect
                .repo_digests
                .as_ref()
                .and_then(|digests| digests.first().cloned()),
        },
        binary: Binary {
            name: metadata.binary.clone(),
            version: metadata.version.clone(),
            path: metadata::SERVICE_PATH.to_owned(),
            license: crates.root_license.clone(),
        },
        debs,
        distro,
        crates,
        created,
        revision,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let dir = output_dir(root);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stem = inventory.image.display().replace(['/', ':'], "-");
    let spdx = dir.join(format!("{stem}.spdx.json"));
    let cyclonedx = dir.join(format!("{stem}.cdx.json"));
    write_json(&spdx, &spdx::document(&inventory))?;
    write_json(&cyclonedx, &cyclonedx::document(&inventory))?;
    Ok(Made {
        inventory,
        spdx,
        cyclonedx,
        crates_mismatch,
    })
}

/// The crates are read from the work tree; they are the image's when
/// Cargo.lock and every member's manifest are as they were at the build,
/// committed or not: the image's label records their digest.
fn crates_changed_since_build(sh: &Shell, root: &Path, built_from: &str) -> Option<String> {
    match crate::build_context::crates_digest(sh, root) {
        Ok(now) if now == built_from => None,
        Ok(_) => Some(
            "Cargo.lock or a member's Cargo.toml changed since the image was built: build it again (`cargo xtask image`) to describe these crates".to_owned(),
        ),
        Err(error) => Some(format!("cannot compare the crates with the image's: {error:#}")),
    }
}

/// For an image without the digest label: the crates are the image's when
/// Cargo.lock and every manifest are as they were at the image's revision.
fn crates_mismatch(sh: &Shell, revision: &str) -> Option<String> {
    let commit = revision.trim_end_matches("-dirty");
    let manifests = ":(glob)**/Cargo.toml";
    let output = cmd!(sh, "git diff --quiet {commit} -- Cargo.lock {manifests}")
        .quiet()
        .ignore_status()
        .output();
    match output.as_ref().map(|o| o.status.code()) {
        Ok(Some(0)) => None,
        Ok(Some(1)) => Some(format!(
            "Cargo.lock or a Cargo.toml changed since {commit}, the image's revision: rebuild the image, or check that revision out"
        )),
        _ => Some(format!(
            "git cannot compare the work tree with {commit}, the image's revision: {}",
            output.map_or_else(
                |error| error.to_string(),
                |o| process::last_line(&String::from_utf8_lossy(&o.stderr))
            )
        )),
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The Rust target the image's binary was built for, from its architecture.
fn rust_target(architecture: &str) -> anyhow::Result<&'static str> {
    match architecture {
        "amd64" | "" => Ok("x86_64-unknown-linux-gnu"),
        "arm64" => Ok("aarch64-unknown-linux-gnu"),
        other => anyhow::bail!("no Rust target known for the image architecture {other:?}"),
    }
}

impl Made {
    /// Why the crates, read from the work tree, may not be the image's; `None`
    /// when they are.
    pub fn crates_mismatch(&self) -> Option<&str> {
        self.crates_mismatch.as_deref()
    }

    /// Each document through its format's validator, and the packages
    /// against syft's and trivy's reading of the same image.
    pub fn proofs(&self, sh: &Shell, root: &Path, image: &ImageRef) -> Vec<Check> {
        let debs = &self.inventory.debs;
        let crates = self.inventory.crates.crates.len();
        let syft = cross_check::syft(sh, &image.reference);
        let trivy = cross_check::trivy(sh, root, &image.reference);
        let read_crates = |listed: &anyhow::Result<String>, tool: &str| match listed {
            Ok(text) => cross_check::service_crates(tool, text, metadata::SERVICE_PATH),
            Err(error) => Err(anyhow::anyhow!("{error:#}")),
        };
        let ours = std::fs::read_to_string(&self.cyclonedx)
            .with_context(|| format!("cannot read {}", self.cyclonedx.display()))
            .and_then(|text| cross_check::cargo_components(&text));
        let binary = Docker::connect(sh).and_then(|docker| {
            audit::read_from_image(&docker, sh, &image.reference, metadata::SERVICE_PATH)
        });
        let mut checks = vec![
            validate::spdx(sh, &self.spdx),
            validate::cyclonedx(sh, &self.cyclonedx),
        ];
        match ours.and_then(|ours| Ok((ours, crates::locked_packages(root)?))) {
            Ok((ours, locked)) => checks.extend(cross_check::crate_checks(
                binary,
                &ours,
                &locked,
                read_crates(&trivy, "trivy"),
                read_crates(&syft, "syft"),
            )),
            Err(error) => checks.push(Check::broken(
                "crates of the SBOM",
                "the crates the CycloneDX document lists",
                &error,
            )),
        }
        checks.push(cross_check::check("syft", syft, debs, crates));
        checks.push(cross_check::check("trivy", trivy, debs, crates));
        checks
    }

    /// What the documents hold: packages, crates, licenses, checksums.
    fn content_checks(&self) -> Vec<Check> {
        let inventory = &self.inventory;
        let crates = &inventory.crates.crates;
        let unlicensed: Vec<String> = crates
            .iter()
            .filter(|c| c.license.is_none())
            .map(|c| {
                format!(
                    "{}@{} ({})",
                    c.name,
                    c.version,
                    c.license_as_written
                        .as_deref()
                        .unwrap_or("no license field")
                )
            })
            .collect();
        // The repository's own crates (and git ones) have no registry checksum.
        let registry_crates = crates.iter().filter(|c| !c.local).count();
        let unsummed: Vec<String> = crates
            .iter()
            .filter(|c| !c.local && c.checksum.is_none())
            .map(|c| format!("{}@{}", c.name, c.version))
            .collect();
        let rewritten = crates
            .iter()
            .filter(|c| c.license.is_some() && c.license_as_written.is_some())
            .count();
        let checks: Vec<Check> = [
            Check::judge(
                "Debian packages",
                !inventory.debs.is_empty(),
                format!("{} packages", inventory.debs.len()),
                "the packages in dpkg's database",
            ),
            Check::judge(
                "crates",
                !crates.is_empty(),
                format!(
                    "{} crates, {} direct",
                    crates.len(),
                    inventory.crates.direct.len()
                ),
                "the binary's normal dependencies",
            ),
            Check::judge(
                "crate licenses",
                unlicensed.is_empty(),
                format!(
                    "{} valid SPDX expressions, {rewritten} rewritten from `/`",
                    crates.len() - unlicensed.len()
                ),
                "an SPDX expression for every crate",
            )
            .because(unlicensed.join(", ")),
            Check::judge(
                "crate checksums",
                unsummed.is_empty(),
                format!(
                    "{} of {} registry crates from Cargo.lock; {} local",
                    registry_crates - unsummed.len(),
                    registry_crates,
                    crates.len() - registry_crates
                ),
                "a SHA-256 for every crate from a registry",
            )
            .because(unsummed.join(", ")),
            Check::judge(
                "crates of the image's revision",
                self.crates_mismatch.is_none(),
                format!("image built from {}", inventory.revision),
                "Cargo.lock and manifests as the image was built from",
            )
            .because(self.crates_mismatch.clone().unwrap_or_default()),
        ]
        .into();
        checks
    }

    fn verdict(&self, proofs: Vec<Check>) -> Verdict {
        let inventory = &self.inventory;
        let crates = &inventory.crates.crates;
        let mut checks = self.content_checks();
        checks.extend(proofs);
        let mut table = Table::new(&["format", "file"]);
        table.row(["SPDX 2.3", &self.spdx.display().to_string()]);
        table.row(["CycloneDX 1.6", &self.cyclonedx.display().to_string()]);
        let text = format!(
            "{}\nimage {} ({}), {} Debian packages, {} crates, created {}\n\n",
            table.render(),
            inventory.image.display(),
            inventory.image.id,
            inventory.debs.len(),
            crates.len(),
            inventory.created
        );
        Verdict {
            text,
            headline: format!(
                "{} Debian packages, {} crates",
                inventory.debs.len(),
                crates.len()
            ),
            checks,
            ..Verdict::new("sbom", inventory.image.display()).with_details(serde_json::json!({
                "spdx": self.spdx,
                "cyclonedx": self.cyclonedx,
                "image": inventory.image,
                "debian_packages": inventory.debs.len(),
                "crates": crates.len(),
                "created": inventory.created,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::crates::{Crate, CrateGraph};
    use crate::sbom::debian::Deb;

    /// A small image: two Debian packages (one built from a source package
    /// of another name and version), three crates of which one has a
    /// license rewritten and one none, and a binary of its own.
    fn tiny_inventory() -> Inventory {
        let krate =
            |name: &str, version: &str, license: Option<&str>, dependencies: Vec<usize>| Crate {
                name: name.into(),
                version: version.into(),
                license: license.map(Into::into),
                license_as_written: None,
                checksum: Some(format!("{:0>64}", name.len())),
                local: false,
                dependencies,
            };
        let mut serde = krate("serde", "1.0.228", Some("MIT OR Apache-2.0"), vec![]);
        serde.license_as_written = Some("MIT/Apache-2.0".into());
        Inventory {
            image: ImageSubject {
                name: "tiny".into(),
                tag: Some("0.1.0".into()),
                id: format!("sha256:{}", "ab".repeat(32)),
                digest: None,
            },
            binary: Binary {
                name: "tiny".into(),
                version: "0.1.0".into(),
                path: "/usr/local/bin/service".into(),
                license: Some("MIT OR Apache-2.0".into()),
            },
            debs: vec![
                Deb {
                    name: "base-files".into(),
                    version: "13.8+deb13u1".into(),
                    architecture: "amd64".into(),
                    source: None,
                    source_version: None,
                },
                Deb {
                    name: "libgcc-s1".into(),
                    version: "14.2.0-19".into(),
                    architecture: "amd64".into(),
                    source: Some("gcc-14".into()),
                    source_version: None,
                },
            ],
            distro: Some("debian-13".into()),
            crates: CrateGraph {
                crates: vec![
                    krate("anyhow", "1.0.100", Some("MIT OR Apache-2.0"), vec![]),
                    krate("private-helper", "0.2.0", None, vec![]),
                    serde,
                ],
                direct: vec![0, 2],
                root_license: Some("MIT OR Apache-2.0".into()),
            },
            created: "2026-12-04T00:00:00Z".into(),
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            serial: purl::uuid_v5("tiny"),
            tool_version: "0.1.0".into(),
        }
    }

    /// Each writer on a fixed inventory: the documents are their insta
    /// snapshots (`cargo insta review` accepts a change), and each validates
    /// with the format's own validator.
    #[test]
    fn the_writers_give_valid_documents_for_a_fixed_inventory() {
        let sh = Shell::new().unwrap();
        let inventory = tiny_inventory();
        let scratch = crate::testing::scratch();
        for (name, document) in [
            ("tiny.spdx.json", spdx::document(&inventory)),
            ("tiny.cdx.json", cyclonedx::document(&inventory)),
        ] {
            let written = serde_json::to_string_pretty(&document).unwrap() + "\n";
            insta::assert_snapshot!(name, written);
            let path = scratch.path().join(name);
            std::fs::write(&path, &written).unwrap();
            let check = if name.contains("spdx") {
                validate::spdx(&sh, &path)
            } else {
                validate::cyclonedx(&sh, &path)
            };
            assert!(!check.failed(), "{name}: {check:?}");
        }
    }

    #[test]
    fn the_images_architecture_picks_the_rust_target() {
        assert_eq!(rust_target("amd64").unwrap(), "x86_64-unknown-linux-gnu");
        assert!(rust_target("s390x").is_err());
    }
}

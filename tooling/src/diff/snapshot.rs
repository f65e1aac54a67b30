//! One image as `diff` compares it, and as `--write-report` keeps it: its
//! packages and crates (from our SBOM inventory), its layers' sizes (as
//! `size-check` measures them) and the findings of its kept scan reports.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::docker::Docker;
use crate::last_build::ImageRef;
use crate::metadata::{self, Metadata};
use crate::scan::{self, kept::Kept};
use crate::{sbom, size_check};

/// What a snapshot file says it is; another format is refused.
pub const FORMAT: &str = "xtask-diff-snapshot/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: String,
    /// The name people know it by: its tag, or a short id.
    pub image: String,
    /// `sha256:…`, the image config's digest.
    pub image_id: String,
    /// The source revision the image's label names.
    pub revision: String,
    pub debian_packages: Vec<Package>,
    pub crates: Vec<Package>,
    /// Bytes of the unpacked filesystem.
    pub unpacked_bytes: u64,
    /// Bytes of the gzip-compressed layers, as a registry stores them.
    pub compressed_bytes: u64,
    /// Base layer first.
    pub layers: Vec<LayerSize>,
    pub findings: ScanState,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSize {
    /// 1 for the base layer.
    pub number: usize,
    /// The step that made it, as `docker history` records it.
    pub instruction: String,
    pub unpacked_bytes: u64,
    pub compressed_bytes: u64,
}

/// Whether the image was scanned: never "no findings" when it was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ScanState {
    Scanned {
        reports: Vec<String>,
        findings: Vec<Found>,
    },
    NotScanned {
        reason: String,
    },
}

/// One finding, as far as a comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Found {
    /// `CVE-…`, `RUSTSEC-…`, a secret rule.
    pub id: String,
    pub package: String,
    pub installed: String,
    pub severity: String,
}

impl Snapshot {
    /// Reads the image in the engine, and its crates from the work tree at
    /// `root`, which must be what the image was built from.
    pub fn take(
        sh: &Shell,
        root: &Path,
        metadata: &Metadata,
        image: &ImageRef,
    ) -> anyhow::Result<Snapshot> {
        let made = sbom::make(sh, root, metadata, image)?;
        if let Some(reason) = made.crates_mismatch() {
            bail!(
                "its crates cannot be read from {}: {reason}; snapshot it where it was built with `cargo xtask diff --write-report FILE`",
                root.display()
            );
        }
        let inventory = &made.inventory;
        let docker = Docker::connect(sh)?;
        let measured = size_check::measure(&docker, sh, image, metadata::SERVICE_PATH)?;
        let inspect = docker.inspect_image(sh, &image.reference)?;
        // A scan files its reports under the name it was given: a tag, or
        // the id (as `ci` names the image a build step made).
        let mut subjects = vec![image.name.clone(), measured.image.clone()];
        subjects.extend(inspect.repo_tags.clone().unwrap_or_default());
        subjects.push(inspect.id.clone());
        subjects.dedup();
        let findings = match scan::kept::read(&scan::output_dir(root), &subjects, &inspect.id)? {
            Kept::Scanned { findings, reports } => ScanState::Scanned {
                reports,
                findings: findings
                    .into_iter()
                    .map(|f| Found {
                        id: f.id,
                        package: f.package,
                        installed: f.installed,
                        severity: f.severity,
                    })
                    .collect(),
            },
            Kept::NotScanned(reason) => ScanState::NotScanned { reason },
        };
        let mut debian_packages: Vec<Package> = inventory
            .debs
            .iter()
            .map(|d| Package {
                name: d.name.clone(),
                version: d.version.clone(),
            })
            .collect();
        debian_packages.sort();
        let mut crates: Vec<Package> = inventory
            .crates
            .crates
            .iter()
            .map(|c| Package {
                name: c.name.clone(),
                version: c.version.clone(),
            })
            .collect();
        crates.sort();
        Ok(Snapshot {
            format: FORMAT.to_owned(),
            image: measured.image.clone(),
            image_id: measured.image_id.clone(),
            revision: inventory.revision.clone(),
            debian_packages,
            crates,
            unpacked_bytes: measured.unpacked_bytes,
            compressed_bytes: measured.compressed_bytes,
            layers: measured
                .layers
                .iter()
                .map(|l| LayerSize {
                    number: l.number,
                    instruction: l.instruction.clone(),
                    unpacked_bytes: l.size_bytes,
                    compressed_bytes: l.compressed_bytes,
                })
                .collect(),
            findings,
        })
    }

    pub fn load(path: &Path) -> anyhow::Result<Snapshot> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Snapshot::parse(&text).with_context(|| format!("{} is not a diff snapshot", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Snapshot> {
        let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(FORMAT) => {}
            Some(other) => bail!("its format is {other:?}; this reads {FORMAT:?}"),
            None => bail!("it has no \"format\": {FORMAT:?}"),
        }
        serde_json::from_value(value).context("a field is missing or of the wrong type")
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_its_file() {
        let snapshot = crate::diff::compare::tests::base();
        let scratch = crate::testing::scratch();
        let path = scratch.path().join("base.json");
        snapshot.save(&path).unwrap();
        assert_eq!(Snapshot::load(&path).unwrap(), snapshot);
    }

    #[test]
    fn a_file_of_another_kind_is_refused_saying_why() {
        let error = Snapshot::parse("{\"SchemaVersion\": 2}").unwrap_err();
        assert!(error.to_string().contains("no \"format\""), "{error}");
        let error = Snapshot::parse("{\"format\": \"xtask-diff-snapshot/9\"}").unwrap_err();
        assert!(error.to_string().contains("/9"), "{error}");
        assert!(Snapshot::parse("not json").is_err());
    }
}

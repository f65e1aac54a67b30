//! The crate list a binary carries itself: `cargo auditable build` writes it,
//! zlib-compressed JSON, into a `.dep-v0` section, and trivy, syft, grype
//! and osv-scanner read it from the image. UPX packs the section table away
//! with the rest, so a packed binary carries nothing they can read.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use xshell::Shell;

use crate::docker::Docker;

/// A crate as `name@version`, the form every reading below is compared in.
pub type CrateId = (String, String);

/// What the service binary in an image says of its crates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditData {
    /// The crates compiled into it (`kind: runtime`), and its own package
    /// apart.
    Crates {
        root: Option<CrateId>,
        crates: BTreeSet<CrateId>,
    },
    /// Packed with UPX: the section is there, but compressed out of sight.
    PackedByUpx,
    /// No `.dep-v0` section: not built with `cargo auditable`.
    Missing,
}

#[derive(Deserialize)]
struct VersionInfo {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    /// `runtime` (the default, so often absent) or `build`: build scripts
    /// and proc-macros, which leave no code in the binary.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    root: bool,
}

/// Copies `path` out of the image and reads its audit data.
pub fn read_from_image(
    docker: &Docker,
    sh: &Shell,
    reference: &str,
    path: &str,
) -> anyhow::Result<AuditData> {
    let scratch = sh
        .create_temp_dir()
        .context("cannot make a temporary directory")?;
    let copy = scratch.path().join("binary");
    docker
        .copy_from_image(sh, reference, path, &copy)
        .with_context(|| format!("the image has no {path} to read"))?;
    read_file(&copy)
}

/// Reads a binary's audit data.
pub fn read_file(path: &Path) -> anyhow::Result<AuditData> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    read(&bytes).with_context(|| format!("cannot read the audit data of {}", path.display()))
}

pub fn read(binary: &[u8]) -> anyhow::Result<AuditData> {
    if packed_by_upx(binary) {
        return Ok(AuditData::PackedByUpx);
    }
    // cargo auditable's own default bound, against a hostile binary.
    let json = match auditable_info::json_from_slice(binary, 8 * 1024 * 1024) {
        Ok(json) => json,
        Err(auditable_info::Error::NoAuditData) => return Ok(AuditData::Missing),
        Err(error) => return Err(anyhow::anyhow!("{error}")),
    };
    parse(&json)
}

/// The root package and the runtime crates of cargo auditable's JSON.
pub fn parse(json: &str) -> anyhow::Result<AuditData> {
    let info: VersionInfo =
        serde_json::from_str(json).context("not cargo auditable's dependency list")?;
    let mut root = None;
    let mut crates = BTreeSet::new();
    for package in info.packages {
        if package.root {
            root = Some((package.name, package.version));
        } else if package.kind.as_deref().is_none_or(|kind| kind == "runtime") {
            crates.insert((package.name, package.version));
        }
    }
    Ok(AuditData::Crates { root, crates })
}

/// UPX writes its magic `UPX!` into the packed file's first bytes.
fn packed_by_upx(binary: &[u8]) -> bool {
    binary
        .get(..1024)
        .unwrap_or(binary)
        .windows(4)
        .any(|window| window == b"UPX!")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runtime_crates_and_leaves_build_ones_out() {
        // The shape cargo auditable 0.7 writes: `kind` only when not runtime.
        let json = r#"{"packages":[
            {"name":"server","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
            {"name":"tokio","version":"1.48.0","source":"crates.io","dependencies":[2]},
            {"name":"tokio-macros","version":"2.6.0","source":"crates.io","kind":"build"},
            {"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"}]}"#;
        let AuditData::Crates { root, crates } = parse(json).unwrap() else {
            panic!("no crates read");
        };
        assert_eq!(root, Some(("server".to_owned(), "0.1.0".to_owned())));
        let names: Vec<&str> = crates.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["tokio"]);
    }

    #[test]
    fn a_binary_without_the_section_or_packed_says_so() {
        // This test's own binary: built by plain cargo.
        let own = std::env::current_exe().unwrap();
        assert_eq!(read_file(&own).unwrap(), AuditData::Missing);
        let mut packed = b"\x7fELF\x02\x01\x01".to_vec();
        packed.extend_from_slice(&[0; 100]);
        packed.extend_from_slice(b"UPX!");
        assert_eq!(read(&packed).unwrap(), AuditData::PackedByUpx);
    }

    #[test]
    fn a_broken_list_is_an_error() {
        assert!(parse(r#"{"packages":[{"name":"x"}"#).is_err());
    }
}

//! The image's Debian packages, from the files dpkg's database leaves: one
//! status file per package under `/var/lib/dpkg/status.d/` in distroless-style
//! images, or the single `/var/lib/dpkg/status` of a full Debian system.

use std::path::Path;

use anyhow::Context;
use xshell::Shell;

use crate::docker::Docker;

/// One installed Debian package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deb {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package, when its name differs from the binary package's.
    pub source: Option<String>,
    /// The source package's version, when it differs from the package's.
    pub source_version: Option<String>,
}

/// Where dpkg's database is in an image.
const DPKG_DIR: &str = "/var/lib/dpkg";

/// Copies dpkg's database out of the image and reads every package in it.
pub fn read_from_image(docker: &Docker, sh: &Shell, reference: &str) -> anyhow::Result<Vec<Deb>> {
    let scratch = sh
        .create_temp_dir()
        .context("cannot make a temporary directory")?;
    let copy = scratch.path().join("dpkg");
    docker
        .copy_from_image(sh, reference, DPKG_DIR, &copy)
        .with_context(|| format!("{reference} has no Debian package database at {DPKG_DIR}"))?;
    read_database(&copy)
}

/// Reads `status.d/*` (every file but the `.md5sums` lists) and `status`.
pub fn read_database(dir: &Path) -> anyhow::Result<Vec<Deb>> {
    let mut texts = Vec::new();
    let status_d = dir.join("status.d");
    if status_d.is_dir() {
        for entry in std::fs::read_dir(&status_d)
            .with_context(|| format!("cannot list {}", status_d.display()))?
        {
            let path = entry?.path();
            if path.extension().is_none_or(|ext| ext != "md5sums") {
                texts.push(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                );
            }
        }
    }
    let status = dir.join("status");
    if status.is_file() {
        texts.push(
            std::fs::read_to_string(&status)
                .with_context(|| format!("cannot read {}", status.display()))?,
        );
    }
    let mut debs: Vec<Deb> = texts.iter().flat_map(|text| parse_status(text)).collect();
    debs.sort();
    debs.dedup();
    Ok(debs)
}

/// Reads the paragraphs of a dpkg status file. A paragraph with a `Status`
/// field counts only when the package is installed; distroless' per-package
/// files carry none.
pub fn parse_status(text: &str) -> Vec<Deb> {
    text.split("\n\n").filter_map(parse_paragraph).collect()
}

fn parse_paragraph(paragraph: &str) -> Option<Deb> {
    let field = |name: &str| {
        paragraph.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    if field("Status").is_some_and(|status| !status.ends_with(" installed")) {
        return None;
    }
    let name = field("Package")?;
    let version = field("Version")?;
    let architecture = field("Architecture").unwrap_or_else(|| "all".to_owned());
    // `Source: gcc-14 (14.2.0-19)`: a name, and a version when it differs.
    let (source, source_version) = match field("Source") {
        Some(source) => match source.split_once(' ') {
            Some((name, version)) => (
                Some(name.to_owned()),
                Some(
                    version
                        .trim_matches(|c| c == '(' || c == ')' || c == ' ')
                        .to_owned(),
                ),
            ),
            None => (Some(source), None),
        },
        None => (None, None),
    };
    Some(Deb {
        source: source.filter(|source| *source != name),
        name,
        version,
        architecture,
        source_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_distroless_status_file() {
        let debs = parse_status(
            "Package: libc6\nSource: glibc\nVersion: 2.41-12+deb13u4\nArchitecture: amd64\nDescription: GNU C Library\n multi-line: text\n",
        );
        assert_eq!(
            debs,
            [Deb {
                name: "libc6".into(),
                version: "2.41-12+deb13u4".into(),
                architecture: "amd64".into(),
                source: Some("glibc".into()),
                source_version: None,
            }]
        );
    }

    #[test]
    fn a_source_version_and_dpkgs_own_status_are_read() {
        let debs = parse_status(
            "Package: gcc-14-base\nStatus: install ok installed\nSource: gcc-14 (14.2.0-19)\nVersion: 14.2.0-19\nArchitecture: amd64\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: zlib1g\nStatus: install ok installed\nSource: zlib\nVersion: 1:1.3.dfsg+really1.3.1-1+deb13u1\nArchitecture: amd64\n",
        );
        assert_eq!(debs.len(), 2);
        assert_eq!(debs[0].source.as_deref(), Some("gcc-14"));
        assert_eq!(debs[0].source_version.as_deref(), Some("14.2.0-19"));
        assert_eq!(debs[1].version, "1:1.3.dfsg+really1.3.1-1+deb13u1");
    }

    #[test]
    fn a_paragraph_without_a_version_is_left_out() {
        assert!(parse_status("Package: broken\n").is_empty());
        assert!(parse_status("").is_empty());
    }
}

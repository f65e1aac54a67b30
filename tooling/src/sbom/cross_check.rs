//! The SBOM against the scanners' own: syft and trivy read the image's
//! Debian packages as well; every package either lists must be in ours with
//! the same version. Neither sees the crates, which is why ours exists.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use xshell::{Shell, cmd};

use super::debian::Deb;
use crate::checks::Check;
use crate::process;
use crate::tools::{self, Tool};
use crate::trivy::Trivy;

#[derive(Deserialize)]
struct Bom {
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    purl: Option<String>,
}

/// The Debian packages a CycloneDX document lists: name → version.
pub fn debian_packages(cyclonedx: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let bom: Bom = serde_json::from_str(cyclonedx).context("not a CycloneDX JSON document")?;
    Ok(bom
        .components
        .into_iter()
        .filter(|c| c.purl.as_deref().is_some_and(|p| p.starts_with("pkg:deb/")))
        .map(|c| (c.name, c.version))
        .collect())
}

/// Compares another tool's packages with ours.
pub fn compare(
    tool: &str,
    theirs: &BTreeMap<String, String>,
    ours: &[Deb],
    crates: usize,
) -> Check {
    let differences: Vec<String> = theirs
        .iter()
        .filter_map(
            |(name, version)| match ours.iter().find(|deb| &deb.name == name) {
                Some(deb) if &deb.version == version => None,
                Some(deb) => Some(format!(
                    "{name}: {tool} says {version}, ours {}",
                    deb.version
                )),
                None => Some(format!("{name} {version} is missing from ours")),
            },
        )
        .collect();
    Check::judge(
        format!("agrees with {tool}"),
        differences.is_empty() && !theirs.is_empty(),
        format!(
            "{tool}: {} Debian packages, {} in ours; ours adds {crates} crates",
            theirs.len(),
            theirs.len() - differences.len()
        ),
        format!("every package {tool} lists, same version"),
    )
    .because(if theirs.is_empty() {
        format!("{tool} listed no Debian package")
    } else {
        differences.join("; ")
    })
}

/// syft's CycloneDX of the image, read from the engine.
pub fn syft(sh: &Shell, reference: &str) -> anyhow::Result<String> {
    let syft = tools::require(sh, Tool::Syft)?.path;
    let source = format!("docker:{reference}");
    process::read(cmd!(sh, "{syft} {source} --output cyclonedx-json --quiet"))
        .context("syft cannot read the image")
}

/// trivy's CycloneDX of the image; listing packages needs no database.
pub fn trivy(sh: &Shell, root: &Path, reference: &str) -> anyhow::Result<String> {
    let trivy = Trivy::find(sh, root)?;
    let args: Vec<OsString> = [
        "--skip-db-update",
        "--image-src",
        "docker",
        "--format",
        "cyclonedx",
        reference,
    ]
    .map(OsString::from)
    .to_vec();
    trivy.run(sh, "image", None, &args)
}

/// Runs one scanner and compares; a scanner that fails fails the check.
pub fn check(tool: &str, listed: anyhow::Result<String>, ours: &[Deb], crates: usize) -> Check {
    match listed.and_then(|text| debian_packages(&text)) {
        Ok(theirs) => compare(tool, &theirs, ours, crates),
        Err(error) => Check::broken(
            format!("agrees with {tool}"),
            format!("every package {tool} lists, same version"),
            &error,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(name: &str, version: &str) -> Deb {
        Deb {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            source: None,
            source_version: None,
        }
    }

    #[test]
    fn a_package_missing_or_at_another_version_fails() {
        let theirs = debian_packages(
            r#"{"components":[
                {"type":"library","name":"libc6","version":"2.41-12","purl":"pkg:deb/debian/libc6@2.41-12"},
                {"type":"library","name":"tzdata","version":"2026f","purl":"pkg:deb/debian/tzdata@2026f"},
                {"type":"operating-system","name":"debian","version":"13"}]}"#,
        )
        .unwrap();
        assert_eq!(theirs.len(), 2);
        let ours = [deb("libc6", "2.41-12"), deb("tzdata", "2026f")];
        assert!(!compare("syft", &theirs, &ours, 3).failed());
        let check = compare("syft", &theirs, &ours[..1], 3);
        assert_eq!(
            check.actual.as_deref(),
            Some("tzdata 2026f is missing from ours")
        );
        let check = compare(
            "syft",
            &theirs,
            &[deb("libc6", "2.41-13"), deb("tzdata", "2026f")],
            3,
        );
        assert_eq!(
            check.actual.as_deref(),
            Some("libc6: syft says 2.41-12, ours 2.41-13")
        );
    }

    #[test]
    fn a_scanner_that_lists_nothing_proves_nothing() {
        let check = compare("trivy", &BTreeMap::new(), &[deb("libc6", "1")], 0);
        assert!(check.failed());
    }

    #[test]
    fn a_truncated_document_is_an_error() {
        let check = check("syft", Ok(r#"{"components":[{"name""#.to_owned()), &[], 0);
        assert!(check.failed());
        assert!(check.actual.unwrap().contains("CycloneDX"));
    }
}

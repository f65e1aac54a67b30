//! The reports an earlier `scan` kept for an image, read back for another
//! command (`diff`): its vulnerabilities and secrets (`trivy-image.json`)
//! and its crates' vulnerabilities (`trivy-sbom.json`), when the folder's
//! image report is of that very image.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::findings::Finding;
use super::policy::Policy;
use super::trivy_report;
use crate::metadata::ScanPolicy;

/// What the kept reports of one image say.
pub enum Kept {
    /// The findings, and the reports they were read from.
    Scanned {
        findings: Vec<Finding>,
        reports: Vec<String>,
    },
    /// No report of this image, and why (none kept, or another image's).
    NotScanned(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Header {
    #[serde(default)]
    metadata: HeaderMetadata,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HeaderMetadata {
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
}

/// The findings of `image_id` from the first of `subjects` (the names a
/// scan may have filed it under) whose folder under `scan_dir` holds a
/// report of it.
pub fn read(scan_dir: &Path, subjects: &[String], image_id: &str) -> anyhow::Result<Kept> {
    let mut seen = Vec::new();
    for subject in subjects {
        let dir = scan_dir.join(subject.replace(['/', ':'], "-"));
        let image_report = dir.join("trivy-image.json");
        let Ok(text) = std::fs::read_to_string(&image_report) else {
            continue;
        };
        let header: Header = serde_json::from_str(&text)
            .with_context(|| format!("{} is not trivy's JSON", image_report.display()))?;
        match header.metadata.image_id {
            Some(id) if id == image_id => return findings(&dir, &text),
            Some(id) => seen.push(format!(
                "{} is of another image ({})",
                image_report.display(),
                crate::output::digest(&id)
            )),
            None => seen.push(format!("{} names no image id", image_report.display())),
        }
    }
    Ok(Kept::NotScanned(if seen.is_empty() {
        format!(
            "no scan report of it under {} (run `cargo xtask scan --image …` first)",
            scan_dir.display()
        )
    } else {
        seen.join("; ")
    }))
}

fn findings(dir: &Path, image_report: &str) -> anyhow::Result<Kept> {
    let policy = Policy::resolve(&ScanPolicy::default(), &[], false, None)?;
    let image = trivy_report::parse(image_report, &policy)
        .with_context(|| format!("cannot read {}", dir.join("trivy-image.json").display()))?;
    let mut findings = image.vulnerabilities.findings;
    findings.extend(image.secrets.findings);
    let mut reports = vec![dir.join("trivy-image.json").display().to_string()];
    let crates = dir.join("trivy-sbom.json");
    if let Ok(text) = std::fs::read_to_string(&crates) {
        let read = trivy_report::parse(&text, &policy)
            .with_context(|| format!("cannot read {}", crates.display()))?;
        findings.extend(read.vulnerabilities.findings);
        reports.push(crates.display().to_string());
    }
    Ok(Kept::Scanned { findings, reports })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
      "SchemaVersion": 2,
      "Metadata": {"ImageID": "sha256:aaaa"},
      "Results": [{"Target": "server:1 (debian 13.8)", "Class": "os-pkgs",
        "Vulnerabilities": [{"VulnerabilityID": "CVE-2099-1", "PkgName": "libc6",
          "InstalledVersion": "2.41-12", "Severity": "HIGH"}]}]
    }"#;

    fn kept(dir: &Path) -> Vec<String> {
        let folder = dir.join("server-1");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("trivy-image.json"), REPORT).unwrap();
        vec!["server:1".to_owned()]
    }

    #[test]
    fn the_report_of_that_image_gives_its_findings() {
        let scratch = crate::testing::scratch();
        let subjects = kept(scratch.path());
        let Kept::Scanned { findings, reports } =
            read(scratch.path(), &subjects, "sha256:aaaa").unwrap()
        else {
            panic!("not read")
        };
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].id, "CVE-2099-1");
        assert_eq!(reports.len(), 1);
    }

    #[test]
    fn another_images_report_or_none_is_no_scan() {
        let scratch = crate::testing::scratch();
        let subjects = kept(scratch.path());
        let Kept::NotScanned(why) = read(scratch.path(), &subjects, "sha256:bbbb").unwrap() else {
            panic!("another image's report was read")
        };
        assert!(why.contains("of another image"), "{why}");
        let Kept::NotScanned(why) =
            read(scratch.path(), &["server:2".to_owned()], "sha256:aaaa").unwrap()
        else {
            panic!("a report was found where none is")
        };
        assert!(why.starts_with("no scan report"), "{why}");
    }
}

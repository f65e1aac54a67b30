//! trivy's JSON report (`SchemaVersion` 2), read with tolerance: every field
//! may be absent or null, unknown fields are accepted, and misconfiguration
//! ids come in the styles of every trivy release (`DS002` and `AVD-DS-0002`
//! before 0.69, `DS-0002` after).

use anyhow::{Context, bail};
use serde::Deserialize;

use super::findings::{Finding, Findings};
use super::policy::Policy;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Report {
    schema_version: Option<u32>,
    results: Option<Vec<Target>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Target {
    #[serde(rename = "Target")]
    name: String,
    class: String,
    vulnerabilities: Option<Vec<Vulnerability>>,
    misconfigurations: Option<Vec<Misconfiguration>>,
    secrets: Option<Vec<Secret>>,
    #[serde(rename = "ExperimentalModifiedFindings")]
    modified: Option<Vec<Modified>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    pkg_name: String,
    pkg_path: Option<String>,
    installed_version: String,
    fixed_version: Option<String>,
    status: Option<String>,
    severity: String,
    title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Misconfiguration {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "AVDID")]
    avd_id: Option<String>,
    title: String,
    message: Option<String>,
    severity: String,
    status: String,
    cause_metadata: Option<Cause>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Cause {
    start_line: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Secret {
    #[serde(rename = "RuleID")]
    rule_id: String,
    severity: String,
    title: String,
    start_line: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Modified {
    status: String,
    statement: Option<String>,
    finding: Option<serde_json::Value>,
}

/// What one report holds, split by trivy's result classes.
#[derive(Debug, Default)]
pub struct Read {
    /// `os-pkgs` and `lang-pkgs`.
    pub vulnerabilities: Findings,
    pub secrets: Findings,
    pub misconfigurations: Findings,
}

/// Statuses trivy gives a vulnerability that has no fix to install.
const UNFIXED: [&str; 5] = [
    "affected",
    "will_not_fix",
    "fix_deferred",
    "end_of_life",
    "under_investigation",
];

pub fn parse(json: &str, policy: &Policy) -> anyhow::Result<Read> {
    let report: Report = serde_json::from_str(json)
        .context("trivy's report is not its JSON (truncated, or not from trivy)")?;
    match report.schema_version {
        Some(2) => {}
        Some(other) => bail!("trivy's report has SchemaVersion {other}; this reads version 2"),
        None => bail!("trivy's report has no SchemaVersion"),
    }
    let mut read = Read::default();
    for target in report.results.unwrap_or_default() {
        let location = target.name.clone();
        for v in target.vulnerabilities.unwrap_or_default() {
            let fixed = v.fixed_version.filter(|f| !f.trim().is_empty());
            let has_fix =
                fixed.is_some() && !v.status.as_deref().is_some_and(|s| UNFIXED.contains(&s));
            read.vulnerabilities.findings.push(Finding {
                gating: policy.gates(&v.severity, has_fix),
                title: v.title.unwrap_or_default(),
                location: v
                    .pkg_path
                    .map_or_else(|| location.clone(), |p| format!("{location}: {p}")),
                id: v.id,
                severity: v.severity,
                package: v.pkg_name,
                installed: v.installed_version,
                fixed,
            });
        }
        for m in target.misconfigurations.unwrap_or_default() {
            if m.status != "FAIL" {
                continue;
            }
            let line = m.cause_metadata.and_then(|c| c.start_line);
            read.misconfigurations.findings.push(Finding {
                id: misconfiguration_id(&m.id, m.avd_id.as_deref()),
                gating: policy.gates(&m.severity, true),
                severity: m.severity,
                package: String::new(),
                installed: String::new(),
                fixed: None,
                title: m.message.filter(|t| !t.is_empty()).unwrap_or(m.title),
                location: line.map_or_else(|| location.clone(), |l| format!("{location}:{l}")),
            });
        }
        for s in target.secrets.unwrap_or_default() {
            read.secrets.findings.push(Finding {
                gating: policy.gates(&s.severity, true),
                id: s.rule_id,
                severity: s.severity,
                package: String::new(),
                installed: String::new(),
                fixed: None,
                title: s.title,
                location: s
                    .start_line
                    .map_or_else(|| location.clone(), |l| format!("{location}:{l}")),
            });
        }
        for modified in target.modified.unwrap_or_default() {
            let id = modified
                .finding
                .as_ref()
                .and_then(|f| {
                    ["VulnerabilityID", "ID", "AVDID", "RuleID"]
                        .iter()
                        .find_map(|key| f.get(key)?.as_str())
                })
                .unwrap_or("?")
                .to_owned();
            let account = format!(
                "{id} ({}: {})",
                modified.status,
                modified.statement.unwrap_or_default()
            );
            match target.class.as_str() {
                "config" => read.misconfigurations.suppressed.push(account),
                "secret" => read.secrets.suppressed.push(account),
                _ => read.vulnerabilities.suppressed.push(account),
            }
        }
    }
    Ok(read)
}

/// `DS002`, `AVD-DS-0002` and `DS-0002` all become `DS-0002`.
pub fn misconfiguration_id(id: &str, avd_id: Option<&str>) -> String {
    let raw = if id.is_empty() {
        avd_id.unwrap_or_default()
    } else {
        id
    };
    let raw = raw.strip_prefix("AVD-").unwrap_or(raw);
    let split = raw.find(|c: char| c.is_ascii_digit()).unwrap_or(raw.len());
    let (prefix, number) = raw.split_at(split);
    let prefix = prefix.trim_end_matches('-');
    match number.parse::<u32>() {
        Ok(n) if !prefix.is_empty() => format!("{prefix}-{n:04}"),
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ScanPolicy;

    fn policy(gate_unfixed: bool) -> Policy {
        Policy::resolve(&ScanPolicy::default(), &[], gate_unfixed, None).unwrap()
    }

    const IMAGE_REPORT: &str = r#"{
      "SchemaVersion": 2, "Trivy": {"Version": "0.76.0"}, "SomethingNew": [1],
      "Results": [
        {"Target": "server:1 (debian 13.7)", "Class": "os-pkgs", "Type": "debian",
         "Vulnerabilities": [
           {"VulnerabilityID": "CVE-2099-1001", "PkgName": "libc6", "InstalledVersion": "2.41-12", "FixedVersion": "99:1.0", "Status": "fixed", "Severity": "CRITICAL", "Title": "glibc: made-up"},
           {"VulnerabilityID": "CVE-2099-1005", "PkgName": "tzdata", "InstalledVersion": "2026f", "Status": "affected", "Severity": "HIGH"},
           {"VulnerabilityID": "CVE-2099-1003", "PkgName": "zlib1g", "InstalledVersion": "1.3", "FixedVersion": "99:1.0", "Severity": "MEDIUM"}
         ]},
        {"Target": "usr/local/bin/server", "Class": "secret", "Secrets": null},
        {"Target": "Dockerfile", "Class": "config", "Misconfigurations": [
           {"ID": "DS002", "AVDID": "AVD-DS-0002", "Title": "Image user should not be root", "Severity": "HIGH", "Status": "FAIL", "CauseMetadata": {"StartLine": 3}},
           {"ID": "DS-0001", "Title": "latest tag", "Severity": "MEDIUM", "Status": "PASS"}
         ]}
      ]}"#;

    #[test]
    fn fixed_findings_at_the_policys_severities_gate_and_unfixed_are_shown() {
        let read = parse(IMAGE_REPORT, &policy(false)).unwrap();
        let gating: Vec<&str> = read
            .vulnerabilities
            .gating()
            .map(|f| f.id.as_str())
            .collect();
        assert_eq!(gating, ["CVE-2099-1001"]);
        assert_eq!(read.vulnerabilities.findings.len(), 3);
        assert_eq!(read.vulnerabilities.findings[1].fixed, None);

        let read = parse(IMAGE_REPORT, &policy(true)).unwrap();
        let gating: Vec<&str> = read
            .vulnerabilities
            .gating()
            .map(|f| f.id.as_str())
            .collect();
        assert_eq!(gating, ["CVE-2099-1001", "CVE-2099-1005"]);
    }

    #[test]
    fn misconfigurations_fail_only_when_they_failed_whatever_their_id_style() {
        let read = parse(IMAGE_REPORT, &policy(false)).unwrap();
        assert_eq!(read.misconfigurations.findings.len(), 1);
        let finding = &read.misconfigurations.findings[0];
        assert_eq!(finding.id, "DS-0002");
        assert_eq!(finding.location, "Dockerfile:3");
        assert!(finding.gating);
        assert_eq!(misconfiguration_id("DS-0002", None), "DS-0002");
        assert_eq!(misconfiguration_id("", Some("AVD-KSV-0014")), "KSV-0014");
        assert_eq!(misconfiguration_id("KSV014", None), "KSV-0014");
    }

    #[test]
    fn absent_fields_and_an_empty_report_are_fine() {
        let read = parse(r#"{"SchemaVersion": 2}"#, &policy(false)).unwrap();
        assert!(read.vulnerabilities.findings.is_empty());
        let read = parse(
            r#"{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{}]}]}"#,
            &policy(false),
        )
        .unwrap();
        assert_eq!(read.vulnerabilities.findings.len(), 1);
    }

    #[test]
    fn a_truncated_or_foreign_report_is_an_error_not_a_pass() {
        let truncated = &IMAGE_REPORT[..IMAGE_REPORT.len() / 2];
        let error = parse(truncated, &policy(false)).unwrap_err();
        assert!(error.to_string().contains("not its JSON"), "{error}");
        let error = parse(r#"{"Results": []}"#, &policy(false)).unwrap_err();
        assert!(error.to_string().contains("no SchemaVersion"), "{error}");
        let error = parse(r#"{"SchemaVersion": 1}"#, &policy(false)).unwrap_err();
        assert!(error.to_string().contains("SchemaVersion 1"), "{error}");
    }
}

//! What gates: the manifest's `[workspace.metadata.xtask.scan]`, with the
//! command line's flags over it for one run.

use anyhow::bail;
use serde::Serialize;

use crate::metadata::ScanPolicy;

/// trivy's severities, least severe first.
pub const SEVERITIES: [&str; 5] = ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub severities: Vec<String>,
    pub gate_unfixed: bool,
    pub ignore_file: String,
    /// Whether the ignore file was named on the command line, so that its
    /// absence is an error rather than "no ignores".
    #[serde(skip)]
    pub ignore_file_given: bool,
}

impl Policy {
    pub fn resolve(
        manifest: &ScanPolicy,
        severities: &[String],
        gate_unfixed: bool,
        ignore_file: Option<&str>,
    ) -> anyhow::Result<Policy> {
        let chosen = if severities.is_empty() {
            &manifest.severities
        } else {
            severities
        };
        let mut normalized = Vec::new();
        for severity in chosen {
            let upper = severity.trim().to_ascii_uppercase();
            if !SEVERITIES.contains(&upper.as_str()) {
                bail!(
                    "unknown severity {severity:?}: use {}",
                    SEVERITIES.join(", ")
                );
            }
            if !normalized.contains(&upper) {
                normalized.push(upper);
            }
        }
        if normalized.is_empty() {
            bail!(
                "no severity gates the scan: name at least one of {}",
                SEVERITIES.join(", ")
            );
        }
        Ok(Policy {
            severities: normalized,
            gate_unfixed: gate_unfixed || manifest.gate_unfixed,
            ignore_file: ignore_file.unwrap_or(&manifest.ignore_file).to_owned(),
            ignore_file_given: ignore_file.is_some(),
        })
    }

    pub fn gates(&self, severity: &str, fixed: bool) -> bool {
        self.severities
            .iter()
            .any(|s| s.eq_ignore_ascii_case(severity))
            && (fixed || self.gate_unfixed)
    }

    /// `no HIGH or CRITICAL with a fix`.
    pub fn describe(&self) -> String {
        let severities = match self.severities.as_slice() {
            [one] => one.clone(),
            [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
            [] => String::new(),
        };
        if self.gate_unfixed {
            format!("no {severities}")
        } else {
            format!("no {severities} with a fix")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_decides_unless_a_flag_says_otherwise() {
        let manifest = ScanPolicy::default();
        let policy = Policy::resolve(&manifest, &[], false, None).unwrap();
        assert_eq!(policy.severities, ["HIGH", "CRITICAL"]);
        assert!(policy.gates("CRITICAL", true));
        assert!(!policy.gates("CRITICAL", false), "unfixed is shown only");
        assert!(!policy.gates("MEDIUM", true));
        assert_eq!(policy.describe(), "no HIGH or CRITICAL with a fix");

        let policy = Policy::resolve(&manifest, &["medium".into()], true, Some("x.yaml")).unwrap();
        assert!(policy.gates("MEDIUM", false));
        assert!(!policy.gates("HIGH", true));
        assert!(policy.ignore_file_given);
    }

    #[test]
    fn an_unknown_severity_is_an_error() {
        let error =
            Policy::resolve(&ScanPolicy::default(), &["SEVERE".into()], false, None).unwrap_err();
        assert!(
            error.to_string().starts_with("unknown severity \"SEVERE\""),
            "{error}"
        );
    }
}

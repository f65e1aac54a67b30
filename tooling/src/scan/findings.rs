//! What every scanner's report comes down to: findings, each gating or not,
//! and what was suppressed by an ignore.

use std::fmt::Write as _;

use serde::Serialize;

/// One finding, in the words a person reads in the gate's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `CVE-2099-1001`, `DS-0002`, `RUSTSEC-2020-0071`, `DL3007`.
    pub id: String,
    /// The scanner's own word: `CRITICAL`, `error`, `warning`.
    pub severity: String,
    /// The package or rule subject; empty for a Dockerfile line.
    pub package: String,
    pub installed: String,
    /// `None` when no fix exists.
    pub fixed: Option<String>,
    pub title: String,
    /// Where it was found: a layer, a file and line, a crate's path.
    pub location: String,
    pub gating: bool,
}

/// One scanner's account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Findings {
    pub findings: Vec<Finding>,
    /// Findings an ignore entry suppressed, with the entry's statement.
    pub suppressed: Vec<String>,
}

impl Findings {
    pub fn gating(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.gating)
    }

    /// `9 findings (1 CRITICAL, 3 HIGH, 1 MEDIUM, 4 LOW)`.
    pub fn summary(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for finding in &self.findings {
            match counts.iter_mut().find(|(s, _)| *s == finding.severity) {
                Some((_, n)) => *n += 1,
                None => counts.push((finding.severity.clone(), 1)),
            }
        }
        counts.sort_by_key(|(severity, _)| std::cmp::Reverse(rank(severity)));
        let mut text = format!(
            "{} finding{}",
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" }
        );
        if !counts.is_empty() {
            let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            let _ = write!(text, " ({})", parts.join(", "));
        }
        if !self.suppressed.is_empty() {
            let _ = write!(text, ", {} ignored", self.suppressed.len());
        }
        text
    }
}

/// Orders severities from every scanner on one scale, most severe last.
pub fn rank(severity: &str) -> u8 {
    match severity.to_ascii_uppercase().as_str() {
        "CRITICAL" => 5,
        "HIGH" | "ERROR" => 4,
        "MEDIUM" | "WARNING" => 3,
        "LOW" | "INFO" | "NOTE" | "HELP" => 2,
        "STYLE" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: &str) -> Finding {
        Finding {
            id: "X".into(),
            severity: severity.into(),
            package: String::new(),
            installed: String::new(),
            fixed: None,
            title: String::new(),
            location: String::new(),
            gating: false,
        }
    }

    #[test]
    fn the_summary_counts_by_severity_most_severe_first() {
        let findings = Findings {
            findings: vec![finding("LOW"), finding("CRITICAL"), finding("LOW")],
            suppressed: vec!["CVE-1".into()],
        };
        assert_eq!(
            findings.summary(),
            "3 findings (1 CRITICAL, 2 LOW), 1 ignored"
        );
        assert_eq!(Findings::default().summary(), "0 findings");
    }
}

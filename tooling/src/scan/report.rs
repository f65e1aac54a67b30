//! The scan's verdict: a check per step, the gating findings in a table,
//! the databases used, expired ignores, and the same as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::findings::{Finding, Findings};
use super::policy::Policy;
use super::{Outcome, Step};
use crate::checks::{Check, Verdict};
use crate::ignores::Ignore;
use crate::output::{Table, truncate};

/// Everything the verdict is made from.
pub struct Scanned<'a> {
    pub subject: String,
    pub policy: &'a Policy,
    pub outcomes: &'a BTreeMap<&'static str, Outcome>,
    pub expired: &'a [&'a Ignore],
    pub sarif: &'a Path,
}

#[derive(Serialize)]
struct StepReport<'a> {
    step: &'static str,
    status: &'static str,
    database: Option<&'a str>,
    findings: Option<&'a Findings>,
    reason: Option<&'a str>,
}

/// What a step's check expects.
fn expected(step: Step, policy: &Policy) -> String {
    match step {
        Step::Deny => "no error".to_owned(),
        Step::Hadolint => "no warning or error".to_owned(),
        _ => policy.describe(),
    }
}

fn check<'a>(step: Step, outcome: &'a Outcome, policy: &Policy) -> (Check, StepReport<'a>) {
    let expected = expected(step, policy);
    let report =
        |status, database: Option<&'a String>, findings, reason: Option<&'a String>| StepReport {
            step: step.name(),
            status,
            database: database.map(String::as_str),
            findings,
            reason: reason.map(String::as_str),
        };
    match outcome {
        Outcome::Ran { findings, database } => {
            let ids: Vec<String> = findings
                .gating()
                .map(|f| format!("{} {}", f.id, f.package))
                .collect();
            let status = if ids.is_empty() { "pass" } else { "fail" };
            let check = Check::judge(
                step.title(),
                ids.is_empty(),
                format!("{}, {} gating", findings.summary(), ids.len()),
                expected,
            )
            .because(ids.join(", "));
            (
                check,
                report(status, database.as_ref(), Some(findings), None),
            )
        }
        Outcome::Failed(reason) => (
            Check::broken(step.title(), expected, &anyhow::anyhow!("{reason}")),
            report("error", None, None, Some(reason)),
        ),
        Outcome::Skipped(reason) => (
            Check::skipped(step.title(), expected, reason.clone()),
            report("skipped", None, None, Some(reason)),
        ),
    }
}

/// Vulnerabilities at a gating severity that have no fix, and so were
/// shown without gating.
fn unfixed_shown(step: Step, findings: &Findings, policy: &Policy) -> usize {
    if policy.gate_unfixed || !matches!(step, Step::Vuln | Step::Crates) {
        return 0;
    }
    findings
        .findings
        .iter()
        .filter(|f| f.fixed.is_none() && !f.gating && policy.gates(&f.severity, true))
        .count()
}

fn gating_table(gating: &[(Step, &Finding)]) -> String {
    let mut table = Table::new(&[
        "step",
        "id",
        "severity",
        "package",
        "installed",
        "fixed",
        "title",
        "where",
    ]);
    for (step, f) in gating {
        table.row([
            step.name().to_owned(),
            f.id.clone(),
            f.severity.clone(),
            f.package.clone(),
            f.installed.clone(),
            f.fixed.clone().unwrap_or_else(|| "no fix".to_owned()),
            truncate(&f.title, 48),
            truncate(&f.location, 40),
        ]);
    }
    format!("gating findings\n{}\n", table.render())
}

pub fn verdict(scanned: &Scanned<'_>) -> Verdict {
    let policy = scanned.policy;
    let mut checks = Vec::new();
    let mut reports = Vec::new();
    let mut gating: Vec<(Step, &Finding)> = Vec::new();
    let mut text = String::new();
    let mut databases = String::new();
    let mut unfixed = 0;
    let mut total = 0;
    for step in Step::ALL {
        let Some(outcome) = scanned.outcomes.get(step.name()) else {
            continue;
        };
        if let Outcome::Ran { findings, database } = outcome {
            gating.extend(findings.gating().map(|f| (step, f)));
            unfixed += unfixed_shown(step, findings, policy);
            total += findings.findings.len();
            if let Some(database) = database {
                let _ = writeln!(databases, "database {}: {database}", step.name());
            }
        }
        let (check, report) = check(step, outcome, policy);
        checks.push(check);
        reports.push(report);
    }
    if !gating.is_empty() {
        text.push_str(&gating_table(&gating));
    }
    text.push_str(&databases);
    for ignore in scanned.expired {
        let _ = writeln!(
            text,
            "expired ignore: {} in {} (expired_at {}) no longer applies",
            ignore.id,
            ignore.section,
            ignore.expired_at.as_deref().unwrap_or("?")
        );
    }
    if unfixed > 0 {
        let _ = writeln!(
            text,
            "{unfixed} {} finding(s) with no fix are shown but do not gate (gate-unfixed = false)",
            policy.severities.join("/")
        );
    }
    let _ = writeln!(text, "SARIF: {}\n", scanned.sarif.display());

    let skipped = checks
        .iter()
        .filter(|c| c.status == crate::checks::Status::Skipped)
        .count();
    let mut headline = format!("{} gating of {total} findings", gating.len());
    if skipped > 0 {
        let _ = write!(headline, ", {skipped} step(s) skipped");
    }
    Verdict {
        text,
        headline,
        checks,
        ..Verdict::new("scan", scanned.subject.clone()).with_details(serde_json::json!({
            "policy": policy,
            "steps": reports,
            "expired_ignores": scanned.expired,
            "sarif": scanned.sarif,
        }))
    }
}

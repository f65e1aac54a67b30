//! The one pass/fail type every command returns: a [`Verdict`] made of
//! [`Check`]s, each with what was measured and what was expected. `main`
//! prints it (a table for people, JSON for `--json`) and turns a failure
//! into the exit status; `ci` collects one per step.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::output::{self, Table, truncate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not run, on purpose; the check says why. Never counts as a pass.
    Skipped,
    /// Not run again: it passed in an earlier run whose inputs were the
    /// same, and says when. Never shown as a fresh pass.
    Cached,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skipped => "SKIPPED",
            Status::Cached => "cached",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// The figure, in words a person can read: `742 ms`, `exit 0`.
    pub measured: String,
    pub expected: String,
    /// On a failure, what happened instead (often more than `measured`);
    /// on a skip, why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// How long it took, where the time is part of the story (`ci`'s steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Check {
    pub fn judge(
        name: impl Into<String>,
        passed: bool,
        measured: impl Into<String>,
        expected: impl Into<String>,
    ) -> Check {
        let measured = measured.into();
        Check {
            name: name.into(),
            status: if passed { Status::Pass } else { Status::Fail },
            actual: (!passed).then(|| measured.clone()),
            measured,
            expected: expected.into(),
            duration_ms: None,
        }
    }

    /// A check that could not be measured at all.
    pub fn broken(
        name: impl Into<String>,
        expected: impl Into<String>,
        error: &anyhow::Error,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            measured: "-".to_owned(),
            expected: expected.into(),
            actual: Some(format!("{error:#}")),
            duration_ms: None,
        }
    }

    /// A check left out on purpose, and why.
    pub fn skipped(
        name: impl Into<String>,
        expected: impl Into<String>,
        reason: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Skipped,
            measured: "-".to_owned(),
            expected: expected.into(),
            actual: Some(reason.into()),
            duration_ms: None,
        }
    }

    /// A check that passed in an earlier run with the same inputs, at `at`.
    pub fn cached(
        name: impl Into<String>,
        expected: impl Into<String>,
        at: &str,
        measured: &str,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Cached,
            measured: format!("cached (from {at}): {measured}"),
            expected: expected.into(),
            actual: None,
            duration_ms: None,
        }
    }

    /// Replaces the failure's account of what happened.
    pub fn because(mut self, actual: impl Into<String>) -> Check {
        if self.status == Status::Fail {
            self.actual = Some(actual.into());
        }
        self
    }

    pub fn timed(mut self, duration: Duration) -> Check {
        self.duration_ms = Some(output::millis(duration));
        self
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }

    fn account(&self) -> &str {
        self.actual.as_deref().unwrap_or(&self.measured)
    }
}

/// What one command found.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub command: &'static str,
    /// What was judged: an image, the host's tools, the workspace.
    pub subject: String,
    /// The command's own account for people, shown above the checks:
    /// settings, figures, a layer table.
    pub text: String,
    /// The same account for machines; its keys go beside `checks` and
    /// `passed` in the JSON.
    pub details: Map<String, Value>,
    /// The key figure in a few words (`33.9 MB, 3 layers`), for summaries
    /// such as `ci`'s.
    pub headline: String,
    pub checks: Vec<Check>,
}

/// Longer figures are cut in the table; `--json` has them whole.
const MEASURED_WIDTH: usize = 64;
/// How much of each failure the one-line error quotes.
const ACCOUNT_WIDTH: usize = 160;

impl Verdict {
    pub fn new(command: &'static str, subject: impl Into<String>) -> Verdict {
        Verdict {
            command,
            subject: subject.into(),
            text: String::new(),
            details: Map::new(),
            headline: String::new(),
            checks: Vec::new(),
        }
    }

    /// Sets the JSON account; a value that is not an object goes under `details`.
    pub fn with_details(mut self, details: impl Serialize) -> Verdict {
        self.details = match serde_json::to_value(details) {
            Ok(Value::Object(map)) => map,
            Ok(other) => Map::from_iter([("details".to_owned(), other)]),
            Err(error) => Map::from_iter([("details_error".to_owned(), error.to_string().into())]),
        };
        self
    }

    pub fn passed(&self) -> bool {
        !self.checks.iter().any(Check::failed)
    }

    /// The account, the table of checks, then each failure's expected and actual.
    pub fn render(&self) -> String {
        let mut out = self.text.clone();
        if self.checks.is_empty() {
            return out;
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        let timed = self.checks.iter().any(|c| c.duration_ms.is_some());
        let mut headers = vec!["check", "measured", "expected", "result"];
        if timed {
            headers.push("time");
        }
        let mut table = Table::new(&headers);
        for check in &self.checks {
            let mut row = vec![
                check.name.clone(),
                truncate(&check.measured, MEASURED_WIDTH),
                check.expected.clone(),
                check.status.word().to_owned(),
            ];
            if timed {
                row.push(check.duration_ms.map_or_else(String::new, |ms| {
                    output::duration(Duration::from_millis(ms))
                }));
            }
            table.row(row);
        }
        out.push_str(&table.render());
        let skipped: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Skipped)
            .collect();
        if !skipped.is_empty() {
            out.push('\n');
        }
        for check in skipped {
            let _ = writeln!(out, "SKIPPED {}: {}", check.name, check.account());
        }
        for check in self.checks.iter().filter(|c| c.failed()) {
            let _ = write!(
                out,
                "\nFAIL {}\n  expected: {}\n  actual:   {}\n",
                check.name,
                check.expected,
                check.account()
            );
        }
        out
    }

    /// The command's details, then `command`, `subject`, `checks` and `passed`.
    pub fn to_json(&self) -> Value {
        let mut map = self.details.clone();
        map.insert("command".into(), self.command.into());
        map.insert("subject".into(), self.subject.clone().into());
        map.insert("headline".into(), self.headline.clone().into());
        map.insert(
            "checks".into(),
            serde_json::to_value(&self.checks).unwrap_or_default(),
        );
        map.insert("passed".into(), self.passed().into());
        Value::Object(map)
    }

    /// One line naming each failed check, or `None` when none failed.
    pub fn failure_line(&self) -> Option<String> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.failed())
            .map(|c| {
                format!(
                    "{} (expected {}, got {})",
                    c.name,
                    c.expected,
                    truncate(c.account(), ACCOUNT_WIDTH)
                )
            })
            .collect();
        (!failed.is_empty()).then(|| {
            format!(
                "{} of {}: {} of {} checks failed: {}",
                self.command,
                self.subject,
                failed.len(),
                self.checks.len(),
                failed.join("; ")
            )
        })
    }
}

/// The failed checks of a verdict another command printed with `--json`,
/// each as `name: what happened`.
pub fn failed_in_json(verdict: &Value) -> Vec<String> {
    verdict["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap_or("?"),
                c["actual"]
                    .as_str()
                    .or(c["measured"].as_str())
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Each failed check as `name: what happened`, for tests of the checks a
/// command makes.
#[cfg(test)]
pub fn failures(checks: Vec<Check>) -> Vec<String> {
    checks
        .into_iter()
        .filter(Check::failed)
        .map(|c| format!("{}: {}", c.name, c.actual.unwrap_or_default()))
        .collect()
}

/// A command's verdict as one proof: it passes when the verdict does; its
/// figure is the command's headline and the checks it skipped.
pub fn proof(name: &str, verdict: &Value) -> Check {
    let skipped = names_with(verdict, "skipped");
    Check::judge(
        name,
        passed(verdict),
        format!(
            "{}; {} passed, skipped: {}",
            headline(verdict),
            names_with(verdict, "pass").len(),
            if skipped.is_empty() {
                "none".to_owned()
            } else {
                skipped.join(", ")
            }
        ),
        "every applicable check passes",
    )
    .because(failed_checks(verdict))
}

pub fn passed(verdict: &Value) -> bool {
    verdict["passed"].as_bool() == Some(true)
}

pub fn headline(verdict: &Value) -> String {
    verdict["headline"].as_str().unwrap_or_default().to_owned()
}

/// The names of the checks with this status.
pub fn names_with(verdict: &Value, status: &str) -> Vec<String> {
    verdict["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == status)
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// The failed checks with what happened, for a failure's account.
pub fn failed_checks(verdict: &Value) -> String {
    failed_in_json(verdict).join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(checks: Vec<Check>) -> Verdict {
        Verdict {
            checks,
            ..Verdict::new("shutdown-test", "server:1")
        }
    }

    #[test]
    fn a_failure_says_what_was_expected_and_what_happened() {
        let verdict = verdict(vec![
            Check::judge("start to ready", true, "412 ms", "< 5 s"),
            Check::judge("exit after drain", false, "exit 137", "exit 0")
                .because("exit 137 (killed by docker after 20 s)"),
        ]);
        assert_eq!(
            verdict.failure_line().unwrap(),
            "shutdown-test of server:1: 1 of 2 checks failed: exit after drain (expected exit 0, got exit 137 (killed by docker after 20 s))"
        );
        let text = verdict.render();
        assert!(
            text.contains("FAIL exit after drain\n  expected: exit 0\n"),
            "{text}"
        );
    }

    #[test]
    fn all_passing_means_no_failure_line() {
        let verdict = verdict(vec![Check::judge("a", true, "1", "1")]);
        assert_eq!(verdict.failure_line(), None);
        assert!(verdict.passed());
        assert_eq!(verdict.checks[0].actual, None);
    }

    #[test]
    fn a_broken_check_carries_its_error() {
        let error = anyhow::anyhow!("inner").context("outer");
        let check = Check::broken("start", "running", &error);
        assert_eq!(check.actual.as_deref(), Some("outer: inner"));
        assert!(check.failed());
    }

    #[test]
    fn a_skip_is_shown_with_its_reason_and_is_not_a_failure() {
        let verdict = verdict(vec![Check::skipped(
            "vulnerabilities",
            "no HIGH or CRITICAL",
            "--skip vuln",
        )]);
        assert!(verdict.passed());
        let text = verdict.render();
        assert!(
            text.contains("SKIPPED vulnerabilities: --skip vuln"),
            "{text}"
        );
        let json = verdict.to_json();
        assert_eq!(json["checks"][0]["status"], "skipped");
        assert_eq!(json["checks"][0]["actual"], "--skip vuln");
    }

    /// One check of each kind, with fixed times: the table people read and
    /// the `--json` form machines read, as insta snapshots.
    #[test]
    fn a_verdict_renders_as_a_table_and_as_json() {
        let error = anyhow::anyhow!("connection refused").context("cannot reach the server");
        let verdict = Verdict {
            text: "image server:1 (sha256:0123456789ab), 3 layers\n".to_owned(),
            headline: "412 ms to ready".to_owned(),
            ..verdict(vec![
                Check::judge("start to ready", true, "412 ms", "< 5 s")
                    .timed(Duration::from_millis(412)),
                Check::judge("exit after drain", false, "exit 137", "exit 0")
                    .because("exit 137 (killed by docker after 20 s)")
                    .timed(Duration::from_millis(20_140)),
                Check::broken("read back", "the note, whole", &error).timed(Duration::from_secs(2)),
                Check::skipped("vulnerabilities", "no HIGH or CRITICAL", "--skip vuln"),
                Check::cached("image builds", "builds", "2026-12-04T03:00:00Z", "33.9 MB"),
            ])
            .with_details(serde_json::json!({"image": "server:1", "layers": 3}))
        };
        insta::assert_snapshot!("verdict_table", verdict.render());
        insta::assert_snapshot!(
            "verdict_json",
            serde_json::to_string_pretty(&verdict.to_json()).unwrap()
        );
    }

    #[test]
    fn the_json_carries_the_details_beside_the_checks() {
        let verdict = verdict(vec![Check::judge("a", false, "2", "1")])
            .with_details(serde_json::json!({"figures": {"n": 2}}));
        let json = verdict.to_json();
        assert_eq!(json["figures"]["n"], 2);
        assert_eq!(json["command"], "shutdown-test");
        assert_eq!(json["subject"], "server:1");
        assert_eq!(json["passed"], false);
        assert_eq!(json["checks"][0]["status"], "fail");
    }
}

//! Pass/fail checks with what was measured and what was expected.

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{Table, truncate};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// The figure, in words a person can read: `742 ms`, `exit 0`.
    pub measured: String,
    pub expected: String,
    /// On a failure, what happened instead (often more than `measured`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
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
            passed,
            actual: (!passed).then(|| measured.clone()),
            measured,
            expected: expected.into(),
        }
    }

    /// A check that could not be measured at all.
    pub fn broken(
        name: impl Into<String>,
        expected: impl Into<String>,
        error: &anyhow::Error,
    ) -> Check {
        let actual = format!("{error:#}");
        Check {
            name: name.into(),
            passed: false,
            measured: "-".to_owned(),
            expected: expected.into(),
            actual: Some(actual),
        }
    }

    /// Replaces the failure's account of what happened.
    pub fn because(mut self, actual: impl Into<String>) -> Check {
        if !self.passed {
            self.actual = Some(actual.into());
        }
        self
    }
}

/// Longer figures are cut in the table; `--json` has them whole.
const MEASURED_WIDTH: usize = 64;

/// The table of checks, then each failure's expected and actual.
pub fn render(checks: &[Check]) -> String {
    let mut table = Table::new(&["check", "measured", "expected", "result"]);
    for check in checks {
        table.row([
            check.name.clone(),
            truncate(&check.measured, MEASURED_WIDTH),
            check.expected.clone(),
            if check.passed { "pass" } else { "FAIL" }.to_owned(),
        ]);
    }
    let mut out = table.render();
    for check in checks.iter().filter(|c| !c.passed) {
        let _ = write!(
            out,
            "\nFAIL {}\n  expected: {}\n  actual:   {}\n",
            check.name,
            check.expected,
            check.actual.as_deref().unwrap_or(&check.measured)
        );
    }
    out
}

/// One line naming each failed check, or `None` when all passed.
pub fn failure_line(checks: &[Check]) -> Option<String> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            format!(
                "{} (expected {}, got {})",
                c.name,
                c.expected,
                truncate(c.actual.as_deref().unwrap_or(&c.measured), 160)
            )
        })
        .collect();
    (!failed.is_empty()).then(|| {
        format!(
            "{} of {} checks failed: {}",
            failed.len(),
            checks.len(),
            failed.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_what_was_expected_and_what_happened() {
        let checks = [
            Check::judge("start to ready", true, "412 ms", "< 5 s"),
            Check::judge("exit after drain", false, "exit 137", "exit 0")
                .because("exit 137 (killed by docker after 20 s)"),
        ];
        let line = failure_line(&checks).unwrap();
        assert_eq!(
            line,
            "1 of 2 checks failed: exit after drain (expected exit 0, got exit 137 (killed by docker after 20 s))"
        );
        let text = render(&checks);
        assert!(
            text.contains("FAIL exit after drain\n  expected: exit 0\n"),
            "{text}"
        );
    }

    #[test]
    fn all_passing_means_no_failure_line() {
        let checks = [Check::judge("a", true, "1", "1")];
        assert_eq!(failure_line(&checks), None);
        assert_eq!(checks[0].actual, None);
    }

    #[test]
    fn a_broken_check_carries_its_error() {
        let error = anyhow::anyhow!("inner").context("outer");
        let check = Check::broken("start", "running", &error);
        assert_eq!(check.actual.as_deref(), Some("outer: inner"));
    }
}

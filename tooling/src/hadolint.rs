//! hadolint, the Dockerfile linter: run on the workspace's Dockerfile, its
//! JSON findings read here, and judged at warning level.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use xshell::Shell;

use crate::checks::Check;
use crate::tools::{self, Tool};

/// The levels that fail the check; `info` and `style` are shown only.
const GATING_LEVELS: &[&str] = &["error", "warning"];

/// One finding as `hadolint --format json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Finding {
    pub code: String,
    pub level: String,
    #[serde(default)]
    pub line: u32,
    pub message: String,
}

/// Lints `dockerfile`; a hadolint that cannot run fails the check with the reason.
pub fn check(sh: &Shell, dockerfile: &Path) -> Check {
    const NAME: &str = "hadolint";
    const EXPECTED: &str = "no warning or error";
    match lint(sh, dockerfile) {
        Ok(findings) => judge(&findings),
        Err(error) => Check::broken(NAME, EXPECTED, &error),
    }
}

pub fn lint(sh: &Shell, dockerfile: &Path) -> anyhow::Result<Vec<Finding>> {
    let hadolint = tools::require(sh, Tool::Hadolint)?.path;
    // Exit 1 means findings; the JSON says which, so the status is not read.
    let output = xshell::cmd!(sh, "{hadolint} --no-fail --format json {dockerfile}")
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run {}", hadolint.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "hadolint failed on {}: {}",
            dockerfile.display(),
            crate::process::last_line(&String::from_utf8_lossy(&output.stderr))
        );
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// hadolint's own SARIF for `dockerfile`, for code scanning.
pub fn sarif(sh: &Shell, dockerfile: &Path) -> anyhow::Result<serde_json::Value> {
    let hadolint = tools::require(sh, Tool::Hadolint)?.path;
    let output = crate::process::read(xshell::cmd!(
        sh,
        "{hadolint} --no-fail --format sarif {dockerfile}"
    ))
    .context("hadolint cannot write SARIF")?;
    serde_json::from_str(&output).context("hadolint's SARIF is not JSON")
}

pub fn parse(json: &str) -> anyhow::Result<Vec<Finding>> {
    serde_json::from_str(json).context("hadolint's output is not its JSON list of findings")
}

/// Whether a finding at `level` fails the lint.
pub fn gates(level: &str) -> bool {
    GATING_LEVELS.contains(&level)
}

pub fn judge(findings: &[Finding]) -> Check {
    let gating: Vec<String> = findings
        .iter()
        .filter(|f| gates(&f.level))
        .map(|f| format!("line {} {} ({}): {}", f.line, f.code, f.level, f.message))
        .collect();
    Check::judge(
        "hadolint",
        gating.is_empty(),
        format!(
            "{} findings, {} at warning level or above",
            findings.len(),
            gating.len()
        ),
        "no warning or error",
    )
    .because(gating.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_fail_and_style_notes_do_not() {
        let findings = parse(
            r#"[{"code":"DL3007","column":1,"file":"Dockerfile","level":"warning","line":3,"message":"Using latest"},
                {"code":"DL3059","column":1,"file":"Dockerfile","level":"info","line":9,"message":"Multiple RUN"}]"#,
        )
        .unwrap();
        let check = judge(&findings);
        assert!(check.failed());
        assert_eq!(
            check.actual.as_deref(),
            Some("line 3 DL3007 (warning): Using latest")
        );
        assert!(!judge(&findings[1..]).failed());
    }

    #[test]
    fn output_that_is_not_hadolints_json_is_an_error() {
        let error = parse("Dockerfile:1 DL3006 warning").unwrap_err();
        assert!(error.to_string().contains("hadolint"), "{error}");
    }

    #[test]
    fn a_missing_dockerfile_fails_the_check_with_its_reason() {
        let sh = Shell::new().unwrap();
        let check = check(&sh, Path::new("/nonexistent/Dockerfile"));
        assert!(check.failed());
        assert!(check.actual.is_some());
    }
}

//! Where `ci`'s summary goes besides the terminal: JSON under
//! `target/xtask/ci/`, and Markdown for GitHub's job summary.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::checks::{Status, Verdict};
use crate::output;

/// GitHub refuses a step summary over 1 MiB; stay well under it.
const MARKDOWN_LIMIT: usize = 512 * 1024;
/// A cell longer than this is cut.
const CELL_WIDTH: usize = 300;

pub fn write_json(verdict: &Verdict, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&verdict.to_json())?;
    std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// Appends the summary to `$GITHUB_STEP_SUMMARY` when it is set.
pub fn append_to_github_summary(verdict: &Verdict) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", Path::new(&path).display()))?;
    file.write_all(markdown(verdict).as_bytes())
        .context("cannot write the GitHub step summary")
}

/// A Markdown table: step, result, time, key figure, and why for the rest.
pub fn markdown(verdict: &Verdict) -> String {
    let mut out = format!(
        "## cargo xtask ci: {}\n\n| step | result | time | key figure |\n|---|---|---|---|\n",
        if verdict.passed() { "passed" } else { "FAILED" }
    );
    for check in &verdict.checks {
        let result = match check.status {
            Status::Pass => "✅ pass".to_owned(),
            Status::Fail => "❌ FAIL".to_owned(),
            Status::Skipped => "⏭️ skipped".to_owned(),
            Status::Cached => "♻️ cached".to_owned(),
        };
        let time = check.duration_ms.map_or_else(String::new, |ms| {
            output::duration(Duration::from_millis(ms))
        });
        let figure = match check.status {
            Status::Pass | Status::Cached => check.measured.clone(),
            _ => check.actual.clone().unwrap_or_default(),
        };
        let row = format!(
            "| {} | {result} | {time} | {} |\n",
            cell(&check.name),
            cell(&figure)
        );
        if out.len() + row.len() > MARKDOWN_LIMIT {
            out.push_str("| … | | | the rest is in target/xtask/ci/summary.json |\n");
            break;
        }
        out.push_str(&row);
    }
    let _ = writeln!(out);
    out
}

/// Table cells may hold no `|` or newline.
fn cell(text: &str) -> String {
    output::truncate(&text.replace('|', "\\|").replace('\n', " "), CELL_WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;

    /// A row a step, with why it did not pass: a `|` or a newline in the
    /// account cannot break the table.
    #[test]
    fn the_markdown_has_a_row_a_step_with_why_it_did_not_pass() {
        let verdict = Verdict {
            checks: vec![
                Check::judge("fmt", true, "clean", "formatted").timed(Duration::from_secs(2)),
                Check::cached("clippy", "no warnings", "2026-12-04T03:00:00Z", "clean"),
                Check::judge("test", true, "214 passed", "every test passes")
                    .timed(Duration::from_millis(48_250)),
                Check::judge("image", false, "x", "builds")
                    .because("no | engine\nat all")
                    .timed(Duration::from_millis(731)),
                Check::skipped("scan", "clean", "--skip: no database"),
            ],
            ..Verdict::new("ci", "the workspace")
        };
        insta::assert_snapshot!(markdown(&verdict));
    }

    #[test]
    fn the_markdown_stays_under_githubs_limit() {
        let checks = (0..5_000)
            .map(|n| Check::judge(format!("step {n}"), true, "x".repeat(400), "y"))
            .collect();
        let verdict = Verdict {
            checks,
            ..Verdict::new("ci", "the workspace")
        };
        let text = markdown(&verdict);
        assert!(text.len() <= MARKDOWN_LIMIT + 200, "{}", text.len());
        assert!(text.contains("summary.json"));
    }
}

//! `cargo xtask adopt-test`: the workspace adopted for a service nobody
//! wrote it for, by its manifest table alone. The example `hello` is
//! stateless, listens on 3000 and names its own routes; its table is
//! `examples/hello/xtask.toml`. Each step runs this xtask as a user would,
//! with `--manifest`:
//!
//! 1. `image`: its image builds and conforms;
//! 2. `shutdown-test`: every applicable check passes, and those the table
//!    rules out (writes, durability) show as not applicable;
//! 3. `shutdown-test` with SIGTERM handling switched off: the verdict fails,
//!    says the signal was not handled, and no check that needs the
//!    signal handled passes.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;
use xshell::Shell;

use crate::checks::{Check, Verdict};
use crate::flags;
use crate::last_build::ImageReport;

/// The checks that can only pass when the service handles SIGTERM.
const NEED_SIGTERM: [&str; 5] = [
    "drain: in-flight requests",
    "idle stop",
    "drain: exit status",
    "drain: stop latency under load",
    "deadline",
];

/// What the broken run's failure must say.
const CAUSE: &str = "SIGTERM not handled in time";

impl flags::AdoptTest {
    pub(crate) fn run(self, sh: &Shell) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let table = root.join(&self.table);
        if !table.is_file() {
            bail!("no manifest table at {}", table.display());
        }
        let xtask = std::env::current_exe().context("cannot find this program's path")?;
        // Building the example must not change which image the workspace's
        // own commands pick by default.
        let last_build = std::fs::read(ImageReport::path(&root)).ok();
        let result = self.steps(&xtask, &root);
        if let Some(bytes) = last_build {
            std::fs::write(ImageReport::path(&root), bytes)
                .context("cannot restore target/xtask/image.json")?;
        }
        let checks = result?;
        let (name, value) = &self.broken_env;
        let text = format!(
            "example adopted by {}\nbroken variant: {name}={value}\n",
            self.table.display()
        );
        let measured = |name: &str| {
            checks
                .iter()
                .find(|c| c.name == name)
                .map_or_else(|| "not run".to_owned(), |c| c.measured.clone())
        };
        let headline = format!(
            "handled: {}; ignored: {} that need it fail",
            measured("shutdown-test, SIGTERM handled"),
            measured("no false pass")
        );
        Ok(Verdict {
            text,
            headline,
            checks,
            ..Verdict::new("adopt-test", self.table.display().to_string())
        })
    }

    fn steps(&self, xtask: &Path, root: &Path) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        let mut image_args = vec!["image"];
        if self.offline {
            image_args.push("--offline");
        }
        let built = self.xtask(xtask, root, &image_args)?;
        let image = built["image_id"].as_str().unwrap_or_default().to_owned();
        checks.push(
            Check::judge(
                "image",
                passed(&built) && !image.is_empty(),
                headline(&built),
                "builds and conforms, from the table alone",
            )
            .because(failed_checks(&built)),
        );
        if image.is_empty() {
            return Ok(checks);
        }

        let healthy = self.xtask(xtask, root, &["shutdown-test", "--image", &image])?;
        let not_applicable = names_with(&healthy, "skipped");
        checks.push(
            Check::judge(
                "shutdown-test, SIGTERM handled",
                passed(&healthy),
                format!(
                    "{} passed, not applicable: {}",
                    names_with(&healthy, "pass").len(),
                    if not_applicable.is_empty() {
                        "none".to_owned()
                    } else {
                        not_applicable.join(", ")
                    }
                ),
                "every applicable check passes",
            )
            .because(failed_checks(&healthy)),
        );

        let (name, value) = &self.broken_env;
        let env = format!("{name}={value}");
        let broken = self.xtask(
            xtask,
            root,
            &["shutdown-test", "--image", &image, "--env", &env],
        )?;
        let failed = names_with(&broken, "fail");
        let says_why = broken["checks"].as_array().into_iter().flatten().any(|c| {
            c["name"] == "idle stop" && c["actual"].as_str().is_some_and(|a| a.contains(CAUSE))
        });
        checks.push(
            Check::judge(
                "shutdown-test, SIGTERM ignored",
                !passed(&broken) && says_why,
                format!("fails: {}", failed.join(", ")),
                format!("fails, and idle stop says \"{CAUSE}\""),
            )
            .because(if passed(&broken) {
                format!("with {env} shutdown-test passed")
            } else {
                format!(
                    "idle stop does not say \"{CAUSE}\": {}",
                    failed_checks(&broken)
                )
            }),
        );
        let false_passes: Vec<&str> = NEED_SIGTERM
            .into_iter()
            .filter(|name| names_with(&broken, "pass").iter().any(|n| n == name))
            .collect();
        checks.push(
            Check::judge(
                "no false pass",
                false_passes.is_empty(),
                format!(
                    "{} of {} fail",
                    NEED_SIGTERM.len() - false_passes.len(),
                    NEED_SIGTERM.len()
                ),
                format!("with {env}, none of: {}", NEED_SIGTERM.join(", ")),
            )
            .because(format!(
                "passed although SIGTERM is ignored: {}",
                false_passes.join(", ")
            )),
        );
        Ok(checks)
    }

    /// Runs `cargo xtask --manifest <table> --json <args>` and returns its
    /// verdict; its progress goes to stderr as it runs.
    fn xtask(&self, xtask: &Path, root: &Path, args: &[&str]) -> anyhow::Result<Value> {
        eprintln!(
            "adopt-test: cargo xtask --manifest {} {}",
            self.table.display(),
            args.join(" ")
        );
        let output = Command::new(xtask)
            .current_dir(root)
            .arg("--manifest")
            .arg(&self.table)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", xtask.display()))?;
        serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "`{}` printed no verdict (exit {}); its errors are above",
                args.join(" "),
                output.status.code().unwrap_or(-1)
            )
        })
    }
}

fn passed(verdict: &Value) -> bool {
    verdict["passed"].as_bool() == Some(true)
}

fn headline(verdict: &Value) -> String {
    verdict["headline"].as_str().unwrap_or_default().to_owned()
}

/// The names of the checks with this status.
fn names_with(verdict: &Value, status: &str) -> Vec<String> {
    verdict["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == status)
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// The failed checks with what happened, for a failure's account.
fn failed_checks(verdict: &Value) -> String {
    crate::checks::failed_in_json(verdict).join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(checks: &[(&str, &str, &str)]) -> Value {
        serde_json::json!({
            "passed": !checks.iter().any(|(_, status, _)| *status == "fail"),
            "checks": checks.iter().map(|(name, status, actual)| serde_json::json!({
                "name": name, "status": status, "measured": "-", "actual": actual,
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn checks_are_read_by_status() {
        let v = verdict(&[
            (
                "idle stop",
                "fail",
                "exit 137: killed by docker after 12 s: SIGTERM not handled in time",
            ),
            ("durability", "skipped", "not applicable (manifest): …"),
            ("liveness", "pass", ""),
        ]);
        assert!(!passed(&v));
        assert_eq!(names_with(&v, "skipped"), ["durability"]);
        assert_eq!(names_with(&v, "pass"), ["liveness"]);
        assert!(failed_checks(&v).starts_with("idle stop: exit 137"));
    }
}

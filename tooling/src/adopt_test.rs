//! `cargo xtask adopt-test`: a service nobody wrote the workspace for,
//! adopted by its manifest table alone, proved as a user would prove it:
//! each step runs this xtask with `--manifest <table> --json` and reads its
//! verdict.
//!
//! 1. for each runtime the table's `[adopt-test]` names: `image` (built,
//!    conforming, its stop signal proved with its backing services), then
//!    `size-check`, `sbom`, `scan` and `shutdown-test` on that image;
//! 2. each broken variant the table names, on the first image: a setting
//!    that breaks the service must fail `shutdown-test`, at the check it
//!    names, with the cause it names, and pass none of the checks it lists.
//!
//! The table's `[adopt-test]` section is read here only; the rest of the
//! file is the service's `[workspace.metadata.xtask]`.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use xshell::Shell;

use crate::checks::{Check, Verdict, failed_checks, headline, names_with, passed, proof};
use crate::flags;
use crate::last_build::ImageReport;
use crate::metadata::Runtime;

/// What the table asks of its adoption.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Plan {
    /// The runtimes the service is built and proved on, each in full.
    #[serde(default = "distroless_only")]
    runtimes: Vec<Runtime>,
    /// Settings that break the service, and how the verdict must say so.
    #[serde(default)]
    broken: Vec<Broken>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Broken {
    /// `NAME=VALUE`, passed as `shutdown-test --env`.
    env: String,
    /// The check that must fail.
    fails: String,
    /// What its account must say: the cause, as a user would act on it.
    says: String,
    /// Checks that must not pass with this setting.
    #[serde(default)]
    never_passes: Vec<String>,
}

fn distroless_only() -> Vec<Runtime> {
    vec![Runtime::Distroless]
}

#[derive(Debug, Deserialize)]
struct TableFile {
    #[serde(rename = "adopt-test")]
    adopt_test: Option<Plan>,
}

impl flags::AdoptTest {
    pub(crate) fn run(self, sh: &Shell) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let table = root.join(&self.table);
        let text = std::fs::read_to_string(&table)
            .with_context(|| format!("no manifest table at {}", table.display()))?;
        let plan = toml::from_str::<TableFile>(&text)
            .with_context(|| format!("{}: bad [adopt-test] table", table.display()))?
            .adopt_test
            .unwrap_or(Plan {
                runtimes: distroless_only(),
                broken: Vec::new(),
            });
        if plan.runtimes.is_empty() {
            bail!("{}: [adopt-test] runtimes is empty", table.display());
        }
        let xtask = std::env::current_exe().context("cannot find this program's path")?;
        // Building the example must not change which image the workspace's
        // own commands pick by default.
        let last_build = std::fs::read(ImageReport::path(&root)).ok();
        let result = self.steps(&plan, &xtask, &root);
        if let Some(bytes) = last_build {
            std::fs::write(ImageReport::path(&root), bytes)
                .context("cannot restore target/xtask/image.json")?;
        }
        let checks = result?;
        let failed = checks.iter().filter(|c| c.failed()).count();
        let text = format!(
            "{} adopted by its table alone, on {}; {} broken variants\n",
            self.table.display(),
            plan.runtimes
                .iter()
                .map(|r| runtime_name(*r))
                .collect::<Vec<_>>()
                .join(" and "),
            plan.broken.len()
        );
        let headline = format!(
            "{} of {} proofs hold ({} broken variants named)",
            checks.len() - failed,
            checks.len(),
            plan.broken.len()
        );
        Ok(Verdict {
            text,
            headline,
            checks,
            ..Verdict::new("adopt-test", self.table.display().to_string())
        })
    }

    fn steps(&self, plan: &Plan, xtask: &Path, root: &Path) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        let mut first_image = None;
        for runtime in &plan.runtimes {
            let runtime = runtime_name(*runtime);
            let mut image_args = vec!["image", "--runtime", runtime];
            if self.offline {
                image_args.push("--offline");
            }
            let built = self.xtask(xtask, root, &image_args)?;
            let image = built["image_id"].as_str().unwrap_or_default().to_owned();
            checks.push(
                Check::judge(
                    format!("image ({runtime})"),
                    passed(&built) && !image.is_empty(),
                    headline(&built),
                    "builds and conforms, from the table alone",
                )
                .because(failed_checks(&built)),
            );
            if image.is_empty() {
                continue;
            }
            first_image.get_or_insert_with(|| image.clone());
            let scan = self.scan_args();
            let proofs: [(&str, Vec<&str>); 4] = [
                ("size-check", vec!["size-check"]),
                ("sbom", vec!["sbom"]),
                ("scan", scan.iter().map(String::as_str).collect()),
                ("shutdown-test", vec!["shutdown-test"]),
            ];
            for (name, mut args) in proofs {
                args.extend(["--image", &image]);
                let verdict = self.xtask(xtask, root, &args)?;
                checks.push(proof(&format!("{name} ({runtime})"), &verdict));
            }
        }
        let Some(image) = first_image else {
            for broken in &plan.broken {
                checks.push(Check::skipped(
                    format!("broken: {}", broken.env),
                    format!("fails at {}", broken.fails),
                    "not run: no image was built",
                ));
            }
            return Ok(checks);
        };
        for broken in &plan.broken {
            let verdict = self.xtask(
                xtask,
                root,
                &["shutdown-test", "--image", &image, "--env", &broken.env],
            )?;
            checks.push(judge_broken(broken, &verdict));
        }
        Ok(checks)
    }

    /// `scan` on the image's own findings (not the workspace's lock file or
    /// Dockerfile, which the workspace's steps scan), with the skips given;
    /// `--offline` reaches no network there either.
    fn scan_args(&self) -> Vec<String> {
        let mut args = vec!["scan".to_owned()];
        if self.offline {
            args.push("--offline".to_owned());
        }
        for step in ["vuln", "secret", "crates"] {
            args.extend(["--only".to_owned(), step.to_owned()]);
        }
        for skip in &self.skip {
            if let Some(skip) = skip.strip_prefix(crate::flags::SCAN_STEP_PREFIX) {
                args.extend(["--skip".to_owned(), skip.to_owned()]);
            }
        }
        args
    }

    /// Runs `cargo xtask --manifest <table> --json <args>` and returns its
    /// verdict; its progress goes to stderr as it runs.
    fn xtask(&self, xtask: &Path, root: &Path, args: &[&str]) -> anyhow::Result<Value> {
        let sh = Shell::new()?;
        sh.change_dir(root);
        let table = &self.table;
        crate::process::verdict(
            xshell::cmd!(sh, "{xtask} --manifest {table} --json {args...}"),
            None,
        )
    }
}

fn runtime_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Distroless => "distroless",
        Runtime::Minimal => "minimal",
    }
}

/// A broken variant's verdict: failed, at the named check, saying why, and
/// with none of the listed checks passed.
fn judge_broken(broken: &Broken, verdict: &Value) -> Check {
    let account = verdict["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == broken.fails.as_str() && c["status"] == "fail")
        .and_then(|c| c["actual"].as_str())
        .map(str::to_owned);
    let passed_names = names_with(verdict, "pass");
    let false_passes: Vec<&str> = broken
        .never_passes
        .iter()
        .map(String::as_str)
        .filter(|name| passed_names.iter().any(|n| n == name))
        .collect();
    let says = account
        .as_deref()
        .is_some_and(|account| account.contains(&broken.says));
    let because = if passed(verdict) {
        "shutdown-test passed".to_owned()
    } else if account.is_none() {
        format!(
            "{} did not fail; failed: {}",
            broken.fails,
            failed_checks(verdict)
        )
    } else if !says {
        format!(
            "{} does not say \"{}\": {}",
            broken.fails,
            broken.says,
            account.unwrap_or_default()
        )
    } else {
        format!(
            "passed although the service is broken: {}",
            false_passes.join(", ")
        )
    };
    Check::judge(
        format!("broken: {}", broken.env),
        !passed(verdict) && says && false_passes.is_empty(),
        format!("{} fails", broken.fails),
        format!("{} fails, saying \"{}\"", broken.fails, broken.says),
    )
    .because(because)
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

    fn sigterm_ignored() -> Broken {
        Broken {
            env: "HANDLE_SIGTERM=false".into(),
            fails: "idle stop".into(),
            says: "SIGTERM not handled in time".into(),
            never_passes: vec!["deadline".into(), "drain: in-flight requests".into()],
        }
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

    #[test]
    fn a_broken_variant_holds_only_when_it_fails_where_and_why_the_table_says() {
        let named = verdict(&[(
            "idle stop",
            "fail",
            "exit 137: killed by docker after 12 s: SIGTERM not handled in time",
        )]);
        assert!(!judge_broken(&sigterm_ignored(), &named).failed());

        let elsewhere = verdict(&[("deadline", "fail", "exit 137")]);
        let check = judge_broken(&sigterm_ignored(), &elsewhere);
        assert!(check.failed());
        assert!(check.actual.unwrap().contains("idle stop did not fail"));

        let other_cause = verdict(&[("idle stop", "fail", "exit 2")]);
        assert!(judge_broken(&sigterm_ignored(), &other_cause).failed());

        let false_pass = verdict(&[
            ("idle stop", "fail", "SIGTERM not handled in time"),
            ("drain: in-flight requests", "pass", ""),
        ]);
        let check = judge_broken(&sigterm_ignored(), &false_pass);
        assert!(check.failed());
        assert!(check.actual.unwrap().contains("drain: in-flight requests"));

        let passing = verdict(&[("idle stop", "pass", "")]);
        assert!(judge_broken(&sigterm_ignored(), &passing).failed());
    }

    #[test]
    fn the_examples_tables_name_their_runtimes_and_broken_variants() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for table in [
            "examples/hello/xtask.toml",
            "examples/newsletter/xtask.toml",
        ] {
            let text = std::fs::read_to_string(root.join(table)).unwrap();
            let plan = toml::from_str::<TableFile>(&text)
                .unwrap()
                .adopt_test
                .unwrap();
            assert!(!plan.broken.is_empty(), "{table}");
            for broken in &plan.broken {
                assert!(broken.env.contains('='), "{table}: {}", broken.env);
            }
        }
    }
}

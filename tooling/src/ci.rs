//! `cargo xtask ci`: the whole pipeline, the same on a laptop and in CI.
//!
//! 1. `plan.rs`: the steps in order (format, lint, tests, each image and
//!    its checks), and which run (`--only`, `--skip STEP=REASON`);
//! 2. `runner.rs`: each step as a child process, its output in a log under
//!    `target/xtask/ci/logs/`, a progress line on stderr, its result read
//!    from its exit status or its `--json` verdict;
//! 3. `cache.rs`: a step whose inputs are those of an earlier pass is not
//!    run again, and shows as `cached (from <time>)`;
//! 4. `schedule.rs`: which step starts next, up to `--jobs` side by side
//!    (steps that share a lane, such as two builds, never do), each check
//!    after the build of its image; after a failure the rest is skipped, unless
//!    `--keep-going`, which still skips the checks of an image whose build
//!    failed;
//! 5. `summary.rs`: the verdict, one check a step, also written as
//!    `target/xtask/ci/summary.json` and to GitHub's job summary.

mod cache;
mod plan;
mod runner;
mod schedule;
mod summary;

use std::collections::BTreeMap;

use anyhow::Context;
use xshell::Shell;

use crate::checks::{Check, Verdict};
use crate::docker::Docker;
use crate::flags;
use crate::git::Revision;
use crate::metadata::Metadata;
use crate::output;
use plan::{Action, Selection};
use runner::Runner;
use schedule::State;

impl flags::Ci {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let steps = plan::steps(&self);
        let skips = self.skips()?;
        let selection = plan::select(&steps, &self.only, &skips, |path| root.join(path).exists())?;
        let runner = Runner {
            log_dir: root.join("target/xtask/ci/logs"),
            verbose: self.verbose,
            step_timeout: self.step_timeout,
            xtask: std::env::current_exe().context("cannot find this program's path")?,
        };
        let revision = Revision::read(sh)?;
        let to_run = selection.iter().filter(|s| **s == Selection::Run).count();
        let cache_path = root.join("target/xtask/ci/cache.json");
        let mut store = cache::Store::load(&cache_path);
        let inputs = cache::Inputs::read(
            sh,
            &root,
            &runner.xtask,
            &metadata.table_path,
            &revision.commit,
        )?;
        // Only to tell whether a kept image is still there; without an
        // engine nothing of an image is taken from the store.
        let docker = Docker::connect(sh).ok();

        let jobs = self.jobs.map_or(schedule::DEFAULT_JOBS, usize::from);
        let reproducible = reproducible_builds(sh);
        let pipeline = Pipeline {
            steps: &steps,
            selection: &selection,
            runner: &runner,
            inputs: &inputs,
            docker: docker.as_ref(),
            metadata,
            revision: &revision,
            keep_going: self.keep_going,
            no_cache: self.no_cache,
            to_run,
            reproducible,
        };
        let started = std::time::Instant::now();
        let checks = pipeline.run(sh, jobs, &mut store, &cache_path)?;
        let wall = started.elapsed();
        let millis: Vec<u64> = checks.iter().map(|c| c.duration_ms.unwrap_or(0)).collect();
        let (path, path_ms) = schedule::critical_path(&steps, &millis);
        let timing = format!(
            "wall {}, the steps' own times add up to {}, {} at a time; critical path {} ({})\n",
            output::duration(wall),
            output::duration(std::time::Duration::from_millis(millis.iter().sum())),
            jobs,
            path.join(" → "),
            output::duration(std::time::Duration::from_millis(path_ms)),
        );
        let verdict = Verdict {
            headline: headline(&checks),
            checks,
            ..Verdict::new("ci", "the workspace")
        };
        let json = root.join("target/xtask/ci/summary.json");
        summary::write_json(&verdict, &json)?;
        summary::append_to_github_summary(&verdict)?;
        Ok(Verdict {
            text: format!(
                "{timing}summary: {}\n",
                json.strip_prefix(&root).unwrap_or(&json).display()
            ),
            ..verdict
        })
    }
}

/// One run of the pipeline: what is fixed for all its steps.
struct Pipeline<'a> {
    steps: &'a [plan::Step],
    selection: &'a [Selection],
    runner: &'a Runner,
    inputs: &'a cache::Inputs,
    docker: Option<&'a Docker>,
    metadata: &'a Metadata,
    revision: &'a Revision,
    keep_going: bool,
    no_cache: bool,
    to_run: usize,
    reproducible: schedule::ReproducibleBuilds,
}

/// Whether `reproducible`'s builds go to an engine of their own, and so run
/// beside the other builds; said on stderr when they do.
fn reproducible_builds(sh: &Shell) -> schedule::ReproducibleBuilds {
    match crate::docker::build::reproducible_engine_apart(sh) {
        Ok(Some(apart)) => {
            eprintln!(
                "ci: reproducible builds run on engine {} at the least CPU priority, beside the builds on engine {}",
                apart.version, apart.at_hand
            );
            schedule::ReproducibleBuilds::NicedEngine
        }
        // Where no engine can, the step says so itself.
        Ok(None) | Err(_) => schedule::ReproducibleBuilds::AtHand,
    }
}

impl Pipeline<'_> {
    /// Runs the steps, up to `jobs` at once as `schedule` allows; returns
    /// one check a step, in the plan's order. The store is saved after
    /// every step: a run cut short keeps what it proved.
    fn run(
        &self,
        sh: &Shell,
        jobs: usize,
        store: &mut cache::Store,
        cache_path: &std::path::Path,
    ) -> anyhow::Result<Vec<Check>> {
        let steps = self.steps;
        let mut states = vec![State::Waiting; steps.len()];
        let mut checks: Vec<Option<Check>> = vec![None; steps.len()];
        let mut keys: Vec<Option<String>> = vec![None; steps.len()];
        let mut images: BTreeMap<&str, String> = BTreeMap::new();
        let mut failed: Vec<&str> = Vec::new();
        let mut number = 0;
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, runner::Outcome)>();
        std::thread::scope(|scope| -> anyhow::Result<()> {
            loop {
                while let Some(i) = schedule::next(steps, &states, jobs, self.reproducible) {
                    let step = &steps[i];
                    if let Some(reason) =
                        not_run(step, &self.selection[i], &failed, self.keep_going)
                    {
                        checks[i] = Some(Check::skipped(step.name, step.proves, reason));
                        states[i] = State::Done;
                        continue;
                    }
                    number += 1;
                    let position = format!("[{number}/{}]", self.to_run);
                    let image = match &step.action {
                        Action::Xtask {
                            image_of: Some(build),
                            ..
                        } => Some(image_to_check(build, &images, self.metadata, self.revision)),
                        _ => None,
                    };
                    let key = key_of(sh, self.docker, self.inputs, step, image.as_deref());
                    let kept = key
                        .as_deref()
                        .filter(|_| !self.no_cache)
                        .and_then(|key| store.hit(step.name, key))
                        .filter(|entry| still_there(sh, self.docker, entry));
                    if let Some(entry) = kept {
                        eprintln!("ci: {position} {} cached (from {})", step.name, entry.at);
                        if let Some(id) = &entry.image_id {
                            images.insert(step.name, id.clone());
                        }
                        checks[i] = Some(Check::cached(
                            step.name,
                            step.proves,
                            &entry.at,
                            &entry.measured,
                        ));
                        states[i] = State::Done;
                        continue;
                    }
                    keys[i] = key;
                    states[i] = State::Running;
                    let done = done_tx.clone();
                    let runner = self.runner;
                    scope.spawn(move || {
                        let outcome = runner.run(step, image.as_deref(), &position);
                        let _ = done.send((i, outcome));
                    });
                }
                if !states.contains(&State::Running) {
                    // Nothing runs and nothing may start: every step is done.
                    anyhow::ensure!(
                        !states.contains(&State::Waiting),
                        "ci's schedule stalled with steps still waiting (a step waits for a build that is not in the plan)"
                    );
                    return Ok(());
                }
                let (i, outcome) = done_rx
                    .recv()
                    .context("a step's thread ended without a result")?;
                let step = &steps[i];
                states[i] = State::Done;
                if let Some(id) = &outcome.image_id {
                    images.insert(step.name, id.clone());
                }
                if outcome.check.failed() {
                    failed.push(step.name);
                    store.forget(step.name);
                } else if let Some(key) = keys[i].take() {
                    store.keep(
                        step.name,
                        cache::Entry {
                            key,
                            at: crate::git::now_rfc3339_utc(),
                            measured: outcome.check.measured.clone(),
                            image_id: outcome.image_id.clone(),
                        },
                    );
                }
                store.save(cache_path)?;
                checks[i] = Some(outcome.check);
            }
        })?;
        Ok(checks.into_iter().flatten().collect())
    }
}

impl flags::Ci {
    /// `--skip`'s steps of ci's own, with their reasons; a scan step's is
    /// checked here, so a typo fails before the first step runs.
    fn skips(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut skips = Vec::new();
        for text in &self.skip {
            match text.strip_prefix(flags::SCAN_STEP_PREFIX) {
                Some(scan_step) => {
                    let (name, _) = flags::skip(scan_step).map_err(anyhow::Error::msg)?;
                    crate::scan::Step::named(&name)?;
                }
                None => skips.push(flags::skip(text).map_err(anyhow::Error::msg)?),
            }
        }
        Ok(skips)
    }
}

/// The step's cache key. A check of an image is keyed on the image's id;
/// when the id cannot be read, on nothing that could be trusted: `None`,
/// and the step runs.
fn key_of(
    sh: &Shell,
    docker: Option<&Docker>,
    inputs: &cache::Inputs,
    step: &plan::Step,
    image: Option<&str>,
) -> Option<String> {
    match image {
        Some(image) => {
            let id = docker?.inspect_image(sh, image).ok()?.id;
            Some(inputs.key(step, Some(&id)))
        }
        None => Some(inputs.key(step, None)),
    }
}

/// Whether what a kept verdict needs is still there: a build's image, for
/// its checks to run on.
fn still_there(sh: &Shell, docker: Option<&Docker>, entry: &cache::Entry) -> bool {
    entry
        .image_id
        .as_deref()
        .is_none_or(|id| docker.is_some_and(|docker| docker.image_exists(sh, id).unwrap_or(false)))
}

/// Why a step does not run, or `None` when it does: not selected; after an
/// earlier failure, unless `--keep-going`; and, even then, a check of an
/// image whose build failed.
fn not_run(
    step: &plan::Step,
    selected: &Selection,
    failed: &[&str],
    keep_going: bool,
) -> Option<String> {
    if let Selection::Skip(reason) = selected {
        return Some(reason.clone());
    }
    if let Action::Xtask {
        image_of: Some(build),
        ..
    } = &step.action
        && failed.contains(build)
    {
        return Some(format!("not run: {build}, which builds its image, failed"));
    }
    match failed.first() {
        Some(earlier) if !keep_going => Some(format!(
            "not run: {earlier} failed (--keep-going runs the rest)"
        )),
        _ => None,
    }
}

/// The image a check runs on: the one its build step built in this run,
/// else the build's default tag, as the last `cargo xtask image` left it.
fn image_to_check(
    build: &str,
    images: &BTreeMap<&str, String>,
    metadata: &Metadata,
    revision: &Revision,
) -> String {
    if let Some(id) = images.get(build) {
        return id.clone();
    }
    // A build step is named `image` plus its tags' suffix.
    let suffix = build.strip_prefix("image").unwrap_or_default();
    metadata
        .default_tags(&revision.describe(&revision.short), suffix)
        .swap_remove(0)
}

fn headline(checks: &[Check]) -> String {
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    format!(
        "{} passed, {} cached, {} failed, {} skipped",
        count(crate::checks::Status::Pass),
        count(crate::checks::Status::Cached),
        count(crate::checks::Status::Fail),
        count(crate::checks::Status::Skipped)
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    use super::plan::xtask_step as step;

    /// A failed build's checks are skipped with a reason, even with
    /// `--keep-going`, which runs everything else.
    #[test]
    fn a_failed_steps_dependents_are_skipped_with_a_reason() {
        let check = step("size-check", Some("image"));
        let other = step("size-check-optimized", Some("image-optimized"));
        let source = step("deny", None);
        let failed = ["image"];
        for keep_going in [false, true] {
            assert_eq!(
                not_run(&check, &Selection::Run, &failed, keep_going).as_deref(),
                Some("not run: image, which builds its image, failed")
            );
        }
        assert_eq!(not_run(&other, &Selection::Run, &failed, true), None);
        assert_eq!(not_run(&source, &Selection::Run, &failed, true), None);
        assert_eq!(
            not_run(&source, &Selection::Run, &failed, false).as_deref(),
            Some("not run: image failed (--keep-going runs the rest)")
        );
        assert_eq!(not_run(&check, &Selection::Run, &[], false), None);
    }

    /// A cached verdict shows as cached, with its time, in the table, the
    /// JSON and the headline: never as a fresh pass.
    #[test]
    fn a_cached_verdict_is_never_shown_as_a_fresh_pass() {
        let cached = Check::cached("fmt", "clean", "2026-12-04T03:00:00Z", "clean");
        assert_eq!(cached.status, crate::checks::Status::Cached);
        assert!(!cached.failed());
        assert_eq!(cached.measured, "cached (from 2026-12-04T03:00:00Z): clean");
        let json = serde_json::to_value(&cached).unwrap();
        assert_eq!(json["status"], "cached");
        let checks = vec![cached, Check::judge("clippy", true, "clean", "clean")];
        assert_eq!(headline(&checks), "1 passed, 1 cached, 0 failed, 0 skipped");
        let verdict = Verdict {
            checks,
            ..Verdict::new("ci", "the workspace")
        };
        let rendered = verdict.render();
        let fmt_row = rendered.lines().find(|l| l.starts_with("fmt ")).unwrap();
        assert!(fmt_row.trim_end().ends_with("cached"), "{fmt_row}");
        assert!(!fmt_row.contains("pass"), "{fmt_row}");
        assert!(verdict.passed());
        let markdown = summary::markdown(&verdict);
        assert!(markdown.contains("cached"), "{markdown}");
    }

    /// This repository's workflow, and the one `init` writes into an
    /// adopter's: both are held to the same rules.
    fn workflow_paths() -> [std::path::PathBuf; 2] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        [
            dir.join("../.github/workflows/ci.yml"),
            dir.join("src/init/workflow.yml"),
        ]
    }

    /// This repository's own.
    fn workflow() -> String {
        workflows().swap_remove(0)
    }

    fn workflows() -> Vec<String> {
        workflow_paths()
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap())
            .collect()
    }

    #[test]
    fn the_workflows_run_the_pipeline_through_cargo_xtask() {
        for text in workflows() {
            runs_through_cargo_xtask(&text);
        }
    }

    fn runs_through_cargo_xtask(text: &str) {
        let runs: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("run: "))
            .collect();
        assert!(
            runs.iter().any(|run| run.starts_with("cargo xtask ci")),
            "{runs:?}"
        );
        for run in runs {
            let setup =
                run.starts_with("rustup toolchain install") || run.starts_with("sudo apt-get");
            assert!(
                run.starts_with("cargo xtask") || setup,
                "a step does by hand what `cargo xtask` should: {run}"
            );
        }
    }

    #[test]
    fn third_party_actions_are_pinned_by_commit() {
        for line in workflows().iter().flat_map(|text| text.lines()) {
            let Some(action) = line.trim().trim_start_matches("- ").strip_prefix("uses: ") else {
                continue;
            };
            let reference = action.split_whitespace().next().unwrap_or_default();
            let (_, commit) = reference.split_once('@').unwrap_or_default();
            assert!(
                commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                "not pinned by commit: {reference}"
            );
        }
    }

    #[test]
    fn the_workflows_may_only_read_the_repository_by_default() {
        for text in workflows() {
            only_reads_by_default(&text);
        }
    }

    fn only_reads_by_default(text: &str) {
        let top: String = text
            .lines()
            .skip_while(|line| !line.starts_with("permissions:"))
            .take_while(|line| !line.starts_with("concurrency:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(top.trim(), "permissions:\n  contents: read");
    }

    /// Publishing writes packages and asks for an OIDC token; only the job
    /// that publishes may, and only for a push to main.
    #[test]
    fn only_the_publish_job_may_push_and_sign_and_only_from_main() {
        let text = workflow();
        let publish = text.split("\n  publish:\n").nth(1).expect("a publish job");
        let ci = text.split("\n  publish:\n").next().unwrap_or_default();
        for permission in ["packages: write", "id-token: write", "attestations: write"] {
            assert!(publish.contains(permission), "{permission}");
            assert!(!ci.contains(permission), "{permission} outside publish");
        }
        assert!(
            publish.contains("if: github.event_name == 'push' && github.ref == 'refs/heads/main'")
        );
        assert!(publish.contains("needs: ci"));
        assert!(publish.contains("cargo xtask publish"));
        assert!(publish.contains("--keyless"));
    }

    /// `security-events: write` goes only to a job that uploads SARIF.
    #[test]
    fn only_the_job_that_uploads_sarif_may_write_security_events() {
        for text in workflows() {
            sarif_alone_writes_security_events(&text);
        }
    }

    fn sarif_alone_writes_security_events(text: &str) {
        // Each job starts at a key indented by two spaces under `jobs:`.
        let mut jobs: Vec<String> = Vec::new();
        for line in text.lines().skip_while(|line| *line != "jobs:").skip(1) {
            let starts_job =
                line.starts_with("  ") && !line.starts_with("   ") && line.ends_with(':');
            if starts_job || jobs.is_empty() {
                jobs.push(String::new());
            }
            if let Some(job) = jobs.last_mut() {
                job.push_str(line);
                job.push('\n');
            }
        }
        let mut uploads = 0;
        for job in &jobs {
            let writes = job.contains("security-events: write");
            let uploads_sarif = job.contains("github/codeql-action/upload-sarif@");
            assert_eq!(writes, uploads_sarif, "{job}");
            uploads += usize::from(uploads_sarif);
        }
        assert_eq!(uploads, 1);
    }
}

//! Which step starts next, when several may run side by side: pure, so the
//! order is tested without running anything.
//!
//! A step waits for the build whose image it checks, and never runs beside
//! a step that shares one of its lanes:
//! - `Build`: compiling or building images, which takes every core;
//! - `Proof`: containers run and watched, whose timings a second proof
//!   would disturb;
//! - `Scanners`: `scan` and `sbom`, which share trivy's cache and their
//!   report folders under target/xtask/;
//! - `SizeCheck`: the size budgets' own folder.
//!
//! - `NicedEngine`: builds on the engine `setup --reproducible-engine`
//!   started, when the one at hand cannot build reproducibly. That engine
//!   runs in an idle cgroup: its builds take only the CPU the other lanes leave
//!   (a proof's waits, a link on one core, an image export), so they run
//!   beside a `Build` without slowing it. On an engine that can, they are
//!   `Build`s like the others.
//!
//! The adoption proofs run the whole toolchain in this workspace, so they
//! take every lane of the engine at hand. `--jobs 1` is the plan's order,
//! one step after another.

use super::plan::{Action, Step};

/// What a running step holds that no other running step may share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Build,
    Proof,
    Scanners,
    SizeCheck,
    NicedEngine,
}

/// The lanes of the engine at hand.
const ALL_LANES: &[Lane] = &[Lane::Build, Lane::Proof, Lane::Scanners, Lane::SizeCheck];

/// Where `reproducible`'s builds, and `publish-test`'s two-platform one, run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReproducibleBuilds {
    /// On the engine at hand, beside every other build.
    AtHand,
    /// On the reproducible engine, in its idle cgroup.
    NicedEngine,
}

/// The lanes a step holds while it runs.
pub fn lanes(step: &Step, reproducible: ReproducibleBuilds) -> &'static [Lane] {
    let apart = reproducible == ReproducibleBuilds::NicedEngine;
    match &step.action {
        Action::Cargo(args) if args.first().is_some_and(|a| a == "fmt") => &[],
        Action::Cargo(_) => &[Lane::Build],
        Action::Xtask { args, .. } => match args.first().map(String::as_str) {
            // It only builds, into archives, and compares them.
            Some("reproducible") if apart => &[Lane::NicedEngine],
            // diff-test builds two images in a clone, and reads them there.
            Some("image" | "reproducible" | "diff-test") => &[Lane::Build],
            Some("shutdown-test" | "compose-test" | "rollout-test") => &[Lane::Proof],
            Some("scan" | "sbom") => &[Lane::Scanners],
            Some("size-check") => &[Lane::SizeCheck],
            // It pushes the image and attests an SBOM, and builds it again
            // for two platforms: on the reproducible engine when apart.
            Some("publish-test") if apart => &[Lane::Scanners, Lane::NicedEngine],
            Some("publish-test") => &[Lane::Build, Lane::Scanners],
            // In a repository of its own: a build, and its proofs.
            Some("init-test") => &[Lane::Build, Lane::Proof],
            _ => ALL_LANES,
        },
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Waiting,
    Running,
    Done,
}

/// The build step a step waits for: the one whose image it checks.
pub fn needs(step: &Step) -> Option<&'static str> {
    match &step.action {
        Action::Xtask { image_of, .. } => *image_of,
        Action::Cargo(_) => None,
    }
}

/// The first waiting step, in the plan's order, that may start now: what it
/// needs is done, fewer than `jobs` steps run, and none of them shares a
/// lane with it.
pub fn next(
    steps: &[Step],
    states: &[State],
    jobs: usize,
    reproducible: ReproducibleBuilds,
) -> Option<usize> {
    let running: Vec<&Step> = steps
        .iter()
        .zip(states)
        .filter(|(_, state)| **state == State::Running)
        .map(|(step, _)| step)
        .collect();
    if running.len() >= jobs.max(1) {
        return None;
    }
    let held: Vec<Lane> = running
        .iter()
        .flat_map(|s| lanes(s, reproducible))
        .copied()
        .collect();
    let state_of = |name: &str| steps.iter().position(|s| s.name == name).map(|i| states[i]);
    steps.iter().zip(states).position(|(step, state)| {
        *state == State::Waiting
            && needs(step).is_none_or(|build| state_of(build).is_none_or(|s| s == State::Done))
            && !lanes(step, reproducible)
                .iter()
                .any(|lane| held.contains(lane))
    })
}

/// The longest chain of steps that waited on each other, from each step's
/// time: the least the pipeline could take however many steps ran at once.
/// Returns the chain's names, first to last, and its total milliseconds.
pub fn critical_path(steps: &[Step], millis: &[u64]) -> (Vec<&'static str>, u64) {
    let index = |name: &str| steps.iter().position(|s| s.name == name);
    // Steps only wait on earlier ones, so one pass in order is enough.
    let mut total = vec![0_u64; steps.len()];
    let mut before: Vec<Option<usize>> = vec![None; steps.len()];
    for (i, step) in steps.iter().enumerate() {
        let dep = needs(step).and_then(index).filter(|d| *d < i);
        before[i] = dep;
        total[i] = millis[i] + dep.map_or(0, |d| total[d]);
    }
    let Some((last, &longest)) = total.iter().enumerate().max_by_key(|(_, t)| **t) else {
        return (Vec::new(), 0);
    };
    let mut chain = vec![steps[last].name];
    let mut at = before[last];
    while let Some(i) = at {
        chain.push(steps[i].name);
        at = before[i];
    }
    chain.reverse();
    (chain, longest)
}

/// The default `--jobs`: a build, a proof, the scanners and a build on the
/// niced engine side by side, on any machine (a build already takes every
/// core, and the niced one only what is left).
pub const DEFAULT_JOBS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// A step running `cargo xtask <command>`, named `name`.
    fn step(name: &'static str, image_of: Option<&'static str>) -> Step {
        let command = [
            "image",
            "size-check",
            "sbom",
            "scan",
            "shutdown-test",
            "adopt-test",
            "reproducible",
            "publish-test",
        ]
        .into_iter()
        .find(|command| name.starts_with(command))
        .unwrap();
        Step {
            name,
            proves: "",
            action: Action::Xtask {
                args: vec![command.to_owned()],
                image_of,
            },
        }
    }

    fn cargo(name: &'static str, args: &[&str]) -> Step {
        Step {
            name,
            proves: "",
            action: Action::Cargo(args.iter().map(|a| (*a).to_owned()).collect()),
        }
    }

    fn pipeline() -> Vec<Step> {
        vec![
            cargo("fmt", &["fmt"]),
            cargo("clippy", &["clippy"]),
            step("image", None),
            step("size-check", Some("image")),
            step("sbom", Some("image")),
            step("scan", Some("image")),
            step("shutdown-test", Some("image")),
            step("image-optimized", None),
            step("shutdown-test-optimized", Some("image-optimized")),
            step("adopt-test", None),
        ]
    }

    fn names(steps: &[Step], started: &[usize]) -> Vec<&'static str> {
        started.iter().map(|i| steps[*i].name).collect()
    }

    /// Starts steps until none may start; returns them in order.
    fn start_all(steps: &[Step], states: &mut [State], jobs: usize) -> Vec<usize> {
        start_all_with(steps, states, jobs, ReproducibleBuilds::AtHand)
    }

    fn start_all_with(
        steps: &[Step],
        states: &mut [State],
        jobs: usize,
        reproducible: ReproducibleBuilds,
    ) -> Vec<usize> {
        let mut started = Vec::new();
        while let Some(i) = next(steps, states, jobs, reproducible) {
            states[i] = State::Running;
            started.push(i);
        }
        started
    }

    #[test]
    fn one_job_is_the_plans_order() {
        let steps = pipeline();
        let mut states = vec![State::Waiting; steps.len()];
        let mut order = Vec::new();
        while let Some(i) = next(&steps, &states, 1, ReproducibleBuilds::NicedEngine) {
            assert_eq!(
                next(
                    &steps,
                    &{
                        let mut s = states.clone();
                        s[i] = State::Running;
                        s
                    },
                    1,
                    ReproducibleBuilds::NicedEngine
                ),
                None,
                "one job runs one step"
            );
            states[i] = State::Done;
            order.push(i);
        }
        assert_eq!(order, (0..steps.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_check_waits_for_its_build_and_steps_sharing_a_lane_never_overlap() {
        let steps = pipeline();
        let mut states = vec![State::Waiting; steps.len()];
        let done = |states: &mut Vec<State>, name: &str| {
            let i = steps.iter().position(|s| s.name == name).unwrap();
            states[i] = State::Done;
        };
        // fmt holds no lane: it runs beside clippy; the image waits for clippy.
        assert_eq!(
            names(&steps, &start_all(&steps, &mut states, 9)),
            ["fmt", "clippy"]
        );
        done(&mut states, "fmt");
        done(&mut states, "clippy");
        assert_eq!(names(&steps, &start_all(&steps, &mut states, 9)), ["image"]);
        done(&mut states, "image");
        // Its checks start beside the next build; one scanner at a time.
        assert_eq!(
            names(&steps, &start_all(&steps, &mut states, 9)),
            ["size-check", "sbom", "shutdown-test", "image-optimized"]
        );
        // --jobs bounds how many, whatever the lanes.
        let mut capped = vec![State::Waiting; steps.len()];
        for name in ["fmt", "clippy", "image"] {
            done(&mut capped, name);
        }
        assert_eq!(
            names(&steps, &start_all(&steps, &mut capped, 2)),
            ["size-check", "sbom"]
        );
        done(&mut states, "sbom");
        assert_eq!(names(&steps, &start_all(&steps, &mut states, 9)), ["scan"]);
        for name in ["image-optimized", "size-check", "scan", "shutdown-test"] {
            done(&mut states, name);
        }
        assert_eq!(
            names(&steps, &start_all(&steps, &mut states, 9)),
            ["shutdown-test-optimized"],
            "the adoption proof waits until it can run alone"
        );
        done(&mut states, "shutdown-test-optimized");
        assert_eq!(
            names(&steps, &start_all(&steps, &mut states, 9)),
            ["adopt-test"]
        );
    }

    #[test]
    fn builds_on_the_niced_engine_run_beside_the_others_but_not_beside_each_other() {
        let steps = vec![
            cargo("clippy", &["clippy"]),
            step("image", None),
            step("reproducible", None),
            step("reproducible-service", None),
            step("shutdown-test", Some("image")),
            step("publish-test", Some("image")),
            step("adopt-test", None),
        ];
        let done = |states: &mut Vec<State>, name: &str| {
            let i = steps.iter().position(|s| s.name == name).unwrap();
            states[i] = State::Done;
        };

        let mut states = vec![State::Waiting; steps.len()];
        assert_eq!(
            names(&steps, &start_all(&steps, &mut states, 9)),
            ["clippy"],
            "on the engine at hand, a build like any other"
        );

        let niced = ReproducibleBuilds::NicedEngine;
        let mut states = vec![State::Waiting; steps.len()];
        assert_eq!(
            names(&steps, &start_all_with(&steps, &mut states, 9, niced)),
            ["clippy", "reproducible"]
        );
        done(&mut states, "clippy");
        assert_eq!(
            names(&steps, &start_all_with(&steps, &mut states, 9, niced)),
            ["image"]
        );
        done(&mut states, "image");
        assert_eq!(
            names(&steps, &start_all_with(&steps, &mut states, 9, niced)),
            ["shutdown-test"],
            "publish-test builds on the niced engine too: it waits for reproducible"
        );
        done(&mut states, "shutdown-test");
        done(&mut states, "reproducible");
        assert_eq!(
            names(&steps, &start_all_with(&steps, &mut states, 9, niced)),
            ["reproducible-service", "adopt-test"],
            "the adoption proof runs beside a build on the niced engine; publish-test waits for both"
        );
        done(&mut states, "reproducible-service");
        done(&mut states, "adopt-test");
        assert_eq!(
            names(&steps, &start_all_with(&steps, &mut states, 9, niced)),
            ["publish-test"]
        );

        let mut one_job = vec![State::Waiting; steps.len()];
        assert_eq!(
            names(&steps, &start_all_with(&steps, &mut one_job, 1, niced)),
            ["clippy"],
            "--jobs counts the niced engine's builds too"
        );
    }

    #[test]
    fn the_critical_path_follows_what_waited() {
        let steps = pipeline();
        let millis = [
            1_000, 60_000, 90_000, 2_000, 9_000, 20_000, 40_000, 100_000, 45_000, 30_000,
        ];
        assert_eq!(
            critical_path(&steps, &millis),
            (vec!["image-optimized", "shutdown-test-optimized"], 145_000)
        );
        assert_eq!(critical_path(&[], &[]), (vec![], 0));
    }

    #[test]
    fn every_step_of_the_pipeline_holds_the_lanes_it_shares() {
        for step in crate::ci::plan::steps(&crate::ci::plan::tests::options(true)) {
            let name = step.name;
            let expected: &[Lane] = if name == "fmt" {
                &[]
            } else if name.starts_with("adopt-test") {
                ALL_LANES
            } else if name == "publish-test" {
                &[Lane::Build, Lane::Scanners]
            } else if name == "init-test" {
                &[Lane::Build, Lane::Proof]
            } else if ["sbom", "scan", "deny", "hadolint"]
                .iter()
                .any(|s| name.starts_with(s))
            {
                &[Lane::Scanners]
            } else if name.starts_with("size-check") {
                &[Lane::SizeCheck]
            } else if ["shutdown-test", "compose-test", "rollout-test"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                &[Lane::Proof]
            } else {
                &[Lane::Build]
            };
            assert_eq!(lanes(&step, ReproducibleBuilds::AtHand), expected, "{name}");
            let apart = lanes(&step, ReproducibleBuilds::NicedEngine);
            if name.starts_with("reproducible") {
                assert_eq!(apart, [Lane::NicedEngine], "{name}");
            } else if name == "publish-test" {
                assert_eq!(apart, [Lane::Scanners, Lane::NicedEngine]);
            } else {
                assert_eq!(apart, expected, "{name}");
            }
        }
    }
}

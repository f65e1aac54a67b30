//! `cargo xtask`'s commands: a service's container image built, measured,
//! scanned, signed and proved. A repository's own `xtask` crate is a thin
//! `main` that calls [`main`] with its directory.
//!
//! Each command is a module with one `run` that returns a [`checks::Verdict`];
//! `main` prints it and turns a failed check into the exit status.
//!
//! ```text
//! lib.rs             the command line's dispatch
//! flags.rs           the command line: every command and option
//! metadata.rs        [workspace.metadata.xtask]: what is built, budgets, scan policy
//! checks.rs          Check and Verdict: the one pass/fail type
//! output.rs          stdout, tables, human units
//! tools.rs           external programs: found, versioned, how to install
//! process.rs         running a program, with one-line errors
//! wait.rs            one bounded polling loop for every wait
//! readiness.rs       a service container ready, or why not: exited, loopback only
//! backing.rs         the services a service needs to start (PostgreSQL, Redis),
//!                    run beside it on a network of their own
//!   backing/           postgres, redis (their images, from Debian packages)
//! git.rs             the commit being built
//! files.rs           files written while other builds read them: whole or not at all
//! cargo_metadata.rs  `cargo metadata`'s answer: packages, targets, licenses
//! testing.rs         unit tests only: the scanners' offline data, one lock
//!                    for trivy, scratch directories
//!   testing/shared_data.rs  where that data is (xtask/tests/ include it too)
//! build_context.rs   what an image build is made of: the Dockerfile (built
//!                    in, or the repository's own, held to its contract), the
//!                    context, the base images (image, reproducible, bench)
//!   build_context/bundled.rs  the probe's and rootfs's sources, written into it
//! stand_ins.rs       what `--offline` builds on, made from Debian packages
//!                    (and `stand-ins`, which makes and names them):
//!                    builder, runtime, vendored crates, service images
//!   stand_ins/usage.rs  when each was last used, for `prune`
//! last_build.rs      target/xtask/image.json, and choosing the image to work on
//! hadolint.rs        the Dockerfile linter, run and judged
//! trivy.rs           the scanner: its caches, its database, one-line failures
//! ignores.rs         trivy's ignore file, read: every entry says why
//! vex.rs             the ignores as an OpenVEX document (scan, publish)
//! provenance.rs      SLSA v1 provenance of a build (image, reproducible,
//!                    publish)
//! cosign.rs          the signer: its command lines and answers, a signature judged
//! docker/            every docker invocation
//!   mod.rs             the client, image inspect, import, files
//!   build.rs           BuildKit builds
//!   container.rs       test containers: scope, run spec, cleanup
//!   hardening.rs       the production run settings: arguments, check, report
//!   save.rs            `docker save` read in one pass: layers and files
//!   oci_layout.rs      an OCI image layout archive: index, manifests, blobs
//!   tar_stream.rs      tar entries (the tar crate's) as our headers
//!   history.rs         `docker history`, matched to layers
//! traffic.rs         client threads on loopback, bounded in time and count:
//!                    the drain's short stream, the rollout's load, server-load
//! http.rs            a blocking HTTP/1.1 client for loopback, which every
//!                    proof that talks to a container uses
//! init.rs            `init`: adopt an existing repository (a thin xtask,
//!                    the alias, the table, a workflow, deny.toml)
//!   init/              deny (deny.toml from the dependencies), the table's
//!                      and the workflow's templates
//! init_test.rs       `init-test`: a single-crate repository made with
//!                    `git init`, adopted, proved from inside
//! setup.rs           `setup`: install what is missing
//!   setup/apt.rs       packages from another Debian suite
//!   setup/engine.rs    the reproducible engine (Debian 13's, beside the host's)
//! image.rs           `image`: lint, build, conformance
//!   image/stop_signal.rs  the stop check: run, ready, `docker stop`
//!   image/conformance.rs  what the built image must be
//!   image/reproducible.rs, layout_diff.rs  `reproducible`: two
//!                      builds, their digests, what differs
//! prune.rs           `prune`: the stand-ins, least recently used first, to a budget
//! size_check.rs      `size-check`: size and layer budgets
//! shutdown_test.rs   `shutdown-test`: the hardened lifecycle
//!   shutdown_test/     lifecycle, drain, deadline, health_check,
//!                      silent_server, summary, traffic (the drain's
//!                      slow uploads, short writes and probes)
//! compose_test.rs    `compose-test`: deploy/compose.yaml up, offline
//!   compose_test/      project (docker-compose)
//! rollout_test.rs    `rollout-test`: a rolling restart behind HAProxy
//!   rollout_test/      haproxy (the image, its settings, its statistics),
//!                      traffic, summary
//! ci.rs              `ci`: every step, side by side where they can, one summary
//!   ci/                plan (the steps), schedule (which starts next),
//!                      runner (a step as a process), cache (verdicts kept
//!                      by their inputs), summary
//! sbom.rs            `sbom`: SPDX and CycloneDX, made offline
//!   sbom/              debian (dpkg's database), crates (cargo tree),
//!                      purl, spdx, cyclonedx, validate, cross_check,
//!                      audit (the crate list a binary carries)
//! scan.rs            `scan`: trivy, cargo-deny, hadolint, gated, with SARIF
//!   scan/              policy, trivy_report, deny, findings,
//!                      sarif, report (the verdict), kept (the reports
//!                      an earlier scan kept, read back for diff)
//! source_change.rs   a change to a copy of the sources: one dependency
//!                    moved one patch release, a line added (bench, diff-test)
//! diff.rs            `diff`: what a change does to the image, scout-style
//!   diff/              snapshot (one image: packages, crates, layers,
//!                      findings; `--write-report`), compare (the set
//!                      arithmetic), render (table, Markdown)
//! diff_test.rs       `diff-test`: diff proved on two builds a commit apart
//! bench.rs           `bench`: the image against the usual alternatives
//!   bench/             variants (and their Dockerfiles), measure, report
//! adopt_test.rs      `adopt-test`: the example service, adopted by its table
//! publish.rs         `publish`: push, sign, attest the SBOM and VEX, verify
//!   publish/           multi_platform (`--platform A,B`: one index)
//! publish_test.rs    `publish-test`: publish to a loopback registry, proved
//!   publish_test/      registry (Debian's docker-registry, throwaway)
//! server_load.rs     `server-load`: the release server under load on loopback
//!   server_load/       traffic (the clients), postgres (a throwaway cluster)
//! ```

mod adopt_test;
mod backing;
mod bench;
mod build_context;
mod cargo_metadata;
mod checks;
mod ci;
mod compose_test;
mod cosign;
mod diff;
mod diff_test;
mod docker;
mod files;
mod flags;
mod git;
mod hadolint;
mod http;
mod ignores;
mod image;
mod init;
mod init_test;
mod last_build;
mod metadata;
mod output;
mod process;
mod provenance;
mod prune;
mod publish;
mod publish_test;
mod readiness;
mod rollout_test;
mod sbom;
mod scan;
mod server_load;
mod setup;
mod shutdown_test;
mod size_check;
mod source_change;
mod stand_ins;
#[cfg(test)]
mod testing;
mod tools;
mod traffic;
mod trivy;
mod vex;
mod wait;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use xshell::Shell;

use metadata::Metadata;

/// Runs `cargo xtask` for the repository above `xtask_dir`, the calling
/// crate's `CARGO_MANIFEST_DIR`.
#[must_use]
pub fn main(xtask_dir: &str) -> ExitCode {
    match run(&project_root(Path::new(xtask_dir))) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command and prints its verdict; `Ok(false)` when a check failed.
fn run(root: &Path) -> anyhow::Result<bool> {
    let cli = flags::Cli::parse();
    let sh = Shell::new().context("cannot create a shell")?;
    sh.change_dir(root);
    // Loaded per command, so that `setup` works with a broken table.
    let metadata = || match &cli.manifest {
        Some(table) => Metadata::load_from(root, &root.join(table)),
        None => Metadata::load(root),
    };
    let verdict = match cli.command {
        flags::Command::Setup(setup) => setup.run(&sh)?,
        flags::Command::Init(init) => init.run(&sh)?,
        flags::Command::InitTest(args) => args.run(&sh)?,
        flags::Command::StandIns(args) => args.run(&sh, &metadata()?)?,
        flags::Command::Prune(args) => args.run(&sh)?,
        flags::Command::Image(image) => image.run(&sh, &metadata()?)?,
        flags::Command::Reproducible(args) => args.image().run(&sh, &metadata()?)?,
        flags::Command::SizeCheck(args) => args.run(&sh, &metadata()?)?,
        flags::Command::ShutdownTest(args) => args.run(&sh, &metadata()?)?,
        flags::Command::ComposeTest(args) => args.run(&sh, &metadata()?)?,
        flags::Command::RolloutTest(args) => args.run(&sh, &metadata()?)?,
        flags::Command::Ci(args) => args.run(&sh, &metadata()?)?,
        flags::Command::Bench(args) => args.run(&sh, &metadata()?)?,
        flags::Command::Sbom(args) => args.run(&sh, &metadata()?)?,
        flags::Command::Scan(args) => args.run(&sh, &metadata()?)?,
        flags::Command::Diff(args) => args.run(&sh, &metadata()?)?,
        flags::Command::DiffTest(args) => args.run(&sh, &metadata()?)?,
        flags::Command::ServerLoad(args) => args.run(&sh, &metadata()?)?,
        // It reads the example's table, not the workspace's.
        flags::Command::AdoptTest(args) => args.run(&sh)?,
        flags::Command::Publish(args) => args.run(&sh, &metadata()?)?,
        flags::Command::PublishTest(args) => args.run(&sh, &metadata()?)?,
    };
    if cli.json {
        output::print_json(&verdict.to_json())?;
    } else {
        output::print(&verdict.render())?;
    }
    match verdict.failure_line() {
        Some(line) => {
            eprintln!("error: {line}");
            Ok(false)
        }
        None => Ok(true),
    }
}

/// The repository's root: the nearest directory above the xtask crate that
/// holds a `Cargo.toml` (a workspace, or a single crate).
fn project_root(xtask_dir: &Path) -> PathBuf {
    xtask_dir
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("Cargo.toml").is_file())
        .unwrap_or(xtask_dir)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The map at the top of this file names every module: a top-level one
    /// by its file, one in a folder by its path or by its name under that
    /// folder's entry.
    #[test]
    fn the_module_map_names_every_module() {
        let source =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
                .unwrap();
        let map: String = source
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let words: Vec<&str> = map
            .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == ':')
            .filter(|w| !w.is_empty())
            .collect();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut missing = Vec::new();
        for file in rust_files(&src) {
            let relative = file.strip_prefix(&src).unwrap();
            let name = relative.to_string_lossy().replace('\\', "/");
            if name == "lib.rs" {
                continue;
            }
            let stem = relative.file_stem().unwrap().to_string_lossy();
            let folder = relative
                .parent()
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let by_file = words.iter().any(|w| {
                Path::new(w).extension().is_some_and(|e| e == "rs")
                    && (name == *w || name.ends_with(&format!("/{w}")))
            });
            let last = folder.rsplit('/').next().unwrap_or_default();
            let folder_listed = !folder.is_empty()
                && words.iter().any(|w| {
                    *w == format!("{folder}/")
                        || *w == format!("{last}/")
                        || *w == format!("{folder}.rs")
                });
            let by_name = folder_listed && (stem == "mod" || words.iter().any(|w| *w == stem));
            let named = by_file || by_name;
            if !named {
                missing.push(name);
            }
        }
        assert!(
            missing.is_empty(),
            "the map at the top of lib.rs does not name: {missing:?}"
        );
    }

    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files.sort();
        files
    }
}

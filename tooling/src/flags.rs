//! The command line: one subcommand per module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Turns a service into a small, hardened, measured container image.
///
/// What is built (package, binary, image name, port, health paths, budgets)
/// comes from xtask.toml at the repository's root when there is one (as
/// `init` writes it), else from `[workspace.metadata.xtask]` in its
/// Cargo.toml.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about,
    long_about
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print the verdict as JSON on stdout (progress stays on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Read `[workspace.metadata.xtask]` from this TOML file instead: another
    /// service of the workspace, adopted without editing the table. The
    /// version still comes from the root Cargo.toml. `ci` passes it on through the environment variable.
    #[arg(long, global = true, env = "XTASK_MANIFEST", value_name = "FILE")]
    pub manifest: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report the tools this project needs, with versions, and install what is missing.
    Setup(Setup),
    /// Adopt an existing repository: write a thin xtask crate that depends
    /// on this tooling, the `cargo xtask` alias, the table (xtask.toml), a
    /// GitHub workflow and, when there is none, deny.toml.
    ///
    /// Nothing there is overwritten: a file already there is merged (the
    /// alias) or left alone with a message, and a second run changes
    /// nothing. The repository's Cargo.toml and Cargo.lock are not touched:
    /// the xtask is a workspace of its own.
    Init(Init),
    /// Build the container image with BuildKit.
    Image(Image),
    /// Build the image twice into OCI archives (target/xtask/reproducible/),
    /// first from the engine's cache of earlier builds, then with no cache
    /// at all (or, with `--rebuild service`, none for the stage that
    /// compiles the service), with `SOURCE_DATE_EPOCH` from the commit and
    /// layer times rewritten, and compare their digests; when they differ,
    /// name the layers and files that do. Loads no image.
    ///
    /// Needs an engine that can (26 or later with the containerd image
    /// store, or a docker-container builder); `setup --reproducible-engine`
    /// provides one.
    Reproducible(Reproducible),
    /// Measure the image against its size and layer budgets.
    SizeCheck(SizeCheck),
    /// Run the image hardened, drain it under load and prove nothing was lost.
    ShutdownTest(ShutdownTest),
    /// `docker compose up` of deploy/compose.yaml with PostgreSQL, offline,
    /// and the service proved through it.
    ComposeTest(ComposeTest),
    /// Restart two replicas one at a time behind HAProxy under load, with
    /// `SHUTDOWN_DELAY` set and then at 0, and count the failed requests.
    RolloutTest(RolloutTest),
    /// Run the whole pipeline in order, with one summary: format, clippy,
    /// tests, the images and their checks, the proofs.
    ///
    /// A step whose inputs (the files it reads, the toolchain, this program,
    /// the table; for a check of an image, the image) are those of an
    /// earlier pass is not run again: it shows as `cached (from <time>)`.
    /// `--no-cache` runs every step. Each step's output goes to
    /// target/xtask/ci/logs/<step>.log; the summary to
    /// target/xtask/ci/summary.json and, when set, to `$GITHUB_STEP_SUMMARY`.
    /// Exits 1 when any step failed.
    Ci(Ci),
    /// Measure this project's image against the usual alternatives (a naive
    /// multi-stage build, cargo-chef on Debian slim, with a target cache mount
    /// or sccache) and the host's own cargo build, all offline from the same
    /// sources: build and rebuild times, crates compiled, size, start and stop.
    ///
    /// Writes target/xtask/bench/report.md, report.json and chart.svg. A full
    /// run takes about 45 minutes on 2 cores: every variant is built cold.
    Bench(Bench),
    /// Write the image's SBOM as SPDX 2.3 and CycloneDX 1.6 JSON: its Debian
    /// packages and the crates compiled into the binary, checked against the
    /// crate list the binary carries and what trivy and syft read.
    ///
    /// Made here, offline, with no scanner; the same image and commit give
    /// byte-identical files (set `SOURCE_DATE_EPOCH` to choose the time).
    /// Written to target/xtask/sbom/<image>-<tag>.{spdx,cdx}.json.
    Sbom(Sbom),
    /// Scan the image and the workspace, and gate on the findings: trivy
    /// (image vulnerabilities and secrets, Dockerfile and deploy/
    /// misconfigurations, the binary's crates through its SBOM), cargo-deny
    /// and hadolint.
    ///
    /// The policy is `[workspace.metadata.xtask.scan]` (default: HIGH and
    /// CRITICAL with a fix gate; unfixed ones are shown). Ignores come from
    /// `.trivyignore.yaml`; each needs a `statement`, and an expired one stops
    /// ignoring. Reports and one SARIF log go to target/xtask/scan/. Steps:
    /// vuln, secret, config, crates, deny, hadolint.
    Scan(Scan),
    /// What a change does to the image, as `docker scout compare` shows it,
    /// with no account: Debian packages and crates added, removed or changed
    /// in version (from our own SBOM inventory), the size unpacked and on
    /// the wire in total and per layer, and the findings that appear or
    /// disappear (from the scan reports kept under target/xtask/scan/; a side
    /// with none is said to be unscanned).
    ///
    /// Each side is an image in the engine or a snapshot file that
    /// `--write-report` wrote: `cargo xtask diff --write-report base.json`
    /// where the base was built, then `cargo xtask diff base.json` after the
    /// change. It reports and does not judge: it fails only when a side
    /// cannot be read.
    Diff(Diff),
    /// Prove `diff` on two real builds a revision apart: in a clone of the
    /// commit, build the image, commit a one-line change to the service and
    /// one dependency moved one patch release, build again (from the
    /// engine's cache but for what changed), and check that `diff` shows the
    /// crate's change, nothing else, and the size change.
    DiffTest(DiffTest),
    /// Drive the release server on loopback with fixed traffic mixes, on
    /// SQLite and on a throwaway PostgreSQL cluster, and report requests per
    /// second, p50/p99 latency, non-2xx answers and peak resident memory.
    ServerLoad(ServerLoad),
    /// Adopt an example service through its manifest table alone: build its
    /// image on each runtime the table's `[adopt-test]` names, prove
    /// size-check, sbom, scan and shutdown-test (with its backing services)
    /// pass it, and that each broken variant the table lists fails where and
    /// why the table says.
    AdoptTest(AdoptTest),
    /// Prove `init` on a team's own repository: a single crate made with
    /// `git init` in a temporary directory, adopted with the tooling taken
    /// as `git = "file://…"` (a clone of this checkout's commit), then
    /// image, shutdown-test and sbom from inside it, a second init that
    /// changes nothing, and a tooling change taken with `cargo update`.
    InitTest(InitTest),
    /// Push the last built image to a registry under its version and
    /// `sha-<commit>` tags, sign it with cosign, attach its SPDX SBOM as a
    /// signed attestation, and verify both against what the registry serves.
    Publish(Publish),
    /// Publish to a registry started on loopback (Debian's docker-registry)
    /// with a throwaway key pair, and prove that verification passes with
    /// the key and fails with another.
    PublishTest(PublishTest),
    /// Make the offline stand-ins that are missing or out of date (what
    /// `--offline` builds on, from Debian packages and Cargo.lock) and name
    /// them: ahead of an offline build, or for a test that needs a real
    /// Debian image.
    StandIns(StandIns),
    /// Remove the offline stand-ins (`xtask-offline/*`: builders, runtimes,
    /// vendored crates, service images) least recently used first, until
    /// the rest fit the budget. They are never removed otherwise: every
    /// repository built here keeps building on its own.
    Prune(Prune),
}

#[derive(Debug, Args)]
pub struct Setup {
    /// Only report what is present and what is missing; install nothing.
    #[arg(long)]
    pub check: bool,
    /// Also provide an engine that can build reproducibly (for
    /// `reproducible`): Debian 13's engine 26.1 with the containerd
    /// image store, unpacked into /opt/xtask-engine and started beside the
    /// host's engine, in a network namespace of its own, on
    /// `unix:///run/xtask-docker.sock`. Needs root.
    #[arg(long)]
    pub reproducible_engine: bool,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)]
pub struct Image {
    /// Tag for the image (repeatable). Default: `<image>:<version>` and `<image>:sha-<short revision>`.
    #[arg(long = "tag", short = 't', value_name = "NAME:TAG")]
    pub tags: Vec<String>,
    /// Build with the size profile and pack the binary with UPX.
    #[arg(long)]
    pub optimize: bool,
    /// Build without BuildKit's cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Target platform, e.g. `linux/amd64`.
    #[arg(long)]
    pub platform: Option<String>,
    /// Cache source passed to BuildKit (repeatable), e.g. `type=gha`.
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Cache destination passed to BuildKit (repeatable), e.g. `type=gha,mode=max`.
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Build with no registry: make local base images from Debian packages and vendor the crates.
    #[arg(long)]
    pub offline: bool,
    /// The runtime base: `distroless`, or `minimal` (the binaries' own ELF
    /// closure). Default: the manifest's `runtime`, else distroless.
    #[arg(long, value_enum)]
    pub runtime: Option<crate::metadata::Runtime>,
    /// Set by `reproducible`, which builds with these options.
    #[arg(skip)]
    pub check_reproducible: Option<Rebuild>,
}

#[derive(Debug, Args)]
pub struct Reproducible {
    /// Check the size-tuned build (`image --optimize`).
    #[arg(long)]
    pub optimize: bool,
    /// Build with no registry, as `image --offline` does.
    #[arg(long)]
    pub offline: bool,
    /// The runtime base, as `image --runtime`.
    #[arg(long, value_enum)]
    pub runtime: Option<crate::metadata::Runtime>,
    /// What the second build compiles again with no cache.
    #[arg(long, value_enum, default_value_t = Rebuild::All)]
    pub rebuild: Rebuild,
}

/// What `reproducible`'s second build takes nothing of from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rebuild {
    /// Every stage: the dependencies, the image's tools and the service.
    All,
    /// The Dockerfile's `build` stage, which compiles the service; the
    /// compiled dependencies come from the cache. For a change that leaves
    /// them alone, once `--rebuild all` has passed on their inputs. A
    /// Dockerfile with no stage of that name gets `all`.
    Service,
}

impl Reproducible {
    /// The build this check makes twice: `image` with the same options.
    pub fn image(&self) -> Image {
        Image {
            tags: Vec::new(),
            optimize: self.optimize,
            no_cache: false,
            platform: None,
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            offline: self.offline,
            runtime: self.runtime,
            check_reproducible: Some(self.rebuild),
        }
    }
}

#[derive(Debug, Args)]
pub struct SizeCheck {
    /// The image to measure. Default: the one the last `cargo xtask image` built.
    #[arg(long)]
    pub image: Option<String>,
    /// Maximum unpacked image size in MB (overrides the manifest's budget).
    #[arg(long, value_name = "MB")]
    pub max_image_mb: Option<f64>,
    /// Maximum number of layers (overrides the manifest's budget).
    #[arg(long, value_name = "N")]
    pub max_layers: Option<usize>,
    /// Maximum size of the server binary in MB (overrides the manifest's budget).
    #[arg(long, value_name = "MB")]
    pub max_binary_mb: Option<f64>,
}

#[derive(Debug, Args)]
pub struct ShutdownTest {
    /// The image to test. Default: the one the last `cargo xtask image` built.
    #[arg(long)]
    pub image: Option<String>,
    /// `SHUTDOWN_TIMEOUT` for the drain under load; `docker stop` waits 10 s longer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub shutdown_timeout: Duration,
    /// `SHUTDOWN_DELAY` for the drain under load: readiness answers 503 while
    /// new requests are still served, as behind a load balancer. At 0s the
    /// listener closes at the signal, and no 503 can be seen.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub shutdown_delay: Duration,
    /// `SHUTDOWN_TIMEOUT` for the check that a request which never completes cannot hold the container.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub deadline: Duration,
    /// Memory limit of the test containers (`docker run --memory`).
    #[arg(long, default_value = "256m")]
    pub memory: String,
    /// CPU limit of the test containers (`docker run --cpus`).
    #[arg(long, default_value = "1")]
    pub cpus: String,
    /// Uploads whose bodies are still arriving when the stop signal goes out.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub slow_uploads: usize,
    /// Clients sending a steady stream of short writes through the drain.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub short_clients: usize,
    /// HEALTHCHECK interval set at run time, so `healthy` comes quickly.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = duration)]
    pub health_interval: Duration,
    /// HEALTHCHECK start period set at run time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub health_start_period: Duration,
    /// An environment variable for the service's containers, `NAME=VALUE`
    /// (repeatable): e.g. a service's own switch, to prove what fails
    /// without it.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = env_pair)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct ComposeTest {
    /// The server image. Default: the one the last `cargo xtask image` built.
    #[arg(long)]
    pub image: Option<String>,
    /// No registry: PostgreSQL from a local image made from Debian 13's
    /// postgresql-17. Without it, the compose file's default is pulled.
    #[arg(long)]
    pub offline: bool,
    /// The PostgreSQL image to use instead of either.
    #[arg(long, value_name = "IMAGE", conflicts_with = "offline")]
    pub postgres_image: Option<String>,
}

#[derive(Debug, Args)]
pub struct RolloutTest {
    /// The image to test. Default: the one the last `cargo xtask image` built.
    #[arg(long)]
    pub image: Option<String>,
    /// `SHUTDOWN_DELAY` of the first rollout; must exceed the load
    /// balancer's check interval × fall count. The second runs with 0.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration)]
    pub shutdown_delay: Duration,
    /// `SHUTDOWN_TIMEOUT` of the replicas; `docker stop` waits 10 s longer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub shutdown_timeout: Duration,
    /// HAProxy's health check interval on the readiness path.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = duration)]
    pub check_interval: Duration,
    /// Failed checks before HAProxy takes a replica out.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub check_fall: u32,
    /// Clients sending requests through the load balancer, one at a time each.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub clients: usize,
    /// Requests each client sends per second, at most.
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub rate: u32,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // each is a flag of its own
pub struct Ci {
    /// Build the images with no registry (passed to `image --offline`).
    #[arg(long)]
    pub offline: bool,
    /// Run only this step (repeatable).
    #[arg(long, value_name = "STEP")]
    pub only: Vec<String>,
    /// Skip a step, with the reason the summary shows (repeatable), e.g.
    /// `--skip 'shutdown-test=no engine here'`. `scan.STEP` skips one of
    /// scan's own steps in both scan steps: `--skip 'scan.vuln=no database'`.
    #[arg(long, value_name = "STEP[=REASON]")]
    pub skip: Vec<String>,
    /// Run the remaining steps after one fails.
    #[arg(long)]
    pub keep_going: bool,
    /// Show each step's output as it runs, besides its log.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Cache source for the image builds (repeatable), e.g. `type=gha`.
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Cache destination for the image builds (repeatable), e.g. `type=gha,mode=max`.
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// A step still running after this long is stopped and fails.
    #[arg(long, value_name = "DURATION", default_value = "45m", value_parser = duration)]
    pub step_timeout: Duration,
    /// Run every step, even one whose inputs are those of an earlier pass
    /// (by default shown as `cached (from <time>)` and not run again).
    #[arg(long)]
    pub no_cache: bool,
    /// How many steps may run at once. Whatever the number, steps that share
    /// a lane never do: one build (compiling, an image), one container
    /// proof, one scanner at a time, one build on the niced reproducible
    /// engine, and the adoption proofs alone on the engine at hand. `--jobs 1`
    /// runs the plan's order, one step after another. Default: 4.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
}

#[derive(Debug, Args)]
pub struct Sbom {
    /// The image to describe. Default: the one the last `cargo xtask image` built.
    #[arg(long)]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct Scan {
    /// The image to scan. Default: the one the last `cargo xtask image` built.
    #[arg(long)]
    pub image: Option<String>,
    /// Severities that gate, for this run (repeatable or comma-separated).
    #[arg(long, value_name = "SEVERITY", value_delimiter = ',')]
    pub severity: Vec<String>,
    /// Let findings with no fixed version gate too, for this run.
    #[arg(long)]
    pub gate_unfixed: bool,
    /// trivy's YAML ignore file, instead of the manifest's.
    #[arg(long, value_name = "FILE")]
    pub ignore_file: Option<String>,
    /// A local trivy database: a trivy cache directory holding db/trivy.db,
    /// as trivy's air-gapped procedure lays it out. Without it trivy fetches
    /// its database from the registry.
    #[arg(long, value_name = "DIR", env = "XTASK_TRIVY_DB")]
    pub trivy_db: Option<PathBuf>,
    /// A mirror of `RustSec`'s advisory database for cargo-deny: a URL, or the
    /// path of a clone or git bundle.
    #[arg(long, value_name = "URL|PATH", env = "XTASK_ADVISORY_DB")]
    pub advisory_db: Option<String>,
    /// Run only this step (repeatable): vuln, secret, config, crates, deny,
    /// hadolint.
    #[arg(long, value_name = "STEP")]
    pub only: Vec<String>,
    /// Leave a step out, with the reason the summary shows (repeatable).
    #[arg(long, value_name = "STEP[=REASON]")]
    pub skip: Vec<String>,
    /// Reach no network, as `image --offline` does: the vulnerability steps
    /// (vuln, crates) run only on `--trivy-db`, and deny only on
    /// `--advisory-db`; without them each is skipped, saying so.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct Diff {
    /// The image before: an image reference in the engine, or a snapshot file
    /// (`--write-report`). With `--write-report`, the image to snapshot.
    #[arg(value_name = "BASE", required_unless_present = "write_report")]
    pub base: Option<String>,
    /// The image after: an image reference or a snapshot file. Default: the
    /// one the last `cargo xtask image` built.
    #[arg(value_name = "HEAD", conflicts_with = "write_report")]
    pub head: Option<String>,
    /// Compare nothing: write a JSON snapshot of one image (BASE, default the
    /// last build) to FILE, its packages, crates, layers and findings, for a
    /// later `diff FILE`. Made where the image was built: its crates are read
    /// from the work tree.
    #[arg(long, value_name = "FILE")]
    pub write_report: Option<PathBuf>,
    /// Also append the comparison as Markdown to FILE, e.g.
    /// `--markdown "$GITHUB_STEP_SUMMARY"` for a GitHub job summary; when a
    /// side cannot be read, why not.
    #[arg(long, value_name = "FILE", conflicts_with = "write_report")]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffTest {
    /// The registry crate moved one patch release in `Cargo.lock` (down, or
    /// up from a `.0`), as `bench --dependency`.
    #[arg(long, value_name = "CRATE", default_value = "itoa")]
    pub dependency: String,
    /// Build with no registry, as `image --offline` does.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// One run of each start/stop measurement, instead of `--runs`.
    #[arg(long)]
    pub quick: bool,
    /// How many times `shutdown-test` runs on each image; the report gives medians.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,
    /// Measure only this variant (repeatable): naive, chef-slim, chef-target-cache,
    /// chef-sccache, host, project, project-optimized, project-minimal.
    #[arg(long, value_name = "VARIANT")]
    pub only: Vec<String>,
    /// The registry crate whose version the dependency-change rebuild moves by
    /// one patch release in `Cargo.lock` (down, or up from a `.0`).
    #[arg(long, value_name = "CRATE", default_value = "itoa")]
    pub dependency: String,
    /// Write this run's tables and chart into docs/bench.md and docs/bench-chart.svg,
    /// dated and named by the command. Only a complete run of every variant does.
    #[arg(long)]
    pub write_docs: bool,
}

/// The prefix of a `--skip` of `ci` (or `adopt-test`) that reaches into
/// scan's own steps: `--skip scan.vuln=REASON`.
pub const SCAN_STEP_PREFIX: &str = "scan.";

/// `--skip NAME` or `--skip NAME=REASON`.
pub fn skip(text: &str) -> Result<(String, String), String> {
    let (name, reason) = match text.split_once('=') {
        Some((name, reason)) => (name.trim(), reason.trim()),
        None => (text.trim(), ""),
    };
    if name.is_empty() {
        return Err(format!(
            "{text:?} names no step: --skip STEP or --skip STEP=REASON"
        ));
    }
    let reason = if reason.is_empty() {
        "--skip".to_owned()
    } else {
        format!("--skip: {reason}")
    };
    Ok((name.to_owned(), reason))
}

#[derive(Debug, Args)]
pub struct AdoptTest {
    /// The example's manifest table.
    #[arg(long, value_name = "FILE", default_value = "examples/hello/xtask.toml")]
    pub table: std::path::PathBuf,
    /// Reach no network: the images built with `image --offline`, and
    /// `scan --offline` (its database steps need a local database).
    #[arg(long)]
    pub offline: bool,
    /// Pass a skip to the example's scan, as `ci` does: `scan.vuln=REASON`
    /// (repeatable).
    #[arg(long, value_name = "scan.STEP=REASON")]
    pub skip: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServerLoad {
    /// The server binary to drive. Default: `cargo build --release` of the manifest's package.
    #[arg(long, value_name = "PATH")]
    pub server: Option<std::path::PathBuf>,
    /// How long each mix runs.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Leave out the SQLite runs.
    #[arg(long)]
    pub skip_sqlite: bool,
    /// Leave out the PostgreSQL runs (they need Debian's `postgresql`).
    #[arg(long)]
    pub skip_postgres: bool,
}

/// `250ms`, `2s`, `1m`, `1h 30m`, or a bare number of seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 2s or 1m"))
}

/// `NAME=VALUE`, with a name a shell would accept.
fn env_pair(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{name:?} is not a variable name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/cli.md, the command reference, is the command line's own help:
    /// generated here, and this test fails when it is stale.
    /// `UPDATE_CLI_REFERENCE=1 cargo test -p server-image cli_reference`
    /// writes it anew.
    #[test]
    fn the_cli_reference_is_current() {
        use clap::CommandFactory;
        use std::fmt::Write as _;
        // The variables' values on this machine are no part of the reference.
        fn without_env_values(command: clap::Command) -> clap::Command {
            command
                .mut_args(|arg| arg.hide_env_values(true))
                .mut_subcommands(without_env_values)
        }
        let mut cli = without_env_values(Cli::command().term_width(100));
        cli.build();
        let mut text = String::from(
            "# `cargo xtask` command reference\n\n\
             Generated from the command line's own help by the test `the_cli_reference_is_current`\n\
             (`UPDATE_CLI_REFERENCE=1 cargo test -p server-image cli_reference` writes it anew).\n\
             Do not edit it by hand.\n\n",
        );
        let help = |command: &mut clap::Command| command.render_long_help().to_string();
        let _ = write!(text, "## `cargo xtask`\n\n```text\n{}```\n", help(&mut cli));
        for command in cli.get_subcommands_mut() {
            let name = command.get_name().to_owned();
            let _ = write!(
                text,
                "\n## `cargo xtask {name}`\n\n```text\n{}```\n",
                help(command)
            );
        }
        let text = text.lines().fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "{}", line.trim_end());
            out
        });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
        if std::env::var_os("UPDATE_CLI_REFERENCE").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == text,
            "docs/cli.md is stale: run `UPDATE_CLI_REFERENCE=1 cargo test -p server-image cli_reference`"
        );
    }

    #[test]
    fn sizes_take_units_in_powers_of_ten() {
        assert_eq!(bytes("8GB"), Ok(8_000_000_000));
        assert_eq!(bytes("1.5 gb"), Ok(1_500_000_000));
        assert_eq!(bytes("500MB"), Ok(500_000_000));
        assert_eq!(bytes("42"), Ok(42));
        assert!(bytes("8 parsecs").unwrap_err().contains("unknown unit"));
        assert!(bytes("-1GB").is_err());
        assert!(bytes("GB").is_err());
    }

    #[test]
    fn env_pairs_need_a_variable_name() {
        assert_eq!(
            env_pair("HANDLE_SIGTERM=false"),
            Ok(("HANDLE_SIGTERM".into(), "false".into()))
        );
        assert_eq!(env_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(env_pair("novalue").is_err());
        assert!(env_pair("1X=y").is_err());
        assert!(env_pair("A-B=y").is_err());
    }

    #[test]
    fn a_skip_says_why() {
        assert_eq!(
            skip("scan=no vulnerability database"),
            Ok(("scan".into(), "--skip: no vulnerability database".into()))
        );
        assert_eq!(skip("scan"), Ok(("scan".into(), "--skip".into())));
        assert!(skip("=why").is_err());
    }

    #[test]
    fn durations_take_milliseconds_seconds_and_minutes() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(duration("1m"), Ok(Duration::from_mins(1)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_mins(90)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(duration("s").is_err());
        assert!(duration("-2s").is_err());
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

#[derive(Debug, Args)]
pub struct Publish {
    /// Where to push: a registry and namespace, e.g. `ghcr.io/acme` or
    /// `127.0.0.1:5000`. The image's name is the manifest's `image`.
    #[arg(long, env = "XTASK_REGISTRY", value_name = "REGISTRY")]
    pub registry: String,
    /// The image to publish. Default: the last `cargo xtask image` build.
    #[arg(long, value_name = "NAME:TAG")]
    pub image: Option<String>,
    /// Also tag `latest`.
    #[arg(long)]
    pub latest: bool,
    /// cosign private key: a file, or what cosign reads (`env://NAME`,
    /// a KMS URI). Its password comes from `COSIGN_PASSWORD`.
    #[arg(long, env = "COSIGN_KEY", value_name = "KEY")]
    pub key: Option<String>,
    /// Public key to verify with. Default: the private key file's `.pub` twin.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// Sign with the GitHub workflow's OIDC identity (Fulcio and Rekor),
    /// and verify against it. Needs `id-token: write`.
    #[arg(long)]
    pub keyless: bool,
    /// Build the image (`--image`, else the last build) again, with the
    /// options it was built with, for these platforms
    /// (comma-separated, e.g. `linux/amd64,linux/arm64`) and push one index
    /// (a manifest list) with skopeo, signed with its platforms. Needs a
    /// builder that exports OCI archives and can build each platform; here
    /// only linux/amd64 and its variants (`linux/amd64/v2`) can be built.
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishTest {
    /// The image to publish. Default: the last `cargo xtask image` build.
    #[arg(long, value_name = "NAME:TAG")]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct Init {
    /// The repository's root, where its Cargo.toml is.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The service's package; needed when several packages have a binary.
    #[arg(long)]
    pub package: Option<String>,
    /// The binary the image runs; needed when the package has several.
    #[arg(long)]
    pub bin: Option<String>,
    /// The image's name. Default: the binary's.
    #[arg(long)]
    pub image: Option<String>,
    /// The port the service listens on in its container.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The path that answers 200 while the process runs.
    #[arg(long, default_value = "/health")]
    pub health_path: String,
    /// The path that answers 200 when it takes traffic. Default: the health path.
    #[arg(long)]
    pub ready_path: Option<String>,
    /// The request shutdown-test holds in flight at SIGTERM: a slow read
    /// (GET) or a write whose body trickles in (POST).
    #[arg(long, value_enum, default_value_t = InitDrainMethod::Get)]
    pub drain_method: InitDrainMethod,
    /// That request's path. Default: the health path.
    #[arg(long)]
    pub drain_path: Option<String>,
    /// Take the tooling from this directory (a path dependency).
    #[arg(long, value_name = "DIR", conflicts_with = "tooling_git")]
    pub tooling_path: Option<PathBuf>,
    /// Take the tooling from this git repository. Default: the tooling's own
    /// repository.
    #[arg(long, value_name = "URL")]
    pub tooling_git: Option<String>,
    /// With a git source: the commit, tag or branch to take.
    #[arg(long, value_name = "REV", requires = "tooling_git")]
    pub tooling_rev: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitDrainMethod {
    #[value(name = "GET")]
    Get,
    #[value(name = "POST")]
    Post,
}

#[derive(Debug, Args)]
pub struct InitTest {
    /// Build the adopted repository's image from local stand-ins (no registry).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct StandIns {
    /// Only this stand-in (repeatable). Default: the three an offline build uses.
    #[arg(long, value_enum, value_name = "STAND_IN")]
    pub only: Vec<StandIn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StandIn {
    /// The distroless-style runtime base (Debian 13 packages, no service).
    Runtime,
    /// The builder: Debian 13, a C toolchain, the pinned Rust toolchain, cargo-chef.
    Builder,
    /// The crates of Cargo.lock, vendored.
    Vendor,
    /// A Debian 13 slim runtime, what the bench's alternatives run on.
    Slim,
}

#[derive(Debug, Args)]
pub struct Prune {
    /// What the stand-ins may take, in bytes or with a unit: `500MB`, `8GB`.
    #[arg(long, default_value = "8GB", value_parser = bytes)]
    pub budget: u64,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `8GB`, `500MB`, `1.5GB` (powers of ten, as `size-check` counts), or a
/// bare number of bytes.
pub fn bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, ""), |at| text.split_at(at));
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => return Err(format!("unknown unit {other:?}: use B, KB, MB, GB or TB")),
    };
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size, like 8GB"))?;
    if !number.is_finite() || number < 0.0 {
        return Err(format!("{text:?} is not a size, like 8GB"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
    Ok((number * scale).round() as u64)
}

//! The command line: one subcommand per module.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Turns the server into a small, hardened, measured container image.
///
/// What is built (package, binary, image name, port, health paths, budgets)
/// comes from `[workspace.metadata.xtask]` in the workspace's Cargo.toml.
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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report the tools this project needs, with versions, and install what is missing.
    Setup(Setup),
    /// Build the container image with BuildKit.
    Image(Image),
    /// Measure the image against its size and layer budgets.
    SizeCheck(SizeCheck),
    /// Run the image hardened, drain it under load and prove nothing was lost.
    ShutdownTest(ShutdownTest),
    /// Run the whole pipeline in order, with one summary: format, clippy,
    /// tests, both images and their checks.
    ///
    /// Each step's output goes to target/xtask/ci/logs/<step>.log; the
    /// summary to target/xtask/ci/summary.json and, when set, to
    /// `$GITHUB_STEP_SUMMARY`. Exits 1 when any step failed.
    Ci(Ci),
    /// Measure this project's image against the usual alternatives (a naive
    /// multi-stage build, cargo-chef on Debian slim), all built offline from
    /// the same sources: build and rebuild times, size, start and stop.
    ///
    /// Writes target/xtask/bench/report.md, report.json and chart.svg. A full
    /// run takes about half an hour on 2 cores: every variant is built cold.
    Bench(Bench),
    /// Drive the release server on loopback with fixed traffic mixes, on
    /// SQLite and on a throwaway PostgreSQL cluster, and report requests per
    /// second, p50/p99 latency, non-2xx answers and peak resident memory.
    ServerLoad(ServerLoad),
}

#[derive(Debug, Args)]
pub struct Setup {
    /// Only report what is present and what is missing; install nothing.
    #[arg(long)]
    pub check: bool,
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
}

#[derive(Debug, Args)]
pub struct Ci {
    /// Build the images with no registry (passed to `image --offline`).
    #[arg(long)]
    pub offline: bool,
    /// Run only this step (repeatable).
    #[arg(long, value_name = "STEP")]
    pub only: Vec<String>,
    /// Skip a step, with the reason the summary shows (repeatable), e.g.
    /// `--skip 'scan=no vulnerability database here'`.
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
}

#[derive(Debug, Args)]
pub struct Bench {
    /// One run of each start/stop measurement, instead of `--runs`.
    #[arg(long)]
    pub quick: bool,
    /// How many times `shutdown-test` runs on each image; the report gives medians.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,
    /// Measure only this variant (repeatable): naive, chef-slim, project, project-optimized.
    #[arg(long, value_name = "VARIANT")]
    pub only: Vec<String>,
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

/// `250ms`, `2s`, `1m`, or a bare number of seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 2s or 1m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("{text:?} is not a duration like 500ms, 2s or 1m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_milliseconds_seconds_and_minutes() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(duration("1m"), Ok(Duration::from_mins(1)));
        assert!(duration("1.5s").is_err());
        assert!(duration("s").is_err());
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

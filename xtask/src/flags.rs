//! The command line: one subcommand per module.

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
}

#[derive(Debug, Args)]
pub struct Setup {
    /// Only report what is present and what is missing; install nothing.
    #[arg(long)]
    pub check: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
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
    /// Print the measurements as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShutdownTest {
    /// The image to test. Default: the one the last `cargo xtask image` built.
    #[arg(long)]
    pub image: Option<String>,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

//! `cargo xtask`: builds, measures and proves the server's container image.

mod built_image;
mod checks;
mod container;
mod drain_load;
mod engine;
mod flags;
mod image_history;
mod loopback_http;
mod metadata;
mod report;
mod saved_image;
mod shutdown_test;
mod size_check;
mod tar_stream;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use xshell::Shell;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = flags::Cli::parse();
    let sh = Shell::new().context("cannot create a shell")?;
    let root = project_root();
    sh.change_dir(&root);
    let metadata = metadata::Metadata::load(&root)?;
    match cli.command {
        flags::Command::SizeCheck(args) => args.run(&sh, &metadata),
        flags::Command::ShutdownTest(args) => args.run(&sh, &metadata),
        flags::Command::Setup(_) | flags::Command::Image(_) => {
            anyhow::bail!("not built yet for {}", metadata.package)
        }
    }
}

/// The workspace root: the xtask crate lives one level below it.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

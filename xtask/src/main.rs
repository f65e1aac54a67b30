//! `cargo xtask`: builds, measures and proves the server's container image.

mod apt;
mod built_image;
mod checks;
mod conformance;
mod container;
mod docker;
mod drain_load;
mod flags;
mod git;
mod image;
mod image_history;
mod image_report;
mod loopback_http;
mod metadata;
mod offline;
mod output;
mod process;
mod report;
mod saved_image;
mod setup;
mod shutdown_test;
mod silent_server;
mod size_check;
mod tar_stream;
mod tools;

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
        flags::Command::Setup(setup) => setup.run(&sh),
        flags::Command::Image(image) => image.run(&sh, &metadata),
        flags::Command::SizeCheck(args) => args.run(&sh, &metadata),
        flags::Command::ShutdownTest(args) => args.run(&sh, &metadata),
    }
}

/// The workspace root: the xtask crate lives one level below it.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

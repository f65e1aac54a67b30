//! The docker client the measuring and testing commands run. It is found,
//! and its engine checked, where every command finds it (`docker.rs`,
//! `tools.rs`); programs run through `process.rs`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use xshell::Shell;

use crate::docker::Docker;
use crate::process;
use crate::tools::{self, Tool};

/// A docker client whose engine answered.
#[derive(Debug, Clone)]
pub struct Engine {
    program: PathBuf,
}

impl Engine {
    /// Fails with one line when the client is missing or the engine does not
    /// answer (a stopped daemon), before any command gets under way.
    pub fn connect(sh: &Shell) -> anyhow::Result<Engine> {
        Docker::connect(sh)?;
        let program = tools::require(sh, Tool::DockerClient)?.path;
        Ok(Engine { program })
    }

    /// The client, for processes that outlive a shell command: streams,
    /// background stops, cleanup on Ctrl+C.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Runs `docker <args>` and returns its standard output; a failure is one
    /// line ending with docker's own reason.
    pub fn output<I, S>(&self, sh: &Shell, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        process::read(sh.cmd(&self.program).args(args))
    }

    /// `docker image inspect`, with a missing image said plainly.
    pub fn inspect_image(&self, sh: &Shell, reference: &str) -> anyhow::Result<String> {
        self.output(sh, ["image", "inspect", reference])
            .map_err(|error| {
                if is_missing_image(&error.to_string()) {
                    anyhow!("image {reference} not found (build it with `cargo xtask image`)")
                } else {
                    error
                }
            })
    }
}

/// Engines word it `No such image` or, older ones, `no such image`.
fn is_missing_image(error: &str) -> bool {
    error.to_ascii_lowercase().contains("no such image")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_image_is_recognised_in_either_wording() {
        assert!(is_missing_image(
            "`docker image inspect nosuch:1` failed: Error response from daemon: no such image: nosuch:1: No such image: nosuch:1"
        ));
        assert!(!is_missing_image(
            "`docker image inspect x` failed: Cannot connect to the Docker daemon"
        ));
    }
}

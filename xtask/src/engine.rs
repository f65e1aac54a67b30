//! The docker client, and whether the engine behind it answers.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use xshell::Shell;

/// A docker client whose engine answered.
#[derive(Debug, Clone)]
pub struct Engine {
    program: PathBuf,
}

impl Engine {
    /// Finds `docker` and checks that its engine answers, so that a stopped
    /// daemon is one clear line rather than a failure deep inside a command.
    pub fn connect(sh: &Shell) -> anyhow::Result<Engine> {
        let program = which::which("docker").map_err(|_| {
            anyhow!("docker: not found on PATH (install the docker client, e.g. `apt-get install docker.io`)")
        })?;
        let output = sh
            .cmd(&program)
            .args(["version", "--format", "{{.Server.Version}}"])
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("cannot run {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "cannot reach the Docker engine: {}",
                last_error_line(&String::from_utf8_lossy(&output.stderr))
            );
        }
        Ok(Engine { program })
    }

    /// `docker image inspect`, with a missing image said plainly.
    pub fn inspect_image(&self, sh: &Shell, reference: &str) -> anyhow::Result<String> {
        self.output(sh, ["image", "inspect", reference])
            .map_err(|error| {
                if error
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("no such image")
                {
                    anyhow!("image {reference} not found (build it with `cargo xtask image`)")
                } else {
                    error
                }
            })
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Runs `docker <args>` and returns its standard output; on failure the
    /// error is the engine's own last line, e.g. `No such image: x`.
    pub fn output<I, S>(&self, sh: &Shell, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let shown = args
            .iter()
            .take(2)
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let output = sh
            .cmd(&self.program)
            .args(&args)
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("cannot run docker {shown}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("docker {shown}: {}", last_error_line(&stderr));
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("docker {shown}: output is not UTF-8"))
    }
}

/// The line of docker's standard error that says what went wrong, without
/// the `Error response from daemon:` preamble.
pub fn last_error_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("failed without a message");
    let line = line
        .strip_prefix("Error response from daemon:")
        .unwrap_or(line);
    let line = line.strip_prefix("Error:").unwrap_or(line);
    line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_preamble_is_dropped() {
        assert_eq!(
            last_error_line("Error response from daemon: No such image: nosuch:1\n"),
            "No such image: nosuch:1"
        );
    }

    #[test]
    fn the_last_non_empty_line_is_the_reason() {
        let stderr = "WARNING: something\nCannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n\n";
        assert!(last_error_line(stderr).starts_with("Cannot connect"));
    }
}

//! Writing a command's result to stdout. Progress and errors go to stderr, so
//! that stdout carries only the result (a table, or JSON for `--json`).

use std::io::{ErrorKind, Write};

use anyhow::Context;

/// Writes `text` to stdout. A reader that stopped reading (`| head`) is not
/// an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Writes a value as pretty JSON and a newline.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print(&(serde_json::to_string_pretty(value)? + "\n"))
}

/// Runs a command as `Cmd::run` does (echoed, failing on a non-zero exit),
/// but with its stdout sent to stderr along with its progress.
pub fn run_to_stderr(cmd: xshell::Cmd<'_>) -> anyhow::Result<()> {
    let shown = cmd.to_string();
    eprintln!("$ {shown}");
    // The whole command was just echoed; the error names it briefly.
    let shown = brief(&shown);
    let mut command = std::process::Command::from(cmd);
    command.stdout(std::io::stderr());
    let status = command
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        anyhow::bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// A command line cut to its program's name and first two arguments.
fn brief(command: &str) -> String {
    let mut words = command.split(' ');
    let program = words.next().unwrap_or_default();
    let program = program.rsplit('/').next().unwrap_or(program);
    let rest: Vec<&str> = words.collect();
    let mut brief = std::iter::once(program)
        .chain(rest.iter().take(2).copied())
        .collect::<Vec<_>>()
        .join(" ");
    if rest.len() > 2 {
        brief.push_str(" …");
    }
    brief
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_a_long_command_briefly() {
        assert_eq!(
            brief("/usr/local/bin/docker buildx build --load --file Dockerfile ."),
            "docker buildx build …"
        );
        assert_eq!(brief("/usr/bin/apt-get update"), "apt-get update");
    }
}

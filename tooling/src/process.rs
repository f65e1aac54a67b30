//! Running external programs: quietly for their output, or visibly with their
//! progress on stderr (stdout stays free for a command's result). A failure
//! is one line that names the program and quotes the end of its error output.

use anyhow::Context;
use xshell::Cmd;

/// Runs a command without echoing it and returns its stdout.
pub fn read(cmd: Cmd<'_>) -> anyhow::Result<String> {
    let shown = brief(&cmd.to_string());
    let output = cmd
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        anyhow::bail!(
            "`{shown}` failed: {}",
            last_line(&String::from_utf8_lossy(&output.stderr))
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a command as `Cmd::run` does (echoed, failing on a non-zero exit),
/// with its stdout sent to stderr along with its progress.
pub fn run(cmd: Cmd<'_>) -> anyhow::Result<()> {
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

/// Runs a command with all its output written to `log`, failing on a
/// non-zero exit with the log's last line.
pub fn run_logged(cmd: Cmd<'_>, log: &std::path::Path) -> anyhow::Result<()> {
    let shown = brief(&cmd.to_string());
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = std::process::Command::from(cmd);
    command.stdout(file.try_clone()?).stderr(file);
    let status = command
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        anyhow::bail!("`{shown}` failed ({status}): {}", last_line(&text));
    }
    Ok(())
}

/// The last non-empty line of a program's error output, for one-line errors.
pub fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no output")
        .to_owned()
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

/// Runs an xtask command given `--json`: its progress goes to stderr as it
/// runs, and its verdict is read from stdout whatever its exit status (a
/// failed check exits 1 and still prints one).
pub fn verdict(cmd: Cmd<'_>) -> anyhow::Result<serde_json::Value> {
    let shown = cmd.to_string();
    eprintln!("$ {shown}");
    let shown = brief(&shown);
    let mut command = std::process::Command::from(cmd);
    command
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    let output = command
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`{shown}` printed no verdict ({}); its errors are above",
            output.status
        )
    })
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

    #[test]
    fn the_last_line_of_an_error_is_what_a_user_sees() {
        let stderr = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. \
                      Is the docker daemon running?\n\n";
        assert!(last_line(stderr).starts_with("Cannot connect"));
        assert_eq!(last_line(""), "no output");
    }

    #[test]
    fn a_failing_command_is_one_line_with_its_error() {
        let sh = xshell::Shell::new().unwrap();
        let error = read(xshell::cmd!(sh, "ls /nonexistent/xtask"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("`ls /nonexistent/xtask` failed: ls: "),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}

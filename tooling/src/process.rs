//! Running external programs, the one way the xtask does: every command is
//! an xshell `Cmd`, run here quietly for its output, visibly with its
//! progress on stderr (stdout stays free for a command's result), in the
//! background ([`Background`]) or as a stream of its output ([`Stream`]).
//! A failure is one line that names the program and quotes the end of its
//! error output.

use std::io::{self, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use xshell::Cmd;

use crate::wait::{self, Poll};

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
    let mut command = Command::from(cmd);
    command.stdout(std::io::stderr());
    let status = command
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        anyhow::bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs a command with no input and all its output written to `log`,
/// failing on a non-zero exit with the log's last line.
pub fn run_logged(cmd: Cmd<'_>, log: &std::path::Path) -> anyhow::Result<()> {
    let shown = brief(&cmd.to_string());
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = Command::from(cmd);
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
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
/// runs (or to `log`), and its verdict is read from stdout whatever its exit
/// status (a failed check exits 1 and still prints one).
pub fn verdict(cmd: Cmd<'_>, log: Option<&std::path::Path>) -> anyhow::Result<serde_json::Value> {
    let shown = cmd.to_string();
    eprintln!("$ {shown}");
    let shown = brief(&shown);
    let mut command = Command::from(cmd);
    command.stdin(Stdio::null());
    let errors_are = if let Some(log) = log {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        command.stderr(file);
        format!("see {}", log.display())
    } else {
        command.stderr(Stdio::inherit());
        "its errors are above".to_owned()
    };
    let output = command
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`{shown}` printed no verdict ({}); {errors_are}",
            output.status
        )
    })
}

/// Where a background program's output goes.
pub enum Sink {
    Null,
    Inherit,
    /// Read through [`Background::stdout`] or [`Background::stderr`].
    Piped,
    File(PathBuf),
}

impl Sink {
    fn stdio(&self) -> anyhow::Result<Stdio> {
        Ok(match self {
            Sink::Null => Stdio::null(),
            Sink::Inherit => Stdio::inherit(),
            Sink::Piped => Stdio::piped(),
            Sink::File(path) => std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?
                .into(),
        })
    }
}

/// A program running alongside this one, with no input; killed if it still
/// runs when dropped, so that a failed check leaves nothing behind.
pub struct Background {
    /// What running it attempts, for errors: "could not <what>".
    what: String,
    shown: String,
    child: Child,
    status: Option<ExitStatus>,
}

/// Starts `cmd` in the background; `what` says what it attempts.
pub fn start(what: &str, cmd: Cmd<'_>, stdout: &Sink, stderr: &Sink) -> anyhow::Result<Background> {
    let shown = brief(&cmd.to_string());
    let (stdout, stderr) = match (stdout, stderr) {
        // One log for both, in the order they were written.
        (Sink::File(out), Sink::File(err)) if out == err => {
            let file = std::fs::File::create(out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        _ => (stdout.stdio()?, stderr.stdio()?),
    };
    let mut command = Command::from(cmd);
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let child = command
        .spawn()
        .with_context(|| format!("could not {what}: cannot run `{shown}`"))?;
    Ok(Background {
        what: what.to_owned(),
        shown,
        child,
        status: None,
    })
}

impl Background {
    /// Its output, when started with [`Sink::Piped`]; once.
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status once it has exited.
    pub fn try_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("could not {}: cannot wait for it", self.what))?;
        }
        Ok(self.status)
    }

    /// Waits for it to exit, killing it past `bound` or when it cannot be
    /// waited for (the status is then `None`).
    pub fn wait_within(&mut self, bound: Duration) -> Option<ExitStatus> {
        let waited = wait::until(bound, Duration::from_millis(5), || {
            Ok(match self.try_status()? {
                Some(status) => Poll::Ready(status),
                None => Poll::Waiting(format!("`{}` still running", self.shown)),
            })
        });
        if let Ok(status) = waited {
            Some(status)
        } else {
            self.kill();
            None
        }
    }

    /// Waits up to `bound` for it to exit 0; a failure says what it
    /// attempted, how it ended and the last line of its piped stderr.
    pub fn succeed_within(&mut self, bound: Duration) -> anyhow::Result<()> {
        let Some(status) = self.wait_within(bound) else {
            anyhow::bail!(
                "could not {}: `{}` still ran after {}",
                self.what,
                self.shown,
                crate::output::duration(bound)
            );
        };
        if status.success() {
            return Ok(());
        }
        let mut errors = String::new();
        if let Some(mut stderr) = self.stderr() {
            let _ = stderr.read_to_string(&mut errors);
        }
        anyhow::bail!("{}", self.failure(status, &errors))
    }

    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    fn failure(&self, status: ExitStatus, errors: &str) -> String {
        format!(
            "could not {}: `{}` {}: {}",
            self.what,
            self.shown,
            exited(status),
            last_line(errors)
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// "exited 1", or the signal that ended it.
fn exited(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// A program's stdout as a reader, for output too large to hold (an image's
/// archive). Reaching the end checks its exit status: a failed program is a
/// read error, never a short stream. Dropped early, the program is killed.
pub struct Stream {
    process: Background,
    stdout: ChildStdout,
    /// Drained alongside, so a chatty program never blocks on it.
    stderr: Option<JoinHandle<String>>,
}

pub fn stream(what: &str, cmd: Cmd<'_>) -> anyhow::Result<Stream> {
    let mut process = start(what, cmd, &Sink::Piped, &Sink::Piped)?;
    let stdout = process.stdout().context("no stdout")?;
    let stderr = process.stderr().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        })
    });
    Ok(Stream {
        process,
        stdout,
        stderr,
    })
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.stdout.read(buf)?;
        if read == 0 && !buf.is_empty() && self.process.status.is_none() {
            let status = self.process.child.wait()?;
            self.process.status = Some(status);
            if !status.success() {
                let errors = self
                    .stderr
                    .take()
                    .and_then(|handle| handle.join().ok())
                    .unwrap_or_default();
                return Err(io::Error::other(self.process.failure(status, &errors)));
            }
        }
        Ok(read)
    }
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

    #[test]
    fn a_stream_of_a_failed_program_ends_in_an_error_not_a_short_read() {
        let sh = xshell::Shell::new().unwrap();
        let script = "echo partial; echo 'no such image' >&2; exit 3";
        let mut stream = stream("save the image", xshell::cmd!(sh, "sh -c {script}")).unwrap();
        let mut read = Vec::new();
        let error = stream.read_to_end(&mut read).unwrap_err().to_string();
        assert_eq!(read, b"partial\n");
        assert!(
            error.starts_with("could not save the image: `sh -c")
                && error.ends_with("exited 3: no such image"),
            "{error}"
        );
    }

    #[test]
    fn a_background_program_past_its_bound_is_killed_and_said_so() {
        let sh = xshell::Shell::new().unwrap();
        let mut sleeper = start(
            "wait for nothing",
            xshell::cmd!(sh, "sleep 30"),
            &Sink::Null,
            &Sink::Null,
        )
        .unwrap();
        let error = sleeper
            .succeed_within(Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("could not wait for nothing: `sleep 30` still ran after"),
            "{error}"
        );
        assert!(
            sleeper.try_status().unwrap().is_some(),
            "it was killed and reaped"
        );
    }

    #[test]
    fn a_dropped_background_program_is_gone() {
        let sh = xshell::Shell::new().unwrap();
        let sleeper = start(
            "wait for nothing",
            xshell::cmd!(sh, "sleep 30"),
            &Sink::Null,
            &Sink::Null,
        )
        .unwrap();
        let proc_entry = std::path::PathBuf::from(format!("/proc/{}", sleeper.id()));
        assert!(proc_entry.exists());
        drop(sleeper);
        assert!(!proc_entry.exists(), "killed and reaped on drop");
    }
}

//! Running external programs, the one way the xtask does: every command is
//! an xshell `Cmd`, run here quietly for its output or visibly with its
//! progress on stderr (stdout stays free for a command's result); through
//! duct in the background ([`Background`]) or as a stream of its output
//! ([`Stream`]).
//! A failure is one line that names the program and quotes the end of its
//! error output.

use std::io::{self, PipeReader, Read};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use xshell::Cmd;

use crate::wait::{self, Poll};

/// The cargo that runs this program (`CARGO`, as cargo sets it), else
/// the one on `PATH`.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

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
            "`{shown}` {}: {}",
            ended(output.status),
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
        anyhow::bail!("`{shown}` {}; its output is above", ended(status));
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
        anyhow::bail!("`{shown}` {}: {}", ended(status), last_line(&text));
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

/// A program running alongside this one (through duct), with no input;
/// killed if it still runs when dropped, so that a failed check leaves
/// nothing behind.
pub struct Background {
    /// What running it attempts, for errors: "could not <what>".
    what: String,
    shown: String,
    handle: duct::Handle,
    stdout: Option<PipeReader>,
    stderr: Option<PipeReader>,
    status: Option<ExitStatus>,
}

/// The duct expression of an xshell command: program, arguments, working
/// directory and variables. `env_clear` does not carry over (std does not
/// report it): start a program in an empty environment with `env -i`.
fn expression(cmd: Cmd<'_>) -> (duct::Expression, String) {
    let shown = brief(&cmd.to_string());
    let command = Command::from(cmd);
    let mut expression = duct::cmd(command.get_program(), command.get_args())
        .stdin_null()
        .unchecked();
    if let Some(dir) = command.get_current_dir() {
        expression = expression.dir(dir);
    }
    for (name, value) in command.get_envs() {
        expression = match value {
            Some(value) => expression.env(name, value),
            None => expression.env_remove(name),
        };
    }
    (expression, shown)
}

/// Starts `cmd` in the background; `what` says what it attempts.
pub fn start(what: &str, cmd: Cmd<'_>, stdout: &Sink, stderr: &Sink) -> anyhow::Result<Background> {
    let (mut expression, shown) = expression(cmd);
    let mut stdout_pipe = None;
    let mut stderr_pipe = None;
    let pipe = || std::io::pipe().context("cannot make a pipe");
    // duct applies the outer redirection first: stderr's goes inside, so
    // that "stderr to stdout" joins the stdout set around it.
    expression = match (stdout, stderr) {
        // One log for both, in the order they were written.
        (Sink::File(out), Sink::File(err)) if out == err => expression.stderr_to_stdout(),
        (_, Sink::Null) => expression.stderr_null(),
        (_, Sink::Inherit) => expression,
        (_, Sink::Piped) => {
            let (reader, writer) = pipe()?;
            stderr_pipe = Some(reader);
            expression.stderr_file(writer)
        }
        (_, Sink::File(path)) => expression.stderr_path(path),
    };
    expression = match stdout {
        Sink::Null => expression.stdout_null(),
        Sink::Inherit => expression,
        Sink::Piped => {
            let (reader, writer) = pipe()?;
            stdout_pipe = Some(reader);
            expression.stdout_file(writer)
        }
        Sink::File(path) => expression.stdout_path(path),
    };
    let handle = expression
        .start()
        .with_context(|| format!("could not {what}: cannot run `{shown}`"))?;
    // The pipes' write ends live in the expression: dropped here, so that a
    // reader sees the end of the output when the program exits.
    drop(expression);
    Ok(Background {
        what: what.to_owned(),
        shown,
        handle,
        stdout: stdout_pipe,
        stderr: stderr_pipe,
        status: None,
    })
}

impl Background {
    /// Its output, when started with [`Sink::Piped`]; once.
    pub fn stdout(&mut self) -> Option<PipeReader> {
        self.stdout.take()
    }

    pub fn stderr(&mut self) -> Option<PipeReader> {
        self.stderr.take()
    }

    pub fn id(&self) -> u32 {
        self.handle.pids().first().copied().unwrap_or_default()
    }

    /// Its exit status once it has exited.
    pub fn try_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .handle
                .try_wait()
                .with_context(|| format!("could not {}: cannot wait for it", self.what))?
                .map(|output| output.status);
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
        anyhow::bail!("{}", failure(&self.what, &self.shown, status, &errors))
    }

    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.handle.kill();
            self.status = self.handle.wait().ok().map(|output| output.status);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// "could not <what>: `<program …>` exited N: <last line of its errors>".
fn failure(what: &str, shown: &str, status: ExitStatus, errors: &str) -> String {
    format!(
        "could not {what}: `{shown}` {}: {}",
        ended(status),
        last_line(errors)
    )
}

/// "exited 1", or the signal that ended it.
fn ended(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// A program's stdout as a reader (through duct), for output too large to
/// hold (an image's archive). Reaching the end checks its exit status: a
/// failed program is a read error, never a short stream. Dropped early, the
/// program is killed.
pub struct Stream {
    what: String,
    shown: String,
    reader: duct::ReaderHandle,
}

pub fn stream(what: &str, cmd: Cmd<'_>) -> anyhow::Result<Stream> {
    let (expression, shown) = expression(cmd);
    let reader = expression
        .stderr_capture()
        .reader()
        .with_context(|| format!("could not {what}: cannot run `{shown}`"))?;
    Ok(Stream {
        what: what.to_owned(),
        shown,
        reader,
    })
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.reader.read(buf)?;
        if read == 0 && !buf.is_empty() {
            // At the end of its output, the reader has waited for it.
            if let Some(output) = self.reader.try_wait()?
                && !output.status.success()
            {
                return Err(io::Error::other(failure(
                    &self.what,
                    &self.shown,
                    output.status,
                    &String::from_utf8_lossy(&output.stderr),
                )));
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
            error.starts_with("`ls /nonexistent/xtask` exited 2: ls: "),
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

    #[test]
    fn piped_output_ends_when_the_program_exits() {
        let sh = xshell::Shell::new().unwrap();
        let script = "echo out; echo err >&2";
        let mut program = start(
            "say two things",
            xshell::cmd!(sh, "sh -c {script}"),
            &Sink::Piped,
            &Sink::Piped,
        )
        .unwrap();
        let (mut stdout, mut stderr) = (program.stdout().unwrap(), program.stderr().unwrap());
        let (sender, received) = std::sync::mpsc::channel();
        // Bounded: a write end left open here would block these reads forever.
        std::thread::spawn(move || {
            let (mut out, mut err) = (String::new(), String::new());
            stdout.read_to_string(&mut out).unwrap();
            stderr.read_to_string(&mut err).unwrap();
            let _ = sender.send((out, err));
        });
        let (out, err) = received.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert!(
            program
                .wait_within(Duration::from_secs(10))
                .unwrap()
                .success()
        );
    }

    #[test]
    fn one_log_for_both_outputs_takes_both() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("both.log");
        let sh = xshell::Shell::new().unwrap();
        let script = "echo to-stdout; echo to-stderr >&2";
        let mut program = start(
            "log both",
            xshell::cmd!(sh, "sh -c {script}"),
            &Sink::File(log.clone()),
            &Sink::File(log.clone()),
        )
        .unwrap();
        program.succeed_within(Duration::from_secs(10)).unwrap();
        let logged = std::fs::read_to_string(&log).unwrap();
        assert_eq!(logged, "to-stdout\nto-stderr\n");
    }
}

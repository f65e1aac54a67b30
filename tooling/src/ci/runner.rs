//! Running one step as a child process: its output goes to a log under
//! `target/xtask/ci/logs/` (and to the terminal with `--verbose`), a line on
//! stderr says which step runs and for how long, and the step's result is
//! read from its exit status or, for the xtask's own commands, its verdict.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use xshell::{Cmd, Shell};

use super::plan::{Action, Step};
use crate::checks::Check;
use crate::output;
use crate::process::{self, Background, Sink};

/// How often a quiet step reports that it is still running.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Lines of a failed step's log shown on the terminal.
const TAIL_LINES: usize = 25;

pub struct Runner {
    pub log_dir: PathBuf,
    pub verbose: bool,
    pub step_timeout: Duration,
    /// This very program, to run the xtask's own commands.
    pub xtask: PathBuf,
}

/// What a step came to.
pub struct Outcome {
    pub check: Check,
    /// The image an `image` step built.
    pub image_id: Option<String>,
}

/// How a child process ended.
struct Finished {
    status: Option<ExitStatus>,
    stdout: String,
    elapsed: Duration,
}

impl Runner {
    /// Runs `step`; `image` is passed as `--image` to a check of an image.
    pub fn run(&self, step: &Step, image: Option<&str>, position: &str) -> Outcome {
        let log = self.log_dir.join(format!("{}.log", step.name));
        let started = Instant::now();
        let result = self.spawn_and_wait(step, image, &log, position);
        let elapsed = started.elapsed();
        let outcome = match result {
            Ok(finished) => judge(step, &finished, &log),
            Err(error) => Outcome {
                check: Check::broken(step.name, step.proves, &error),
                image_id: None,
            },
        };
        let mark = if outcome.check.failed() {
            "FAIL"
        } else {
            "pass"
        };
        eprintln!(
            "ci: {position} {} {mark} in {}: {}",
            step.name,
            output::duration(elapsed),
            outcome
                .check
                .actual
                .as_deref()
                .unwrap_or(&outcome.check.measured)
        );
        if outcome.check.failed() && !self.verbose {
            eprintln!(
                "ci: the end of {}:\n{}",
                log.display(),
                tail(&log, TAIL_LINES)
            );
        }
        Outcome {
            check: outcome.check.timed(elapsed),
            ..outcome
        }
    }

    fn command<'a>(&self, sh: &'a Shell, step: &Step, image: Option<&str>) -> Cmd<'a> {
        match &step.action {
            Action::Cargo(args) => {
                let cargo = process::cargo();
                sh.cmd(cargo).args(args)
            }
            Action::Xtask { args, .. } => {
                let command = sh.cmd(&self.xtask).arg("--json").args(args);
                match image {
                    Some(image) => command.args(["--image", image]),
                    None => command,
                }
            }
        }
    }

    fn spawn_and_wait(
        &self,
        step: &Step,
        image: Option<&str>,
        log_path: &Path,
        position: &str,
    ) -> anyhow::Result<Finished> {
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("cannot create {}", self.log_dir.display()))?;
        let log = File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log = Arc::new(Mutex::new(log));
        let sh = Shell::new()?;
        let command = self.command(&sh, step, image);
        let shown = shown(&command.to_string());
        eprintln!(
            "ci: {position} {}: {shown} (log: {})",
            step.name,
            log_path.display()
        );
        writeln!(lock(&log), "$ {shown}")?;
        let started = Instant::now();
        let mut child = process::start(
            &format!("run {}", step.name),
            command,
            &Sink::Piped,
            &Sink::Piped,
        )?;
        let keeps_stdout = matches!(step.action, Action::Xtask { .. });
        let stdout = child.stdout().context("no stdout")?;
        let stderr = child.stderr().context("no stderr")?;
        let stdout = if keeps_stdout {
            Collected::Text(collect(stdout))
        } else {
            Collected::Logged(copy_lines(stdout, Arc::clone(&log), self.verbose))
        };
        let stderr = copy_lines(stderr, Arc::clone(&log), self.verbose);
        let status = self.wait(&mut child, step.name, started)?;
        let _ = stderr.join();
        let stdout = match stdout {
            Collected::Text(handle) => handle.join().unwrap_or_default(),
            Collected::Logged(handle) => {
                let _ = handle.join();
                String::new()
            }
        };
        Ok(Finished {
            status,
            stdout,
            elapsed: started.elapsed(),
        })
    }

    /// Waits for the child, saying now and then that it still runs; kills
    /// it past the step timeout (`status` is then `None`).
    fn wait(
        &self,
        child: &mut Background,
        name: &str,
        started: Instant,
    ) -> anyhow::Result<Option<ExitStatus>> {
        let mut next_heartbeat = HEARTBEAT;
        loop {
            if let Some(status) = child.try_status()? {
                return Ok(Some(status));
            }
            let elapsed = started.elapsed();
            if elapsed > self.step_timeout {
                child.kill();
                return Ok(None);
            }
            if !self.verbose && elapsed >= next_heartbeat {
                eprintln!("ci: {name} still running ({})", output::duration(elapsed));
                next_heartbeat += HEARTBEAT;
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

enum Collected {
    Text(JoinHandle<String>),
    Logged(JoinHandle<()>),
}

fn lock(log: &Mutex<File>) -> std::sync::MutexGuard<'_, File> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn collect(mut reader: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    })
}

fn copy_lines(
    reader: impl Read + Send + 'static,
    log: Arc<Mutex<File>>,
    echo: bool,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(lock(&log), "{line}");
            if echo {
                eprintln!("{line}");
            }
        }
    })
}

/// The command line with its program's directory left out, and this very
/// program called as its users call it.
fn shown(command: &str) -> String {
    let (program, args) = command.split_once(' ').unwrap_or((command, ""));
    let program = Path::new(program)
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let program = if program == "xtask" {
        "cargo xtask"
    } else {
        &program
    };
    format!("{program} {args}").trim_end().to_owned()
}

fn judge(step: &Step, finished: &Finished, log: &Path) -> Outcome {
    let Some(status) = finished.status else {
        return Outcome {
            check: Check::judge(
                step.name,
                false,
                format!("killed after {}", output::duration(finished.elapsed)),
                step.proves,
            )
            .because(format!(
                "still running after the step timeout ({}); see {}",
                output::duration(finished.elapsed),
                log.display()
            )),
            image_id: None,
        };
    };
    let log_text = std::fs::read_to_string(log).unwrap_or_default();
    match &step.action {
        Action::Cargo(_) => {
            let measured = if step.name == "test" {
                test_totals(&log_text).unwrap_or_else(|| "no test result line".to_owned())
            } else if status.success() {
                "clean".to_owned()
            } else {
                crate::process::last_line(&log_text)
            };
            let passed = status.success();
            Outcome {
                check: Check::judge(step.name, passed, measured, step.proves).because(format!(
                    "{status}: {}; see {}",
                    crate::process::last_line(&log_text),
                    log.display()
                )),
                image_id: None,
            }
        }
        Action::Xtask { .. } => judge_verdict(step, &finished.stdout, &log_text, status),
    }
}

/// Reads the verdict a command printed with `--json`; without one, the
/// command failed before it could judge, and its last error line says why.
fn judge_verdict(step: &Step, stdout: &str, log_text: &str, status: ExitStatus) -> Outcome {
    let verdict: Option<Value> = serde_json::from_str(stdout).ok();
    let Some(verdict) = verdict.filter(|v| v.get("passed").is_some()) else {
        return Outcome {
            check: Check::judge(step.name, false, "no verdict", step.proves)
                .because(format!("{status}: {}", crate::process::last_line(log_text))),
            image_id: None,
        };
    };
    let passed = verdict["passed"].as_bool() == Some(true) && status.success();
    let headline = verdict["headline"].as_str().unwrap_or_default().to_owned();
    let failed = crate::checks::failed_in_json(&verdict);
    Outcome {
        check: Check::judge(step.name, passed, headline, step.proves)
            .because(output::truncate(&failed.join("; "), 400)),
        image_id: verdict["image_id"].as_str().map(str::to_owned),
    }
}

/// `N passed, N failed, N ignored` over every `test result:` line cargo printed.
pub fn test_totals(log: &str) -> Option<String> {
    let mut totals = [0u64; 3];
    let mut seen = false;
    for line in log.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        seen = true;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => totals[0] += count,
                "failed" => totals[1] += count,
                "ignored" => totals[2] += count,
                _ => {}
            }
        }
    }
    seen.then(|| {
        format!(
            "{} passed, {} failed, {} ignored",
            totals[0], totals[1], totals[2]
        )
    })
}

/// The last `lines` lines of a log.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_totals_add_up_every_test_binary() {
        let log = "running 3 tests\n\
                   test result: ok. 28 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.04s\n\
                   test result: FAILED. 4 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.05s\n";
        assert_eq!(
            test_totals(log).as_deref(),
            Some("32 passed, 1 failed, 2 ignored")
        );
        assert_eq!(test_totals("error: could not compile"), None);
    }

    fn step() -> Step {
        Step {
            name: "size-check",
            proves: "within the size budgets",
            action: Action::Xtask {
                args: vec!["size-check".into()],
                image_of: Some("image"),
            },
        }
    }

    fn exit(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn a_verdict_gives_the_headline_and_the_failed_checks() {
        let stdout = r#"{"passed": false, "headline": "33.9 MB unpacked", "image_id": "sha256:1",
            "checks": [{"name": "layers", "status": "pass"},
                       {"name": "unpacked size", "status": "fail", "actual": "3.9 MB over"}]}"#;
        let outcome = judge_verdict(&step(), stdout, "", exit(1));
        assert!(outcome.check.failed());
        assert_eq!(outcome.check.measured, "33.9 MB unpacked");
        assert_eq!(
            outcome.check.actual.as_deref(),
            Some("unpacked size: 3.9 MB over")
        );
        assert_eq!(outcome.image_id.as_deref(), Some("sha256:1"));
    }

    #[test]
    fn no_verdict_is_a_failure_with_the_commands_own_error() {
        let log = "compiling\nerror: the docker engine does not answer: Cannot connect\n";
        let outcome = judge_verdict(&step(), "", log, exit(1));
        assert!(outcome.check.failed());
        let reason = outcome.check.actual.unwrap();
        assert!(
            reason.contains("the docker engine does not answer"),
            "{reason}"
        );
    }

    #[test]
    fn a_passing_verdict_with_a_failing_exit_is_a_failure() {
        let stdout = r#"{"passed": true, "headline": "ok", "checks": []}"#;
        assert!(judge_verdict(&step(), stdout, "", exit(1)).check.failed());
        assert!(!judge_verdict(&step(), stdout, "", exit(0)).check.failed());
    }
}

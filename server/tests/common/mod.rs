//! The harness shared by the tests that run the real `server` binary: a
//! temporary directory per test, a child process that is killed when the
//! test ends (pass or fail), and its log lines as they arrive.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

pub mod api;
pub mod http;
pub mod postgres;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SERVER: &str = env!("CARGO_BIN_EXE_server");

/// Bounds every wait, so a broken server fails a test instead of hanging it.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A fresh directory, removed when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "server-test-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Lines a child printed, shared with the thread that reads them, and
/// whether the stream has ended.
#[derive(Clone, Default)]
struct Lines(Arc<(Mutex<Captured>, Condvar)>);

#[derive(Default)]
struct Captured {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    fn collect(self, stream: impl Read + Send + 'static) {
        std::thread::spawn(move || {
            let (lines, changed) = &*self.0;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().lines.push(line);
                changed.notify_all();
            }
            lines.lock().unwrap().closed = true;
            changed.notify_all();
        });
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.0.lock().unwrap().lines.clone()
    }

    /// Waits up to `timeout` for the stream to end.
    fn wait_closed(&self, timeout: Duration) {
        let (lines, changed) = &*self.0;
        let guard = lines.lock().unwrap();
        let _ = changed
            .wait_timeout_while(guard, timeout, |captured| !captured.closed)
            .unwrap();
    }

    /// The first line for which `find` returns something, waiting up to `timeout`.
    fn wait_for<T>(&self, timeout: Duration, find: impl Fn(&str) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let (lines, changed) = &*self.0;
        let mut guard = lines.lock().unwrap();
        loop {
            if let Some(found) = guard.lines.iter().find_map(|line| find(line)) {
                return Some(found);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            guard = changed.wait_timeout(guard, left).unwrap().0;
        }
    }
}

/// How to start a server: environment (nothing is inherited) and arguments.
pub struct Launch {
    dir: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// A program (with its arguments) that runs the server, e.g. `unshare`.
    wrapper: Vec<String>,
}

impl Launch {
    /// Runs in `dir` with JSON logs on an ephemeral loopback port, so tests
    /// can run side by side. The database is the default SQLite file under
    /// `dir` unless `DATABASE_URL` is set.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            env: vec![
                ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
                ("LOG_FORMAT".into(), "json".into()),
            ],
            args: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    /// Runs the server under `wrapper`, which must exec or fork it.
    pub fn wrapped_in(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|arg| (*arg).to_owned()).collect();
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(existing, _)| existing != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// Starts the server and waits for its "ready" log line.
    pub fn start(self) -> Server {
        let mut server = self.spawn();
        let ready = server.stdout.wait_for(START_TIMEOUT, |line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            (event["message"] == "ready").then_some(event)
        });
        let Some(ready) = ready else {
            let exit = server.wait_exit(Duration::from_millis(100));
            panic!(
                "server did not become ready (exit: {exit:?})\n{}",
                server.output()
            );
        };
        let addr = ready["listen_addr"]
            .as_str()
            .and_then(|addr| addr.parse().ok())
            .expect("the ready line names the listen address");
        server.addr = Some(addr);
        server
    }

    /// Starts the server without waiting for anything.
    pub fn spawn(self) -> Server {
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(SERVER);
                command
            }
            None => Command::new(SERVER),
        };
        let mut child = command
            .args(&self.args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stdout = Lines::default();
        let stderr = Lines::default();
        stdout
            .clone()
            .collect(child.stdout.take().expect("piped stdout"));
        stderr
            .clone()
            .collect(child.stderr.take().expect("piped stderr"));
        Server {
            child,
            addr: None,
            stdout,
            stderr,
            exit: None,
        }
    }
}

/// A running server, killed when dropped.
pub struct Server {
    child: Child,
    addr: Option<SocketAddr>,
    stdout: Lines,
    stderr: Lines,
    exit: Option<ExitStatus>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("server is ready")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        send_signal(self.pid(), name);
    }

    /// The exit status, if the process ends within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit {
                return Some(status);
            }
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                self.exit = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The first JSON log event whose message contains `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) -> Option<serde_json::Value> {
        self.stdout.wait_for(timeout, |line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            event["message"]
                .as_str()
                .is_some_and(|message| message.contains(text))
                .then_some(event)
        })
    }

    /// The first stdout line that satisfies `matches`.
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.stdout
            .wait_for(timeout, |line| matches(line).then(|| line.to_owned()))
    }

    /// Everything the process printed to stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// Everything the process printed to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    /// Everything the process printed so far, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout.snapshot().join("\n"),
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal by name (`TERM`, `INT`, `KILL`) to `pid` with kill(1).
pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Asserts the process exits within `timeout` and returns its status, once
/// everything it printed has been collected.
pub fn expect_exit(server: &mut Server, timeout: Duration) -> ExitStatus {
    match server.wait_exit(timeout) {
        Some(status) => {
            server.stdout.wait_closed(Duration::from_secs(1));
            server.stderr.wait_closed(Duration::from_secs(1));
            status
        }
        None => panic!(
            "server still running {} ms after it should have exited\n{}",
            timeout.as_millis(),
            server.output()
        ),
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

//! The real binary on loopback: it drains on SIGTERM, and with
//! `HANDLE_SIGTERM=false` it does not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

struct Hello {
    child: Child,
    addr: SocketAddr,
}

impl Hello {
    fn start(env: &[(&str, &str)]) -> Hello {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hello"))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first
            .strip_prefix("hello: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        // Keep reading so the child never blocks on a full pipe.
        thread::spawn(move || lines.for_each(drop));
        Hello { child, addr }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, waiting at most `bound`.
    fn wait(&mut self, bound: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < bound, "still running after {bound:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of `GET path`.
fn get(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn sigterm_turns_it_not_ready_and_lets_a_slow_request_finish() {
    let mut hello = Hello::start(&[("SHUTDOWN_DELAY", "400ms"), ("SHUTDOWN_TIMEOUT", "5s")]);
    let addr = hello.addr;
    assert_eq!(get(addr, "/readyz"), 200);
    assert_eq!(get(addr, "/hello/world"), 200);
    let slow = thread::spawn(move || get(addr, "/slow?ms=800"));
    thread::sleep(Duration::from_millis(100));
    hello.signal("TERM");
    thread::sleep(Duration::from_millis(100));
    assert_eq!(get(addr, "/readyz"), 503, "not ready during the delay");
    assert_eq!(slow.join().unwrap(), 200, "the request in flight finished");
    assert_eq!(hello.wait(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn past_the_timeout_it_exits_1() {
    let mut hello = Hello::start(&[("SHUTDOWN_TIMEOUT", "300ms")]);
    let addr = hello.addr;
    let slow = thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| get(addr, "/slow?ms=3000"));
    });
    thread::sleep(Duration::from_millis(100));
    hello.signal("TERM");
    assert_eq!(hello.wait(Duration::from_secs(5)).code(), Some(1));
    slow.join().unwrap();
}

#[test]
fn with_sigterm_handling_off_the_signal_is_not_handled() {
    let mut hello = Hello::start(&[("HANDLE_SIGTERM", "false")]);
    assert_eq!(get(hello.addr, "/livez"), 200);
    hello.signal("TERM");
    // Outside a container the kernel's default action kills it; as a
    // container's PID 1 the signal is ignored instead.
    assert_eq!(hello.wait(Duration::from_secs(5)).signal(), Some(15));
}

#[test]
fn bad_settings_exit_2_with_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env("HANDLE_SIGTERM", "maybe")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HANDLE_SIGTERM"), "{stderr}");
}

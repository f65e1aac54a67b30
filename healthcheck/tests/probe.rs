//! The real binary against real listeners on loopback.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

fn healthcheck(port: u16, path: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_healthcheck"))
        .env_clear()
        .env("HEALTHCHECK_PORT", port.to_string())
        .env("HEALTHCHECK_PATH", path)
        .env("HEALTHCHECK_TIMEOUT_MS", "500")
        .output()
        .unwrap()
}

/// Answers one request with `answer` and returns the request it read.
fn answer_once(answer: &'static str) -> (u16, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut buffer = [0; 256];
        while !request.ends_with(b"\r\n\r\n") {
            let read = stream.read(&mut buffer).unwrap();
            if read == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..read]);
        }
        stream.write_all(answer.as_bytes()).unwrap();
        String::from_utf8(request).unwrap()
    });
    (port, handle)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_2xx_is_healthy_and_the_path_is_the_one_asked() {
    let (port, server) = answer_once("HTTP/1.1 204 No Content\r\n\r\n");
    let output = healthcheck(port, "/livez");
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).starts_with("healthy: GET /livez"));
    assert!(
        server
            .join()
            .unwrap()
            .starts_with("GET /livez HTTP/1.1\r\n")
    );
}

#[test]
fn any_other_status_is_unhealthy_and_named() {
    let (port, server) = answer_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
    let output = healthcheck(port, "/health");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("GET /health"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("status 503"),
        "{}",
        stdout(&output)
    );
    server.join().unwrap();
}

#[test]
fn nothing_listening_is_unhealthy_at_once() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = healthcheck(port, "/");
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("unhealthy: cannot connect"));
}

#[test]
fn a_listener_that_never_answers_is_unhealthy_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let started = Instant::now();
    let output = healthcheck(port, "/");
    let took = started.elapsed();
    drop(listener);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("no answer"), "{}", stdout(&output));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn bad_settings_are_unhealthy_never_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_healthcheck"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "unhealthy: HEALTHCHECK_PORT is not set\n");
}

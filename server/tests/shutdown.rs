//! Graceful shutdown of the real process on SIGTERM and SIGINT.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::http::{self, Arrival};
use common::{Launch, Server, TempDir, eventually, expect_exit, send_signal};

const NOTE: &[u8] = br#"{"title": "in flight", "body": "sent in two halves, around a SIGTERM"}"#;

/// Sends the head and the first half of a note, and waits until the server
/// counts the request as in flight. Returns the connection and the rest.
fn start_upload(server: &Server) -> (TcpStream, &'static [u8]) {
    let (first, rest) = NOTE.split_at(NOTE.len() / 2);
    let upload = http::start_json_upload(server.addr(), "/api/v1/notes", NOTE.len(), first);
    // The metrics request itself is in flight too, hence 2.
    let counted = eventually(Duration::from_secs(5), || {
        http::metric(server.addr(), "http_requests_in_flight") == Some(2)
    });
    assert!(
        counted,
        "the upload never showed as in flight\n{}",
        server.output()
    );
    (upload, rest)
}

/// The process exits 0 within 5 s, having logged a complete drain.
fn expect_clean_stop(server: &mut Server) {
    let status = expect_exit(server, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.output());
    assert!(
        server
            .wait_for_log("stopped cleanly", Duration::ZERO)
            .is_some(),
        "no `stopped cleanly` line\n{}",
        server.output()
    );
}

#[test]
fn sigterm_during_an_upload_lets_it_finish_then_exits_0() {
    let dir = TempDir::new("shutdown-upload");
    let mut server = Launch::new(dir.path()).start();
    let addr = server.addr();
    let (mut upload, rest) = start_upload(&server);

    server.signal("TERM");
    let draining = server.wait_for_log("shutting down", Duration::from_secs(5));
    assert_eq!(draining.expect("a shutdown log line")["in_flight"], 1);
    assert!(
        eventually(Duration::from_secs(2), || http::refuses_connections(addr)),
        "new connections are still accepted while draining"
    );

    http::send(&mut upload, rest);
    let response = http::read_response(&mut upload).expect("a response to the upload");
    assert_eq!(response.status, 201, "{}", response.text());
    let note = response.json();

    expect_clean_stop(&mut server);

    let restarted = Launch::new(dir.path()).start();
    let path = format!("/api/v1/notes/{}", note["id"]);
    assert_eq!(http::get(restarted.addr(), &path).json(), note);
}

#[test]
fn a_connection_mid_head_is_closed_at_once_while_uploads_finish() {
    let dir = TempDir::new("shutdown-mid-head");
    let mut server = Launch::new(dir.path()).start();
    let (mut upload, rest) = start_upload(&server);
    // A head one line short: not a request yet, so nothing to wait for.
    let mut half = http::connect(server.addr());
    let head = http::head("GET", "/ready", &[]);
    http::send(&mut half, &head.as_bytes()[..head.len() - 2]);
    // The server must hold the half-sent head's connection when the signal
    // comes, or the test proves nothing: its count of open connections
    // includes the upload, the half head and the request that asks.
    assert!(
        eventually(Duration::from_secs(2), || open_connections(server.addr())
            >= 3),
        "the server never took the half-sent head's connection"
    );

    server.signal("TERM");
    assert!(
        server
            .wait_for_log("shutting down", Duration::from_secs(5))
            .is_some()
    );
    assert_eq!(
        http::wait_for_arrival(&mut half, http::IO_TIMEOUT),
        Arrival::Closed,
        "the half-sent head was answered instead of closed"
    );

    http::send(&mut upload, rest);
    let response = http::read_response(&mut upload).expect("a response to the upload");
    assert_eq!(response.status, 201, "{}", response.text());
    expect_clean_stop(&mut server);
}

#[test]
fn a_half_sent_head_alone_does_not_hold_the_shutdown() {
    let dir = TempDir::new("shutdown-half-head");
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_TIMEOUT", "30s")
        .start();
    let mut half = http::connect(server.addr());
    http::send(&mut half, b"GET /health HTTP/1.1\r\nHost: te");
    // Held by the server (it and the request that asks), or nothing is proved.
    assert!(
        eventually(Duration::from_secs(2), || open_connections(server.addr())
            >= 2),
        "the server never took the half-sent head's connection"
    );
    server.signal("TERM");
    expect_clean_stop(&mut server);
}

#[test]
fn an_idle_keep_alive_connection_does_not_delay_shutdown() {
    let dir = TempDir::new("shutdown-keepalive");
    let mut server = Launch::new(dir.path()).start();
    let mut idle = http::connect(server.addr());
    let response = http::get_on(&mut idle, "/health");
    assert_eq!(response.status, 200);
    assert_ne!(response.header("connection"), Some("close"));

    let signalled = Instant::now();
    server.signal("TERM");
    let status = expect_exit(&mut server, Duration::from_secs(5));
    let elapsed = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.output());
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    // The server closed the idle connection rather than leaving it open.
    assert_eq!(
        http::wait_for_arrival(&mut idle, http::IO_TIMEOUT),
        Arrival::Closed
    );
}

#[test]
fn a_connection_that_sent_nothing_does_not_delay_shutdown() {
    let dir = TempDir::new("shutdown-silent");
    let mut server = Launch::new(dir.path()).start();
    let _silent = http::connect(server.addr());
    assert!(
        eventually(Duration::from_secs(2), || open_connections(server.addr())
            >= 2),
        "the server never took the silent connection"
    );

    let signalled = Instant::now();
    server.signal("TERM");
    let status = expect_exit(&mut server, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.output());
    assert!(
        signalled.elapsed() < Duration::from_millis(500),
        "took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn sigint_drains_like_sigterm() {
    let dir = TempDir::new("shutdown-sigint");
    let mut server = Launch::new(dir.path()).start();
    server.signal("INT");
    let status = expect_exit(&mut server, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.output());
    let draining = server.wait_for_log("shutting down", Duration::ZERO);
    assert_eq!(draining.expect("a shutdown log line")["signal"], "SIGINT");
}

#[test]
fn a_request_that_never_completes_is_abandoned_at_the_deadline() {
    let dir = TempDir::new("shutdown-deadline");
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_TIMEOUT", "1s")
        .start();
    let (_stalled, _never_sent) = start_upload(&server);

    let signalled = Instant::now();
    server.signal("TERM");
    let status = expect_exit(&mut server, Duration::from_secs(5));
    let elapsed = signalled.elapsed();
    assert_eq!(status.code(), Some(1), "{}", server.output());
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "exited after {elapsed:?} with a 1s deadline"
    );
    let abandoned = server.wait_for_log("deadline passed", Duration::ZERO);
    assert_eq!(abandoned.expect("a deadline log line")["abandoned"], 1);
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = TempDir::new("shutdown-second");
    let mut server = Launch::new(dir.path()).start();
    let (_stalled, _never_sent) = start_upload(&server);

    server.signal("TERM");
    assert!(
        server
            .wait_for_log("shutting down", Duration::from_secs(5))
            .is_some()
    );
    let signalled = Instant::now();
    server.signal("INT");
    let status = expect_exit(&mut server, Duration::from_secs(5));
    assert!(
        signalled.elapsed() < Duration::from_millis(500),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(128 + 2), "{}", server.output());
    assert!(
        server
            .wait_for_log("second signal", Duration::ZERO)
            .is_some()
    );
}

#[test]
fn sigterm_stops_the_server_when_it_runs_as_pid_1() {
    // PID 1 of a PID namespace, as in a container: the kernel gives it no
    // default action for SIGTERM, so only an installed handler makes it stop.
    let can_unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !can_unshare {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED sigterm_stops_the_server_when_it_runs_as_pid_1: \
             `unshare --pid` is not permitted here (needs root)"
        );
        return;
    }
    let dir = TempDir::new("shutdown-pid1");
    let mut server = Launch::new(dir.path())
        .wrapped_in(&["unshare", "--pid", "--fork", "--kill-child"])
        .start();
    let children = format!("/proc/{0}/task/{0}/children", server.pid());
    let pid: u32 = std::fs::read_to_string(&children)
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .expect("the server's pid outside its namespace");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        status
            .lines()
            .any(|line| line.starts_with("NSpid:") && line.ends_with("\t1")),
        "the server is not PID 1 in its namespace:\n{status}"
    );

    send_signal(pid, "TERM");
    // unshare exits with the status of the process it ran.
    expect_clean_stop(&mut server);
}

/// The server's own count of the client connections it holds open.
fn open_connections(addr: SocketAddr) -> u64 {
    http::metric(addr, "http_connections_open").unwrap_or(0)
}

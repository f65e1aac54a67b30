//! `SHUTDOWN_DELAY` on the real process: after SIGTERM, readiness answers
//! 503 while new connections are still accepted and served; then the drain
//! proceeds as without a delay, all within `SHUTDOWN_TIMEOUT`.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Launch, TempDir, eventually, expect_exit, http};

const DELAY: Duration = Duration::from_millis(1500);

fn refuses_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
}

#[test]
fn during_the_delay_new_connections_are_served_and_readiness_is_503() {
    let dir = TempDir::new("shutdown-delay");
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_DELAY", "1500ms")
        .env("SHUTDOWN_TIMEOUT", "10s")
        .start();
    let addr = server.addr();
    assert_eq!(http::get(addr, "/ready").status, 200);

    let signalled = Instant::now();
    server.signal("TERM");
    let delaying = server
        .wait_for_log("still serving", Duration::from_secs(5))
        .expect("a log line announcing the delay");
    assert_eq!(delaying["delay_ms"], 1500);

    // Each request below opens a new connection.
    let readiness = http::get(addr, "/ready");
    assert_eq!(readiness.status, 503, "{}", readiness.text());
    assert_eq!(
        readiness.json()["checks"]["server:draining"][0]["status"],
        "fail"
    );
    assert_eq!(http::get(addr, "/health").status, 200);
    let created = http::post_json(
        addr,
        "/api/v1/notes",
        r#"{"title": "during the delay", "body": "on a new connection"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let path = format!("/api/v1/notes/{}", created.json()["id"]);
    assert_eq!(http::get(addr, &path).status, 200);
    assert!(
        signalled.elapsed() < DELAY,
        "the requests took the whole delay ({:?}): nothing was proved",
        signalled.elapsed()
    );

    // Then the drain: the listener closes and the process exits 0, not before
    // the delay has passed.
    assert!(
        eventually(Duration::from_secs(5), || refuses_connections(addr)),
        "still accepting connections long after the delay"
    );
    let status = expect_exit(&mut server, Duration::from_secs(5));
    let stopped = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.output());
    assert!(
        stopped >= DELAY,
        "exited {stopped:?} after SIGTERM, before the delay of {DELAY:?} ended"
    );
    assert!(
        server
            .wait_for_log("draining in-flight requests", Duration::ZERO)
            .is_some(),
        "{}",
        server.output()
    );
}

#[test]
fn the_timeout_bounds_the_delay_and_the_drain_together() {
    let dir = TempDir::new("shutdown-delay-deadline");
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_DELAY", "1s")
        .env("SHUTDOWN_TIMEOUT", "2s")
        .start();
    // An upload that never completes holds the drain until the deadline.
    let mut stalled = http::connect(server.addr());
    let head = http::head(
        "POST",
        "/api/v1/notes",
        &[("Content-Type", "application/json")],
        100,
    );
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(b"{\"title\":").unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        http::get(server.addr(), "/metrics")
            .text()
            .contains("\nhttp_requests_in_flight 2\n")
    }));

    let signalled = Instant::now();
    server.signal("TERM");
    let status = expect_exit(&mut server, Duration::from_secs(6));
    let elapsed = signalled.elapsed();
    assert_eq!(status.code(), Some(1), "{}", server.output());
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(2800),
        "exited {elapsed:?} after SIGTERM; SHUTDOWN_TIMEOUT=2s bounds delay and drain"
    );
}

#[test]
fn a_second_signal_during_the_delay_exits_at_once() {
    let dir = TempDir::new("shutdown-delay-second");
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_DELAY", "5s")
        .env("SHUTDOWN_TIMEOUT", "10s")
        .start();
    server.signal("TERM");
    assert!(
        server
            .wait_for_log("still serving", Duration::from_secs(5))
            .is_some()
    );
    let signalled = Instant::now();
    server.signal("TERM");
    let status = expect_exit(&mut server, Duration::from_secs(2));
    assert!(signalled.elapsed() < Duration::from_millis(500));
    assert_eq!(status.code(), Some(128 + 15), "{}", server.output());
}

#[test]
fn a_delay_as_long_as_the_timeout_is_refused() {
    let dir = TempDir::new("shutdown-delay-config");
    let mut server = Launch::new(dir.path()).env("SHUTDOWN_DELAY", "30s").spawn();
    let status = expect_exit(&mut server, Duration::from_secs(5));
    assert_eq!(status.code(), Some(2));
    let stderr = server.stderr_lines().join("\n");
    assert!(
        stderr.contains("invalid SHUTDOWN_DELAY=\"30s\"") && stderr.contains("SHUTDOWN_TIMEOUT"),
        "{stderr}"
    );
}

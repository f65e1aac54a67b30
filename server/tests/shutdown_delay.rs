//! `SHUTDOWN_DELAY` on the real process: after SIGTERM, readiness answers
//! 503 while new connections are still accepted and served; then the drain
//! proceeds as without a delay, all within `SHUTDOWN_TIMEOUT`.

mod common;

use std::time::Duration;

use common::{Launch, Server, TempDir, eventually, expect_exit, http};

const DELAYING: &str = "not ready, still serving";
const DRAINING: &str = "draining in-flight requests";

/// The log messages in the order the server wrote them.
fn messages(server: &Server) -> Vec<String> {
    server
        .stdout_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|event| event["message"].as_str().map(str::to_owned))
        .collect()
}

fn position(messages: &[String], text: &str) -> Option<usize> {
    messages.iter().position(|m| m.contains(text))
}

#[test]
fn during_the_delay_new_connections_are_served_and_readiness_is_503() {
    let dir = TempDir::new("shutdown-delay");
    // Long enough for the requests below on a busy machine: had the delay
    // ended first, the listener would be closed and they would fail.
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_DELAY", "5s")
        .env("SHUTDOWN_TIMEOUT", "20s")
        .start();
    let addr = server.addr();
    assert_eq!(http::get(addr, "/ready").status, 200);

    server.signal("TERM");
    let delaying = server
        .wait_for_log(DELAYING, Duration::from_secs(5))
        .expect("a log line announcing the delay");
    assert_eq!(delaying["delay_ms"], 5000);

    // Each request below opens a new connection, after SIGTERM.
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

    // Then the drain as without a delay: the listener closes, exit 0.
    assert!(
        eventually(Duration::from_secs(15), || http::refuses_connections(addr)),
        "still accepting connections long after the delay"
    );
    let status = expect_exit(&mut server, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", server.output());
    let messages = messages(&server);
    let (Some(delayed), Some(drained)) =
        (position(&messages, DELAYING), position(&messages, DRAINING))
    else {
        panic!("no delay or no drain logged: {messages:?}");
    };
    assert!(delayed < drained, "{messages:?}");
    assert!(
        position(&messages, "stopped cleanly").is_some(),
        "{messages:?}"
    );
}

#[test]
fn the_timeout_still_ends_a_shutdown_that_has_a_delay() {
    let dir = TempDir::new("shutdown-delay-deadline");
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_DELAY", "1s")
        .env("SHUTDOWN_TIMEOUT", "2s")
        .start();
    // An upload that never completes holds the drain until the deadline.
    let _stalled = http::start_json_upload(server.addr(), "/api/v1/notes", 100, b"{\"title\":");
    assert!(eventually(Duration::from_secs(5), || {
        http::metric(server.addr(), "http_requests_in_flight") == Some(2)
    }));

    server.signal("TERM");
    let status = expect_exit(&mut server, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", server.output());
    let messages = messages(&server);
    let order: Vec<Option<usize>> = [DELAYING, DRAINING, "deadline passed"]
        .iter()
        .map(|text| position(&messages, text))
        .collect();
    assert!(
        order.iter().all(Option::is_some) && order.is_sorted(),
        "expected the delay, the drain, then the deadline: {messages:?}"
    );
    let deadline = server
        .wait_for_log("deadline passed", Duration::ZERO)
        .expect("the deadline's log line");
    assert_eq!(deadline["abandoned"], 1, "{deadline}");
    assert_eq!(deadline["timeout_ms"], 2000, "{deadline}");
}

#[test]
fn a_second_signal_during_the_delay_exits_at_once() {
    let dir = TempDir::new("shutdown-delay-second");
    let mut server = Launch::new(dir.path())
        .env("SHUTDOWN_DELAY", "30s")
        .env("SHUTDOWN_TIMEOUT", "60s")
        .start();
    server.signal("TERM");
    assert!(
        server
            .wait_for_log(DELAYING, Duration::from_secs(5))
            .is_some()
    );
    server.signal("TERM");
    // Far less than the delay: only the second signal can end it this soon.
    let status = expect_exit(&mut server, Duration::from_secs(10));
    assert_eq!(status.code(), Some(128 + 15), "{}", server.output());
    let messages = messages(&server);
    assert!(
        position(&messages, "second signal").is_some(),
        "{messages:?}"
    );
    assert!(position(&messages, DRAINING).is_none(), "{messages:?}");
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

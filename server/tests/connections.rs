//! Every wait on a client is bounded: a head, a body, an idle keep-alive
//! connection, the number of connections, the size of a head, and running
//! out of file descriptors.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::http::{self, Arrival};
use common::{Launch, Server, TempDir, eventually};

/// Short, so that a test waits little for the server to give up; the
/// client's own read timeout (`http::IO_TIMEOUT`) is far longer.
const SHORT: &str = "300ms";

#[test]
fn a_head_not_sent_in_time_closes_the_connection() {
    let dir = TempDir::new("conn-head-timeout");
    let server = Launch::new(dir.path())
        .env("HEADER_READ_TIMEOUT", SHORT)
        .start();
    let mut silent = http::connect(server.addr());
    let mut partial = http::connect(server.addr());
    http::send(&mut partial, b"GET /health HTTP/1.1\r\nHo");
    assert_eq!(
        http::wait_for_arrival(&mut silent, http::IO_TIMEOUT),
        Arrival::Closed,
        "a silent connection was held"
    );
    assert_eq!(
        http::wait_for_arrival(&mut partial, http::IO_TIMEOUT),
        Arrival::Closed,
        "a half-sent head was held"
    );
    assert_eq!(http::get(server.addr(), "/health").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let dir = TempDir::new("conn-idle-timeout");
    let server = Launch::new(dir.path()).env("IDLE_TIMEOUT", SHORT).start();
    let mut kept = http::connect(server.addr());
    assert_eq!(http::get_on(&mut kept, "/health").status, 200);
    assert_eq!(
        http::wait_for_arrival(&mut kept, http::IO_TIMEOUT),
        Arrival::Closed,
        "an idle connection was held"
    );
}

#[test]
fn a_stalled_body_is_answered_408() {
    let dir = TempDir::new("conn-body-timeout");
    let server = Launch::new(dir.path())
        .env("BODY_READ_TIMEOUT", SHORT)
        .start();
    let mut upload = http::start_json_upload(server.addr(), "/api/v1/notes", 100, br#"{"title": "#);
    let response = http::read_response(&mut upload).expect("an answer to a stalled body");
    assert_eq!(response.status, 408, "{}", response.text());
    assert!(response.json()["error"].is_string());
    assert_eq!(http::get(server.addr(), "/health").status, 200);
}

#[test]
fn beyond_max_connections_new_ones_wait_while_open_ones_are_served() {
    let dir = TempDir::new("conn-max");
    let server = Launch::new(dir.path()).env("MAX_CONNECTIONS", "2").start();
    let mut first = http::connect(server.addr());
    let mut second = http::connect(server.addr());
    assert_eq!(http::get_on(&mut first, "/health").status, 200);
    assert_eq!(http::get_on(&mut second, "/health").status, 200);

    let mut third = http::connect(server.addr());
    http::send(&mut third, http::head("GET", "/health", &[]).as_bytes());
    let waited = http::wait_for_arrival(&mut third, Duration::from_millis(500));
    assert_eq!(
        waited,
        Arrival::Silence,
        "a connection over the limit was served: {waited:?}"
    );

    let metrics = http::get_on(&mut first, "/metrics");
    assert!(
        metrics.text().contains("\nhttp_connections_open 2\n"),
        "{}",
        metrics.text()
    );

    drop(second);
    let answer = http::read_response(&mut third).expect("served once a slot is free");
    assert_eq!(answer.status, 200);
}

#[test]
fn a_head_over_max_header_bytes_is_answered_431_and_counted() {
    let dir = TempDir::new("conn-header-bytes");
    let server = Launch::new(dir.path())
        .env("MAX_HEADER_BYTES", "8192")
        .start();
    let big = "x".repeat(10_000);
    let mut stream = http::connect(server.addr());
    http::send(
        &mut stream,
        http::head("GET", "/health", &[("X-Big", &big)]).as_bytes(),
    );
    let refused = http::read_response(&mut stream).expect("an answer to a large head");
    assert_eq!(refused.status, 431);
    // Counted when hyper ends the connection, just after the answer.
    let counted = r#"http_requests_total{route="unmatched",method="OTHER",status="431"} 1"#;
    assert!(
        eventually(Duration::from_secs(5), || http::get(
            server.addr(),
            "/metrics"
        )
        .text()
        .contains(counted)),
        "{}",
        http::get(server.addr(), "/metrics").text()
    );
}

fn connections_until_refused(server: &Server, most: usize) -> Vec<TcpStream> {
    (0..most)
        .map_while(|_| http::try_connect(server.addr()).ok())
        .collect()
}

#[test]
fn out_of_file_descriptors_the_server_says_so_serves_what_it_has_and_recovers() {
    let dir = TempDir::new("conn-fd");
    let server = Launch::new(dir.path())
        .wrapped_in(&["prlimit", "--nofile=64:64"])
        .start();
    let mut kept = http::connect(server.addr());
    assert_eq!(http::get_on(&mut kept, "/health").status, 200);

    // More than the server has descriptors for; the rest wait in the backlog.
    let flood = connections_until_refused(&server, 100);
    assert!(
        server
            .wait_for_log("out of file descriptors", Duration::from_secs(10))
            .is_some(),
        "running out of descriptors was not logged\n{}",
        server.output()
    );
    assert_eq!(http::get_on(&mut kept, "/health").status, 200);

    drop(flood);
    assert!(
        server
            .wait_for_log("accepting connections again", Duration::from_secs(10))
            .is_some(),
        "{}",
        server.output()
    );
    assert_eq!(http::get(server.addr(), "/health").status, 200);
}

//! Every wait on a client is bounded: a head, a body, an idle keep-alive
//! connection, the number of connections, the size of a head, and running
//! out of file descriptors.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Launch, Server, TempDir, eventually, http};

/// Short, so that a test waits little for the server to give up; the
/// client's own read timeout (`http::IO_TIMEOUT`) is far longer.
const SHORT: &str = "300ms";

/// True when the server closed the connection (end of stream or reset)
/// before the client's read timeout.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    match stream.read(&mut [0; 256]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
        ),
    }
}

fn get_on(stream: &mut TcpStream, path: &str) -> http::Response {
    stream
        .write_all(http::head("GET", path, &[], 0).as_bytes())
        .unwrap();
    http::read_response(stream).unwrap_or_else(|error| panic!("GET {path}: {error}"))
}

#[test]
fn a_head_not_sent_in_time_closes_the_connection() {
    let dir = TempDir::new("conn-head-timeout");
    let server = Launch::new(dir.path())
        .env("HEADER_READ_TIMEOUT", SHORT)
        .start();
    let mut silent = http::connect(server.addr());
    let mut partial = http::connect(server.addr());
    partial.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    assert!(
        closed_by_server(&mut silent),
        "a silent connection was held"
    );
    assert!(closed_by_server(&mut partial), "a half-sent head was held");
    assert_eq!(http::get(server.addr(), "/health").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let dir = TempDir::new("conn-idle-timeout");
    let server = Launch::new(dir.path()).env("IDLE_TIMEOUT", SHORT).start();
    let mut kept = http::connect(server.addr());
    assert_eq!(get_on(&mut kept, "/health").status, 200);
    assert!(closed_by_server(&mut kept), "an idle connection was held");
}

#[test]
fn a_stalled_body_is_answered_408() {
    let dir = TempDir::new("conn-body-timeout");
    let server = Launch::new(dir.path())
        .env("BODY_READ_TIMEOUT", SHORT)
        .start();
    let mut upload = http::connect(server.addr());
    let head = http::head(
        "POST",
        "/api/v1/notes",
        &[("Content-Type", "application/json")],
        100,
    );
    upload.write_all(head.as_bytes()).unwrap();
    upload.write_all(br#"{"title": "#).unwrap();
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
    assert_eq!(get_on(&mut first, "/health").status, 200);
    assert_eq!(get_on(&mut second, "/health").status, 200);

    let mut third = http::connect(server.addr());
    third
        .write_all(http::head("GET", "/health", &[], 0).as_bytes())
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let waited = third.read(&mut [0; 64]);
    assert!(
        waited.as_ref().is_err_and(|error| matches!(
            error.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        )),
        "a connection over the limit was served: {waited:?}"
    );

    let metrics = get_on(&mut first, "/metrics");
    assert!(
        metrics.text().contains("\nhttp_connections_open 2\n"),
        "{}",
        metrics.text()
    );

    drop(second);
    third.set_read_timeout(Some(http::IO_TIMEOUT)).unwrap();
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
    stream
        .write_all(http::head("GET", "/health", &[("X-Big", &big)], 0).as_bytes())
        .unwrap();
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
        .map_while(|_| TcpStream::connect_timeout(&server.addr(), http::IO_TIMEOUT).ok())
        .collect()
}

#[test]
fn out_of_file_descriptors_the_server_says_so_serves_what_it_has_and_recovers() {
    let dir = TempDir::new("conn-fd");
    let server = Launch::new(dir.path())
        .wrapped_in(&["prlimit", "--nofile=64:64"])
        .start();
    let mut kept = http::connect(server.addr());
    assert_eq!(get_on(&mut kept, "/health").status, 200);

    // More than the server has descriptors for; the rest wait in the backlog.
    let flood = connections_until_refused(&server, 100);
    assert!(
        server
            .wait_for_log("out of file descriptors", Duration::from_secs(10))
            .is_some(),
        "running out of descriptors was not logged\n{}",
        server.output()
    );
    assert_eq!(get_on(&mut kept, "/health").status, 200);

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

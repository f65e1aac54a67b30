//! Liveness, readiness, metrics, the start-up line and `--health-check`.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Launch, SERVER, TempDir, http};

#[test]
fn health_passes_as_health_json() {
    let dir = TempDir::new("obs-health");
    let server = Launch::new(dir.path()).start();
    let response = http::get(server.addr(), "/health");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/health+json")
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["status"], "pass");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn ready_passes_with_a_timed_database_check() {
    let dir = TempDir::new("obs-ready");
    let server = Launch::new(dir.path()).start();
    let response = http::get(server.addr(), "/ready");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/health+json")
    );
    let body = response.json();
    assert_eq!(body["status"], "pass");
    let check = &body["checks"]["database:responseTime"][0];
    assert_eq!(check["status"], "pass");
    assert_eq!(check["componentId"], "sqlite");
    assert_eq!(check["observedUnit"], "ms");
    assert!(check["observedValue"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert_eq!(body["checks"]["server:draining"][0]["status"], "pass");
}

#[test]
fn metrics_count_requests_by_route_template_and_status() {
    let dir = TempDir::new("obs-metrics");
    let server = Launch::new(dir.path()).start();
    let addr = server.addr();
    http::get(addr, "/health");
    http::get(addr, "/api/v1/notes/1");
    http::get(addr, "/api/v1/notes/2");
    http::get(addr, "/no/such/path");

    let response = http::get(addr, "/metrics");
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|kind| kind.starts_with("text/plain; version=0.0.4"))
    );
    let text = response.text();
    for expected in [
        "http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 1\n",
        "http_requests_total{route=\"/api/v1/notes/{id}\",method=\"GET\",status=\"404\"} 2\n",
        "http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n",
        "# TYPE http_requests_in_flight gauge\n",
        // This very request is in flight while the page is rendered.
        "http_requests_in_flight 1\n",
        "# TYPE http_request_duration_seconds histogram\n",
        "http_request_duration_seconds_count{route=\"/api/v1/notes/{id}\"} 2\n",
        "http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 1\n",
        &format!(
            "server_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn the_ready_line_reports_version_address_database_settings_and_start_time() {
    let dir = TempDir::new("obs-startup");
    let server = Launch::new(dir.path()).start();
    let ready = server
        .wait_for_log("ready", Duration::ZERO)
        .expect("a ready line");
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(ready["listen_addr"], server.addr().to_string());
    assert_eq!(ready["database"], "sqlite");
    assert_eq!(ready["db_pool_size"], 5);
    assert_eq!(ready["body_limit"], 65536);
    assert_eq!(ready["shutdown_timeout_ms"], 30000);
    assert!(ready["startup_ms"].as_f64().is_some_and(|ms| ms > 0.0));
}

#[test]
fn text_logs_are_the_default() {
    let dir = TempDir::new("obs-text");
    let server = Launch::new(dir.path()).env("LOG_FORMAT", "text").spawn();
    let line = server
        .wait_for_line(common::START_TIMEOUT, |line| line.contains("ready"))
        .unwrap_or_else(|| panic!("no ready line\n{}", server.output()));
    assert!(
        line.contains(" INFO ") && line.contains("database=\"sqlite\""),
        "{line}"
    );
    assert!(!line.starts_with('{'), "{line}");
}

fn health_check(listen_addr: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let output = Command::new(SERVER)
        .arg("--health-check")
        .env_clear()
        .env("LISTEN_ADDR", listen_addr)
        .output()
        .expect("run the health check");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text, started.elapsed())
}

#[test]
fn health_check_flag_exits_0_for_a_live_server() {
    let dir = TempDir::new("obs-probe-ok");
    let server = Launch::new(dir.path()).start();
    let (code, text, _) = health_check(&format!("0.0.0.0:{}", server.addr().port()));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("healthy:"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn health_check_flag_exits_1_quickly_when_nothing_listens() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().expect("its address").port()
    };
    let (code, text, elapsed) = health_check(&format!("127.0.0.1:{port}"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("unhealthy: cannot connect"), "{text}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn health_check_flag_gives_up_after_two_seconds_on_a_silent_listener() {
    // Accepts connections (the kernel does, from the backlog) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("its address").port();
    let (code, text, elapsed) = health_check(&format!("127.0.0.1:{port}"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("unhealthy: no answer"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

/// The one access log line for the request with this id.
fn access_line(server: &common::Server, request_id: &str) -> serde_json::Value {
    server
        .wait_for_line(Duration::from_secs(5), |line| {
            line.contains(r#""message":"request""#) && line.contains(request_id)
        })
        .and_then(|line| serde_json::from_str(&line).ok())
        .unwrap_or_else(|| panic!("no access line for {request_id}\n{}", server.output()))
}

#[test]
fn each_request_gets_one_access_line_with_its_request_id_echoed() {
    let dir = TempDir::new("obs-access");
    let server = Launch::new(dir.path()).start();
    let given = http::request(
        server.addr(),
        "GET",
        "/api/v1/notes/42",
        &[("X-Request-Id", "client-id-1")],
        b"",
    );
    assert_eq!(given.header("x-request-id"), Some("client-id-1"));
    let line = access_line(&server, "client-id-1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/api/v1/notes/{id}");
    assert_eq!(line["status"], 404);
    assert_eq!(line["bytes"], given.body.len());
    assert!(line["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0));

    let generated = http::get(server.addr(), "/health");
    let id = generated
        .header("x-request-id")
        .expect("a generated request id")
        .to_owned();
    assert_eq!(access_line(&server, &id)["route"], "/health");
}

#[test]
fn request_data_cannot_forge_a_log_line() {
    let dir = TempDir::new("obs-forge");
    // Text logs, where a forged line would be easiest; the harness reads
    // the address only from JSON, so the port is chosen here.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap();
    let server = Launch::new(dir.path())
        .env("LOG_FORMAT", "text")
        .env("LISTEN_ADDR", &addr.to_string())
        .spawn();
    assert!(
        server
            .wait_for_line(common::START_TIMEOUT, |line| line.contains("ready"))
            .is_some(),
        "{}",
        server.output()
    );
    let forged = r#"x" level=ERROR message="forged"#;
    let response = http::request(
        addr,
        "GET",
        "/api/v1/notes/%0A2025-01-01T00:00:00Z%20ERROR%20forged",
        &[("X-Request-Id", forged)],
        b"",
    );
    let echoed = response.header("x-request-id").expect("a request id");
    assert_ne!(echoed, forged, "a forged id was taken");
    let line = server
        .wait_for_line(Duration::from_secs(5), |line| line.contains(echoed))
        .expect("an access line");
    assert!(!line.contains("forged"), "{line}");
    assert!(
        server
            .stdout_lines()
            .iter()
            .all(|line| !line.contains("forged")),
        "{}",
        server.output()
    );
}

//! The same API and readiness checks against a real PostgreSQL server.
//! Needs Debian's `postgresql` package (`cargo xtask setup`); fails without
//! it unless `SERVER_TEST_SKIP_POSTGRES=1`.

mod common;

use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{Launch, TempDir, api, eventually, http};

#[test]
fn notes_api_works_against_postgres() {
    let Some(postgres) = Postgres::start("pg-api") else {
        return;
    };
    let dir = TempDir::new("pg-api-server");
    let server = Launch::new(dir.path())
        .env("DATABASE_URL", &postgres.url())
        .env("BODY_LIMIT", &api::BODY_LIMIT.to_string())
        .env("RESPONSE_LIMIT", &api::RESPONSE_LIMIT.to_string())
        .start();
    let ready_line = server
        .wait_for_log("ready", Duration::ZERO)
        .expect("a ready line");
    assert_eq!(ready_line["database"], "postgres");

    api::notes_can_be_created_read_listed_and_deleted(server.addr());
    api::bad_requests_get_json_errors_and_the_server_keeps_serving(server.addr());
    api::oversized_uploads_are_refused_before_their_body_is_read(server.addr());
    api::pages_stay_within_the_response_limit(server.addr());

    let ready = http::get(server.addr(), "/ready");
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(
        ready.json()["checks"]["database:responseTime"][0]["componentId"],
        "postgres"
    );
    assert!(
        !dir.path().join("data").exists(),
        "no SQLite file with PostgreSQL"
    );
}

/// One readiness probe, which must answer within its own short timeout
/// whatever the database does.
fn ready_status(server: &common::Server) -> u16 {
    let started = Instant::now();
    let response = http::get(server.addr(), "/ready");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "/ready took {:?}",
        started.elapsed()
    );
    response.status
}

#[test]
fn readiness_follows_postgres_availability() {
    let Some(postgres) = Postgres::start("pg-ready") else {
        return;
    };
    let dir = TempDir::new("pg-ready-server");
    let server = Launch::new(dir.path())
        .env("DATABASE_URL", &postgres.url())
        .start();
    assert_eq!(ready_status(&server), 200);

    postgres.stop();
    assert!(
        eventually(Duration::from_secs(10), || ready_status(&server) == 503),
        "readiness stayed up with the database down\n{}",
        server.output()
    );
    let body = http::get(server.addr(), "/ready").json();
    assert_eq!(body["status"], "fail");
    assert_eq!(body["checks"]["database:responseTime"][0]["status"], "fail");
    // Liveness does not depend on the database.
    assert_eq!(http::get(server.addr(), "/health").status, 200);
    // A request that needs the database is refused as unavailable.
    let refused = http::get(server.addr(), "/api/v1/notes/1");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.json()["error"].is_string());

    postgres.start_again();
    assert!(
        eventually(Duration::from_secs(15), || ready_status(&server) == 200),
        "readiness did not recover with the database back\n{}",
        server.output()
    );
    let created = http::post_json(
        server.addr(),
        "/api/v1/notes",
        r#"{"title":"back","body":""}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
}

//! The same API and readiness checks against a real PostgreSQL server.
//! Needs Debian's `postgresql` package (`cargo xtask setup`); fails without
//! it unless `SERVER_TEST_SKIP_POSTGRES=1`.

mod common;

use std::io::Write;
use std::process::Stdio;
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

/// A query cut off by an administrator (57P01, as `pg_terminate_backend`
/// and a fast shutdown send) is the database being unavailable: 503, not
/// 500. Meanwhile `/metrics` shows the request waiting for the pool.
#[test]
fn an_administrator_shutdown_mid_query_is_503_and_the_pool_shows_its_waiter() {
    let Some(postgres) = Postgres::start("pg-admin") else {
        return;
    };
    let dir = TempDir::new("pg-admin-server");
    let server = Launch::new(dir.path())
        .env("DATABASE_URL", &postgres.url())
        .env("DB_POOL_SIZE", "1")
        .start();
    assert_eq!(
        http::metric(server.addr(), "db_pool_max_connections"),
        Some(1)
    );

    // Holds a lock on the notes, so that the server's query waits inside
    // PostgreSQL, holding the pool's only connection.
    let mut locker = postgres
        .psql()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start psql");
    let mut locker_input = locker.stdin.take().expect("psql's stdin");
    locker_input
        .write_all(b"BEGIN; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE; SELECT 1;\n")
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            postgres.sql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND relation = 'notes'::regclass") == "1"
        }),
        "the lock was never taken"
    );

    let addr = server.addr();
    let blocked = std::thread::spawn(move || http::get(addr, "/api/v1/notes/1"));
    assert!(
        eventually(Duration::from_secs(10), || {
            postgres.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                == "1"
        }),
        "the server's query never waited on the lock"
    );
    let waiting = std::thread::spawn(move || http::get(addr, "/api/v1/notes/2"));
    assert!(
        eventually(Duration::from_secs(4), || http::metric(
            server.addr(),
            "db_pool_waiting"
        ) == Some(1)),
        "the waiting request is not on /metrics\n{}",
        http::get(server.addr(), "/metrics").text()
    );

    postgres.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
    );
    let cut_off = blocked.join().expect("the blocked request");
    assert_eq!(cut_off.status, 503, "{}", cut_off.text());
    assert!(cut_off.json()["error"].is_string());

    drop(locker_input);
    let _ = locker.wait();
    let after = waiting.join().expect("the waiting request");
    assert!(matches!(after.status, 404 | 503), "{}", after.text());
    assert_eq!(http::get(server.addr(), "/api/v1/notes/1").status, 404);
}

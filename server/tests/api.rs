//! The notes API over the default SQLite database.

mod common;

use common::{Launch, TempDir, api, http};

#[test]
fn notes_can_be_created_read_listed_and_deleted() {
    let dir = TempDir::new("api-crud");
    let server = Launch::new(dir.path()).start();
    api::notes_can_be_created_read_listed_and_deleted(server.addr());
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let dir = TempDir::new("api-bad");
    let server = Launch::new(dir.path())
        .env("BODY_LIMIT", &api::BODY_LIMIT.to_string())
        .start();
    api::bad_requests_get_json_errors_and_the_server_keeps_serving(server.addr());
}

#[test]
fn oversized_uploads_are_refused_before_their_body_is_read() {
    let dir = TempDir::new("api-oversized");
    let server = Launch::new(dir.path())
        .env("BODY_LIMIT", &api::BODY_LIMIT.to_string())
        .start();
    api::oversized_uploads_are_refused_before_their_body_is_read(server.addr());
}

#[test]
fn pages_stay_within_the_response_limit() {
    let dir = TempDir::new("api-pages");
    let server = Launch::new(dir.path())
        .env("BODY_LIMIT", &api::BODY_LIMIT.to_string())
        .env("RESPONSE_LIMIT", &api::RESPONSE_LIMIT.to_string())
        .start();
    api::pages_stay_within_the_response_limit(server.addr());
}

#[test]
fn the_default_database_is_created_under_the_working_directory() {
    let dir = TempDir::new("api-default-db");
    let server = Launch::new(dir.path()).start();
    assert_eq!(
        http::post_json(
            server.addr(),
            "/api/v1/notes",
            r#"{"title":"t","body":"b"}"#
        )
        .status,
        201
    );
    assert!(dir.path().join("data/server.db").is_file());
}

#[test]
fn notes_survive_a_restart() {
    let dir = TempDir::new("api-restart");
    let created = {
        let server = Launch::new(dir.path()).start();
        http::post_json(
            server.addr(),
            "/api/v1/notes",
            r#"{"title":"kept","body":"b"}"#,
        )
        .json()
    };
    let server = Launch::new(dir.path()).start();
    let path = format!("/api/v1/notes/{}", created["id"]);
    assert_eq!(http::get(server.addr(), &path).json(), created);
}

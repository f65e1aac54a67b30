//! Checks of the notes API that every database must pass, SQLite and
//! PostgreSQL alike.

use std::net::SocketAddr;

use super::http::{self, Response};

/// The body limit the API checks start their servers with.
pub const BODY_LIMIT: usize = 1024;

fn create(addr: SocketAddr, title: &str, body: &str) -> serde_json::Value {
    let payload = serde_json::json!({ "title": title, "body": body }).to_string();
    let response = http::post_json(addr, "/api/v1/notes", &payload);
    assert_eq!(response.status, 201, "create: {}", response.text());
    response.json()
}

pub fn notes_can_be_created_read_listed_and_deleted(addr: SocketAddr) {
    let payload = r#"{"title": "first", "body": "hello"}"#;
    let created = http::post_json(addr, "/api/v1/notes", payload);
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("content-type"), Some("application/json"));
    let note = created.json();
    let id = note["id"]
        .as_i64()
        .expect("a created note has a numeric id");
    assert_eq!(note["title"], "first");
    assert_eq!(note["body"], "hello");
    assert!(
        note["created_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    let location = format!("/api/v1/notes/{id}");
    assert_eq!(created.header("location"), Some(location.as_str()));

    let fetched = http::get(addr, &location);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), note);

    let second = create(addr, "second", "");
    let third = create(addr, "third", "ü ✓ \"quoted\"");
    assert_eq!(third["body"], "ü ✓ \"quoted\"");

    let page = http::get(addr, "/api/v1/notes?limit=2").json();
    assert_eq!(page["notes"], serde_json::json!([note, second]));
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["next_offset"], 2);
    let last = http::get(addr, "/api/v1/notes?limit=2&offset=2").json();
    assert_eq!(last["notes"], serde_json::json!([third]));
    assert_eq!(last["next_offset"], serde_json::Value::Null);
    let default_page = http::get(addr, "/api/v1/notes").json();
    assert_eq!(default_page["limit"], 20);
    assert_eq!(default_page["notes"].as_array().map(Vec::len), Some(3));

    let deleted = http::delete(addr, &location);
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    assert_eq!(http::get(addr, &location).status, 404);
    assert_eq!(http::delete(addr, &location).status, 404);
}

/// One bad request: what it is, the status it must get, and the request.
struct BadRequest {
    case: &'static str,
    status: u16,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &'static str,
}

const BAD_REQUESTS: &[BadRequest] = &[
    BadRequest {
        case: "malformed JSON",
        status: 400,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: r#"{"title": "#,
    },
    BadRequest {
        case: "a field of the wrong type",
        status: 422,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: r#"{"title": 5, "body": "x"}"#,
    },
    BadRequest {
        case: "a missing field",
        status: 422,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: r#"{"title": "no body"}"#,
    },
    BadRequest {
        case: "an empty title",
        status: 422,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: r#"{"title": " ", "body": "x"}"#,
    },
    BadRequest {
        case: "a wrong content type",
        status: 415,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("text/plain"),
        body: r#"{"title": "t", "body": "b"}"#,
    },
    BadRequest {
        case: "no content type",
        status: 415,
        method: "POST",
        path: "/api/v1/notes",
        content_type: None,
        body: r#"{"title": "t", "body": "b"}"#,
    },
    BadRequest {
        case: "an unknown id",
        status: 404,
        method: "GET",
        path: "/api/v1/notes/987654321",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "a non-numeric id",
        status: 400,
        method: "GET",
        path: "/api/v1/notes/abc",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "deleting an unknown id",
        status: 404,
        method: "DELETE",
        path: "/api/v1/notes/987654321",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "a page size over the maximum",
        status: 400,
        method: "GET",
        path: "/api/v1/notes?limit=1000",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "a zero page size",
        status: 400,
        method: "GET",
        path: "/api/v1/notes?limit=0",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "a page size that is not a number",
        status: 400,
        method: "GET",
        path: "/api/v1/notes?limit=many",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "a page size that overflows",
        status: 400,
        method: "GET",
        path: "/api/v1/notes?limit=99999999999999999999",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "a negative offset",
        status: 400,
        method: "GET",
        path: "/api/v1/notes?offset=-1",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "an unknown route",
        status: 404,
        method: "GET",
        path: "/api/v2/everything",
        content_type: None,
        body: "",
    },
    BadRequest {
        case: "a method the route does not have",
        status: 405,
        method: "PUT",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: "{}",
    },
];

fn send(addr: SocketAddr, request: &BadRequest, body: &str) -> Response {
    let headers: Vec<(&str, &str)> = request
        .content_type
        .map(|kind| ("Content-Type", kind))
        .into_iter()
        .collect();
    http::request(
        addr,
        request.method,
        request.path,
        &headers,
        body.as_bytes(),
    )
}

/// Each bad request gets its own 4xx with a JSON `{"error": ...}` body, and
/// the server keeps serving afterwards. Start the server with [`BODY_LIMIT`].
pub fn bad_requests_get_json_errors_and_the_server_keeps_serving(addr: SocketAddr) {
    let too_large = BadRequest {
        case: "a body over the limit",
        status: 413,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: "",
    };
    let oversized = format!(
        r#"{{"title": "big", "body": "{}"}}"#,
        "x".repeat(BODY_LIMIT * 2)
    );
    let responses = BAD_REQUESTS
        .iter()
        .map(|request| (request, send(addr, request, request.body)))
        .chain([(&too_large, send(addr, &too_large, &oversized))]);
    for (request, response) in responses {
        let case = request.case;
        assert_eq!(
            response.status,
            request.status,
            "{case}: {}",
            response.text()
        );
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{case}"
        );
        let error = response.json()["error"].clone();
        assert!(
            error.as_str().is_some_and(|text| !text.is_empty()),
            "{case}: no error message in {}",
            response.text()
        );
    }

    assert_eq!(http::get(addr, "/health").status, 200);
    create(addr, "still serving", "after all that");
}

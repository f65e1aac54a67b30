//! Checks of the notes API that every database must pass, SQLite and
//! PostgreSQL alike.

use std::io::Write;
use std::net::SocketAddr;

use super::http::{self, Response};

/// The body limit the API checks start their servers with.
pub const BODY_LIMIT: usize = 1024;

/// The page limit the API checks start their servers with: the smallest
/// allowed, so that a few notes fill a page.
pub const RESPONSE_LIMIT: usize = 1024;

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
        case: "a title of only a zero-width space",
        status: 422,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: r#"{"title": "\u200b", "body": "x"}"#,
    },
    BadRequest {
        case: "a NUL in the title",
        status: 422,
        method: "POST",
        path: "/api/v1/notes",
        content_type: Some("application/json"),
        body: r#"{"title": "a\u0000b", "body": "x"}"#,
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

fn assert_json_error(response: &Response, status: u16, case: &str) {
    assert_eq!(response.status, status, "{case}: {}", response.text());
    assert!(
        response.json()["error"].is_string(),
        "{case}: no JSON error in {}",
        response.text()
    );
}

/// A declared length over the limit is answered `413` at once: no waiting
/// for a body, no `100 Continue`. A chunked body is cut at the limit.
/// Start the server with [`BODY_LIMIT`].
pub fn oversized_uploads_are_refused_before_their_body_is_read(addr: SocketAddr) {
    let huge = "1000000000";
    for (case, expect) in [
        ("no body sent", None),
        ("100-continue", Some("100-continue")),
    ] {
        let mut stream = http::connect(addr);
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Content-Length", huge),
        ];
        headers.extend(expect.map(|value| ("Expect", value)));
        http::send(
            &mut stream,
            http::head("POST", "/api/v1/notes", &headers).as_bytes(),
        );
        let response = http::read_response(&mut stream)
            .unwrap_or_else(|error| panic!("{case}: no answer before the body: {error}"));
        assert_json_error(&response, 413, case);
    }

    let mut stream = http::connect(addr);
    let head = http::head(
        "POST",
        "/api/v1/notes",
        &[
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    http::send(&mut stream, head.as_bytes());
    let chunk = http::chunk("x".repeat(BODY_LIMIT).as_bytes());
    // Twice the limit; the server may answer and stop reading before the
    // end, so write errors are expected and ignored.
    for _ in 0..2 {
        let _ = stream.write_all(&chunk);
    }
    let _ = stream.write_all(http::LAST_CHUNK);
    let response =
        http::read_response(&mut stream).expect("an answer to a chunked body over the limit");
    assert_json_error(&response, 413, "chunked body over the limit");
}

/// Counts the notes by paging through them all.
fn all_note_ids(addr: SocketAddr) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut offset = serde_json::Value::from(0);
    // Bounded: far more pages than any test creates.
    for _ in 0..1000 {
        let page = http::get(addr, &format!("/api/v1/notes?limit=100&offset={offset}"));
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(
            page.body.len() <= RESPONSE_LIMIT,
            "a page of {} bytes, over RESPONSE_LIMIT {RESPONSE_LIMIT}",
            page.body.len()
        );
        let page = page.json();
        let notes = page["notes"].as_array().expect("a page has notes");
        ids.extend(notes.iter().filter_map(|note| note["id"].as_i64()));
        if page["next_offset"].is_null() {
            return ids;
        }
        assert!(!notes.is_empty(), "an empty page that is not the last");
        let expected_next = page["offset"].as_i64().unwrap() + i64::try_from(notes.len()).unwrap();
        assert_eq!(page["next_offset"], expected_next);
        offset = page["next_offset"].clone();
    }
    panic!("paging never ended");
}

/// Pages never exceed the response limit: they hold fewer notes and say
/// where the next page starts; every note is reached exactly once; a last
/// page that is exactly full ends the list; a note no page could hold is
/// refused when written. Start the server with [`BODY_LIMIT`] and
/// [`RESPONSE_LIMIT`].
pub fn pages_stay_within_the_response_limit(addr: SocketAddr) {
    let before = all_note_ids(addr);
    let body = "y".repeat(RESPONSE_LIMIT / 4);
    let created: Vec<i64> = (0..5)
        .map(|index| {
            create(addr, &format!("paged {index}"), &body)["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let after = all_note_ids(addr);
    assert_eq!(after.len(), before.len() + created.len(), "{after:?}");
    assert!(
        after.ends_with(&created),
        "{after:?} does not end with {created:?}"
    );

    let total = after.len();
    let last = http::get(addr, &format!("/api/v1/notes?limit=1&offset={}", total - 1)).json();
    assert_eq!(last["notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["next_offset"], serde_json::Value::Null, "{last}");

    let too_big = serde_json::json!({ "title": "big", "body": "z".repeat(RESPONSE_LIMIT - 100) });
    let refused = http::post_json(addr, "/api/v1/notes", &too_big.to_string());
    assert_json_error(&refused, 413, "a note larger than a page");
}

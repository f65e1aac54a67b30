//! Writes when the disk refuses them: a `201` only for a note that is
//! stored, a JSON error otherwise, readiness that says so, and recovery
//! without a restart once the fault clears.
//!
//! The fault is a file size limit (`RLIMIT_FSIZE`, set with prlimit(1)):
//! deterministic and needing no root. SQLite hits it when the commit
//! appends to the write-ahead log, the same place a full disk is hit.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{Launch, Server, TempDir, eventually, expect_exit, http};

/// Far below what the notes below need, far above the empty database.
const FILE_SIZE_LIMIT: u64 = 512 * 1024;
const NOTES: usize = 30;
const NOTE_BODY_BYTES: usize = 60 * 1024;

fn set_file_size_limit(server: &Server, limit: &str) {
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", server.pid()))
        .arg(format!("--fsize={limit}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --fsize={limit} failed");
}

fn post_note(server: &Server, index: usize) -> http::Response {
    let payload = serde_json::json!({
        "title": format!("note {index}"),
        "body": "x".repeat(NOTE_BODY_BYTES),
    });
    http::post_json(server.addr(), "/api/v1/notes", &payload.to_string())
}

#[test]
fn a_write_that_cannot_commit_is_refused_and_every_acknowledged_note_is_kept() {
    let dir = TempDir::new("write-fault");
    let limited = format!("--fsize={FILE_SIZE_LIMIT}:unlimited");
    let mut server = Launch::new(dir.path())
        .env("BODY_LIMIT", "1048576")
        .wrapped_in(&["prlimit", &limited])
        .start();

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for index in 0..NOTES {
        let response = post_note(&server, index);
        match response.status {
            201 => acknowledged.push((response.json()["id"].clone(), index)),
            // A write past the limit fails as an I/O error (EFBIG): the disk
            // is failing, not known to be full.
            503 => {
                assert!(response.json()["error"].is_string(), "{}", response.text());
                refused += 1;
            }
            other => panic!("POST {index}: unexpected {other}: {}", response.text()),
        }
    }
    assert!(
        refused > 0,
        "every write was acknowledged past the file size limit\n{}",
        server.output()
    );
    let distinct: BTreeSet<String> = acknowledged.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(
        distinct.len(),
        acknowledged.len(),
        "an id was handed out twice: {acknowledged:?}"
    );
    let ready = http::get(server.addr(), "/ready");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        ready.text().contains("cannot write"),
        "readiness does not say why: {}",
        ready.text()
    );
    assert!(
        server
            .wait_for_log("database unavailable", Duration::ZERO)
            .is_some(),
        "the failure was not logged\n{}",
        server.output()
    );

    set_file_size_limit(&server, "unlimited:unlimited");
    assert!(
        eventually(Duration::from_secs(5), || http::get(
            server.addr(),
            "/ready"
        )
        .status
            == 200),
        "readiness did not recover once the disk took writes again\n{}",
        server.output()
    );
    let after = post_note(&server, NOTES);
    assert_eq!(after.status, 201, "{}", after.text());
    acknowledged.push((after.json()["id"].clone(), NOTES));

    server.signal("TERM");
    assert_eq!(
        expect_exit(&mut server, Duration::from_secs(10)).code(),
        Some(0)
    );
    let reopened = Launch::new(dir.path()).start();
    for (id, index) in &acknowledged {
        let note = http::get(reopened.addr(), &format!("/api/v1/notes/{id}"));
        assert_eq!(note.status, 200, "acknowledged note {id} is gone");
        assert_eq!(note.json()["title"], format!("note {index}"));
    }
}

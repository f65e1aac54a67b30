//! Writes when the disk refuses them: a `201` only for a note that is
//! stored, a JSON error otherwise, readiness that says so, and recovery
//! without a restart once the fault clears.
//!
//! Two faults, both needing no root: a file size limit (`RLIMIT_FSIZE`, set
//! with prlimit(1)), which SQLite reports as an I/O error; and a real full
//! disk, a small tmpfs mounted in the server's own user and mount
//! namespaces. SQLite meets both when the commit appends to the
//! write-ahead log.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
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

/// POSTs `NOTES` notes; returns the acknowledged ones (id and index) and
/// how many were refused with `refusal`, which must be a JSON error.
fn post_until_refused(server: &Server, refusal: u16) -> (Vec<(serde_json::Value, usize)>, usize) {
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for index in 0..NOTES {
        let response = post_note(server, index);
        match response.status {
            201 => acknowledged.push((response.json()["id"].clone(), index)),
            status if status == refusal => {
                assert!(response.json()["error"].is_string(), "{}", response.text());
                refused += 1;
            }
            other => panic!(
                "POST {index}: unexpected {other}: {}\n{}",
                response.text(),
                server.output()
            ),
        }
    }
    assert!(
        refused > 0,
        "every write was acknowledged on a disk that refused them\n{}",
        server.output()
    );
    let distinct: BTreeSet<String> = acknowledged.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(
        distinct.len(),
        acknowledged.len(),
        "an id was handed out twice: {acknowledged:?}"
    );
    (acknowledged, refused)
}

fn assert_unready_for_writes(server: &Server) {
    let ready = http::get(server.addr(), "/ready");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        ready.text().contains("cannot write"),
        "readiness does not say why: {}",
        ready.text()
    );
}

fn assert_all_readable(server: &Server, acknowledged: &[(serde_json::Value, usize)]) {
    for (id, index) in acknowledged {
        let note = http::get(server.addr(), &format!("/api/v1/notes/{id}"));
        assert_eq!(note.status, 200, "acknowledged note {id} is gone");
        assert_eq!(note.json()["title"], format!("note {index}"));
    }
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

    // A write past the limit fails as an I/O error (EFBIG): the disk is
    // failing, not known to be full.
    let (mut acknowledged, _) = post_until_refused(&server, 503);
    assert_unready_for_writes(&server);
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
    assert_all_readable(&reopened, &acknowledged);
}

/// Mounts a 2 MiB tmpfs on its first argument, fills half of it, and runs
/// the rest of its arguments (the server) there.
const ON_SMALL_TMPFS: &str = r#"mount -t tmpfs -o size=2m tmpfs "$0" && dd if=/dev/zero of="$0/filler" bs=1024 count=1024 2>/dev/null && exec "$@""#;

fn can_mount_in_own_namespace() -> bool {
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn a_full_disk_refuses_writes_with_507_and_they_resume_when_space_returns() {
    if !can_mount_in_own_namespace() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_full_disk_refuses_writes_with_507_and_they_resume_when_space_returns: \
             unprivileged user namespaces are not permitted here"
        );
        return;
    }
    let dir = TempDir::new("disk-full");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let data = data.to_str().expect("a UTF-8 temporary path").to_owned();
    let server = Launch::new(dir.path())
        .env("DATABASE_URL", &format!("sqlite://{data}/notes.db"))
        .env("BODY_LIMIT", "1048576")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .wrapped_in(&[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            ON_SMALL_TMPFS,
            &data,
        ])
        .start();

    let (mut acknowledged, _) = post_until_refused(&server, 507);
    assert_unready_for_writes(&server);
    assert!(
        server
            .wait_for_log("database full", Duration::ZERO)
            .is_some(),
        "the full disk was not logged\n{}",
        server.output()
    );

    let freed = Command::new("nsenter")
        .arg(format!("--target={}", server.pid()))
        .args(["--user", "--mount", "rm"])
        .arg(format!("{data}/filler"))
        .status()
        .expect("run nsenter");
    assert!(freed.success(), "cannot remove the filler");
    assert!(
        eventually(Duration::from_secs(5), || http::get(
            server.addr(),
            "/ready"
        )
        .status
            == 200),
        "readiness did not recover once the disk had room\n{}",
        server.output()
    );
    let after = post_note(&server, NOTES);
    assert_eq!(after.status, 201, "{}", after.text());
    acknowledged.push((after.json()["id"].clone(), NOTES));
    assert_all_readable(&server, &acknowledged);
}

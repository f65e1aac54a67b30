//! SIGKILL in the middle of concurrent writes: every note acknowledged with
//! 201 must be there after a restart, and the database must open cleanly.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Launch, TempDir, eventually, expect_exit, http};

const WRITERS: usize = 4;
/// Acknowledged notes to wait for before the kill: enough that the kill
/// lands among writes in progress.
const ACKNOWLEDGED_BEFORE_KILL: usize = 200;
/// Bounds each writer, whatever happens to the server.
const WRITER_LIMIT: Duration = Duration::from_secs(20);

type Acknowledged = Arc<Mutex<Vec<(i64, String)>>>;

fn write_until_stopped(
    addr: SocketAddr,
    writer: usize,
    acknowledged: &Acknowledged,
    stop: &AtomicBool,
) {
    let started = Instant::now();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) || started.elapsed() > WRITER_LIMIT {
            return;
        }
        let title = format!("writer {writer} note {n}");
        let body = serde_json::json!({ "title": title, "body": "x".repeat(200) }).to_string();
        let headers = [("Content-Type", "application/json")];
        match http::try_request(addr, "POST", "/api/v1/notes", &headers, body.as_bytes()) {
            Ok(response) if response.status == 201 => {
                let id = response.json()["id"].as_i64().expect("an id");
                acknowledged.lock().unwrap().push((id, title));
            }
            // The server is gone: nothing more can be acknowledged.
            Ok(_) | Err(_) => return,
        }
    }
}

#[test]
fn sigkill_while_writing_loses_no_acknowledged_note() {
    let dir = TempDir::new("crash");
    let mut server = Launch::new(dir.path()).start();
    let addr = server.addr();
    let acknowledged = Acknowledged::default();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let acknowledged = Arc::clone(&acknowledged);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || write_until_stopped(addr, writer, &acknowledged, &stop))
        })
        .collect();
    let enough = eventually(Duration::from_secs(15), || {
        acknowledged.lock().unwrap().len() >= ACKNOWLEDGED_BEFORE_KILL
    });
    server.signal("KILL");
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("a writer thread");
    }
    assert!(enough, "writers were too slow\n{}", server.output());
    let status = expect_exit(&mut server, Duration::from_secs(5));
    assert_eq!(status.code(), None, "killed by a signal, not exited");

    let restarted = Launch::new(dir.path()).start();
    let ready = http::get(restarted.addr(), "/ready");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let acknowledged = acknowledged.lock().unwrap();
    for (id, title) in acknowledged.iter() {
        let response = http::get(restarted.addr(), &format!("/api/v1/notes/{id}"));
        assert_eq!(response.status, 200, "acknowledged note {id} is missing");
        assert_eq!(response.json()["title"], title.as_str());
    }
    // And the store takes new writes.
    let response = http::post_json(
        restarted.addr(),
        "/api/v1/notes",
        r#"{"title":"after","body":""}"#,
    );
    assert_eq!(response.status, 201);
}

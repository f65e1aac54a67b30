//! Load through the load balancer while the replicas restart: a few clients,
//! each sending one request at a time at a bounded rate, until told to stop
//! or a bound on time or count passes. Every request that gets no `2xx` is
//! a failure, counted by kind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::http::{Client, Failure, Response};

/// Examples of failures kept for the report.
const EXAMPLES: usize = 5;

/// What the clients saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub sent: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// `refused`, `reset`, `closed`, `timed out`, `5xx`, `other status`, …
    pub failed_by_kind: BTreeMap<String, usize>,
    pub examples: Vec<String>,
}

impl Tally {
    fn record(&mut self, outcome: &Result<Response, Failure>) {
        self.sent += 1;
        let failure = match outcome {
            Ok(response) if (200..300).contains(&response.status) => {
                self.succeeded += 1;
                return;
            }
            Ok(response) => (
                status_kind(response.status),
                format!("status {}", response.status),
            ),
            Err(failure) => (failure_kind(&failure.reason), failure.reason.clone()),
        };
        self.failed += 1;
        *self.failed_by_kind.entry(failure.0.to_owned()).or_default() += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(failure.1);
        }
    }

    /// `12 refused, 3 5xx`, or `none`.
    pub fn kinds(&self) -> String {
        if self.failed_by_kind.is_empty() {
            return "none".to_owned();
        }
        self.failed_by_kind
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn status_kind(status: u16) -> &'static str {
    if status >= 500 { "5xx" } else { "other status" }
}

/// Sorts a transport failure by what the kernel said.
fn failure_kind(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    if reason.contains("refused") {
        "refused"
    } else if reason.contains("reset") || reason.contains("broken pipe") {
        "reset"
    } else if reason.contains("closed") {
        "closed"
    } else if reason.contains("timed out") {
        "timed out"
    } else {
        "other error"
    }
}

/// How hard and how long the clients push.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub clients: usize,
    /// Requests per second per client, at most.
    pub rate: u32,
    /// The clients stop by themselves after this long…
    pub max_duration: Duration,
    /// …or after this many requests each.
    pub max_requests: usize,
}

/// Clients running in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, path: &str, shape: Shape) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let pause = Duration::from_secs(1) / shape.rate.max(1);
        let threads = (0..shape.clients)
            .map(|_| {
                let (stop, tally, path) = (stop.clone(), tally.clone(), path.to_owned());
                std::thread::spawn(move || {
                    let client = Client::new(addr, Duration::from_secs(10));
                    let started = Instant::now();
                    for _ in 0..shape.max_requests {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > shape.max_duration {
                            break;
                        }
                        let sent = Instant::now();
                        let outcome = client.get(&path);
                        if let Ok(mut tally) = tally.lock() {
                            tally.record(&outcome);
                        }
                        std::thread::sleep(pause.saturating_sub(sent.elapsed()));
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    /// What the clients have seen so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Stops the clients and returns what they saw.
    pub fn finish(mut self) -> Tally {
        self.stop_threads();
        self.tally()
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn failed(reason: &str) -> Result<Response, Failure> {
        Err(Failure {
            accepted: false,
            reason: reason.to_owned(),
        })
    }

    #[test]
    fn every_answer_but_a_2xx_is_a_failure_counted_by_kind() {
        let mut tally = Tally::default();
        for outcome in [
            Ok(answered(200)),
            Ok(answered(204)),
            Ok(answered(503)),
            Ok(answered(502)),
            Ok(answered(404)),
            failed("connecting: Connection refused (os error 111)"),
            failed("reading the answer: Connection reset by peer (os error 104)"),
            failed("reading the answer: connection closed"),
            failed("reading the answer: timed out"),
        ] {
            tally.record(&outcome);
        }
        assert_eq!(tally.sent, 9);
        assert_eq!(tally.succeeded, 2);
        assert_eq!(tally.failed, 7);
        assert_eq!(
            tally.kinds(),
            "2 5xx, 1 closed, 1 other status, 1 refused, 1 reset, 1 timed out"
        );
        assert_eq!(tally.examples.len(), 5);
    }

    #[test]
    fn no_failure_reads_none() {
        let mut tally = Tally::default();
        tally.record(&Ok(answered(200)));
        assert_eq!(tally.kinds(), "none");
        assert!(tally.examples.is_empty());
    }

    #[test]
    fn each_client_stops_after_its_count() {
        // Nothing listens on port 1 of loopback: every request is refused.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let shape = Shape {
            clients: 2,
            rate: 1000,
            max_duration: Duration::from_secs(10),
            max_requests: 5,
        };
        let load = Load::start(addr, "/", shape);
        let waited = crate::wait::until(Duration::from_secs(10), Duration::from_millis(5), || {
            let sent = load.tally().sent;
            Ok(if sent >= 10 {
                crate::wait::Poll::Ready(())
            } else {
                crate::wait::Poll::Waiting(format!("{sent} sent"))
            })
        });
        let tally = load.finish();
        waited.unwrap();
        assert_eq!(tally.sent, 10, "{tally:?}");
        assert_eq!(tally.failed_by_kind.get("refused"), Some(&10), "{tally:?}");
    }
}

//! Load through the load balancer while the replicas restart: a few clients
//! ([`crate::traffic`]'s workers), each sending one GET at a time at a
//! bounded rate. Every request that gets no `2xx` is a failure, counted by
//! kind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::http::{Client, Failure, Response};
use crate::traffic::{Bounds, Workers, pause_for_rate};

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

/// Clients running in the background (stopped when dropped).
pub struct Load(Workers<Result<Response, Failure>>);

impl Load {
    pub fn start(addr: SocketAddr, path: &str, shape: Shape) -> Load {
        let bounds = Bounds {
            workers: shape.clients,
            max_duration: shape.max_duration,
            max_requests: shape.max_requests.saturating_mul(shape.clients),
        };
        Load(Workers::start(bounds, |_| {
            let client = Client::new(addr, Duration::from_secs(10));
            let path = path.to_owned();
            move || {
                let sent = Instant::now();
                let outcome = client.get(&path);
                (outcome, pause_for_rate(shape.rate, sent.elapsed()))
            }
        }))
    }

    /// Stops the clients and returns what they saw.
    pub fn finish(self) -> Tally {
        tally_of(self.0.finish())
    }
}

fn tally_of(outcomes: Vec<Result<Response, Failure>>) -> Tally {
    let mut tally = Tally::default();
    for outcome in outcomes {
        tally.record(&outcome);
    }
    tally
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
    fn the_clients_stop_after_their_count() {
        // Nothing listens on port 1 of loopback: every request is refused.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let shape = Shape {
            clients: 2,
            rate: 1000,
            max_duration: Duration::from_secs(10),
            max_requests: 5,
        };
        let tally = tally_of(Load::start(addr, "/", shape).0.join());
        assert_eq!(tally.sent, 10, "{tally:?}");
        assert_eq!(tally.failed_by_kind.get("refused"), Some(&10), "{tally:?}");
    }
}

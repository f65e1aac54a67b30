//! The clients of a load run ([`crate::traffic`]'s workers): one kept-alive
//! connection each (a new one after any failure), bounded by a deadline and
//! by a request count. Latencies and statuses are merged into one [`Tally`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http::{Client, KeepAlive};
use crate::traffic::{Bounds, Workers};

/// No client sends more than this, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: usize = 1_000_000;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the clients send.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub clients: usize,
    /// Out of 100 requests, how many are POSTs; the rest read.
    pub post_percent: u32,
    pub read: Reads,
    /// The body of each note written, seeded or posted.
    pub note_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
pub enum Reads {
    /// One seeded note by id.
    Note,
    /// The first page, as large as a client may ask: `?limit=100`.
    Page,
}

impl Mix {
    pub const fn notes(clients: usize, post_percent: u32) -> Mix {
        Mix {
            clients,
            post_percent,
            read: Reads::Note,
            note_bytes: SMALL_NOTE_BYTES,
        }
    }
}

const SMALL_NOTE_BYTES: usize = 40;

#[derive(Debug, Default)]
pub struct Tally {
    /// Microseconds per answered request.
    pub latencies_us: Vec<u64>,
    pub non_2xx: u64,
    /// Requests that got no answer: refused, reset, timed out.
    pub transport_errors: u64,
    pub elapsed: Duration,
}

impl Tally {
    pub fn answered(&self) -> usize {
        self.latencies_us.len()
    }

    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    pub fn per_second(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `percent` percentile of the latencies, in milliseconds.
    #[allow(clippy::cast_precision_loss)] // microseconds far below 2^52
    pub fn percentile_ms(&mut self, percent: usize) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let index = (self.latencies_us.len() * percent / 100).min(self.latencies_us.len() - 1);
        self.latencies_us[index] as f64 / 1000.0
    }
}

/// What one request came to: its latency and status, or no answer.
type Outcome = Option<(u64, u16)>;

/// Runs `mix` against `addr` for `duration`; GETs ask for ids `1..=seeded`.
pub fn drive(addr: SocketAddr, mix: Mix, duration: Duration, seeded: u64) -> Tally {
    let started = Instant::now();
    let bounds = Bounds {
        workers: mix.clients,
        max_duration: duration,
        max_requests: MAX_REQUESTS_PER_CLIENT.saturating_mul(mix.clients),
    };
    let outcomes = Workers::start(bounds, |index| {
        let mut client = LoadClient::new(addr, index as u64 + 1, mix.note_bytes);
        move || (client.one(mix, seeded), Duration::ZERO)
    })
    .join();
    let mut total = Tally::default();
    for outcome in outcomes {
        match outcome {
            Some((latency_us, status)) => {
                total.latencies_us.push(latency_us);
                if !(200..300).contains(&status) {
                    total.non_2xx += 1;
                }
            }
            None => total.transport_errors += 1,
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Writes `count` notes, one after the other; any answer but `201` fails.
pub fn seed(addr: SocketAddr, count: u64, note_bytes: usize) -> anyhow::Result<()> {
    let mut connection = KeepAlive::new(Client::new(addr, IO_TIMEOUT));
    let request = post_request(note_bytes);
    for _ in 0..count {
        let status = connection
            .exchange(request.as_bytes())
            .map_err(|failure| anyhow::anyhow!(failure.reason))?
            .status;
        if status != 201 {
            anyhow::bail!("a seed note was answered {status}");
        }
    }
    Ok(())
}

/// One worker: a kept-alive connection and the choice of each request.
struct LoadClient {
    connection: KeepAlive,
    /// The POST, written once: the load, not its client, should cost.
    post: String,
    /// xorshift state: which requests are POSTs, which ids are read.
    random: u64,
}

impl LoadClient {
    fn new(addr: SocketAddr, seed: u64, note_bytes: usize) -> LoadClient {
        LoadClient {
            connection: KeepAlive::new(Client::new(addr, IO_TIMEOUT)),
            post: post_request(note_bytes),
            random: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }

    fn one(&mut self, mix: Mix, seeded: u64) -> Outcome {
        let read = if self.next_random() % 100 < u64::from(mix.post_percent) {
            None
        } else {
            Some(match mix.read {
                Reads::Note => {
                    let id = self.next_random() % seeded.max(1) + 1;
                    format!("GET /api/v1/notes/{id} HTTP/1.1\r\nHost: load\r\n\r\n")
                }
                Reads::Page => {
                    "GET /api/v1/notes?limit=100 HTTP/1.1\r\nHost: load\r\n\r\n".to_owned()
                }
            })
        };
        let request = read.as_deref().unwrap_or(&self.post);
        let sent = Instant::now();
        let response = self.connection.exchange(request.as_bytes()).ok()?;
        let latency_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        Some((latency_us, response.status))
    }
}

fn post_request(note_bytes: usize) -> String {
    let body = format!(r#"{{"title":"load","body":"{}"}}"#, "x".repeat(note_bytes));
    format!(
        "POST /api/v1/notes HTTP/1.1\r\nHost: load\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let mut tally = Tally {
            latencies_us: (1..=100).rev().map(|ms| ms * 1000).collect(),
            ..Tally::default()
        };
        assert!((tally.percentile_ms(50) - 51.0).abs() < f64::EPSILON);
        assert!((tally.percentile_ms(99) - 100.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_post_request_declares_its_body_length() {
        let request = post_request(12);
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}

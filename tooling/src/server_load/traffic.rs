//! The clients of a load run: one thread each, one kept-alive connection
//! each (a new one after any failure), bounded by a deadline and by a
//! request count. Latencies and statuses are merged into one [`Tally`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.non_2xx += other.non_2xx;
        self.transport_errors += other.transport_errors;
    }
}

/// Runs `mix` against `addr` for `duration`; GETs ask for ids `1..=seeded`.
pub fn drive(addr: SocketAddr, mix: Mix, duration: Duration, seeded: u64) -> Tally {
    let started = Instant::now();
    let deadline = started + duration;
    let clients: Vec<_> = (0..mix.clients)
        .map(|index| {
            std::thread::spawn(move || {
                let mut client = Client::new(addr, index as u64 + 1);
                client.run(mix, seeded, deadline)
            })
        })
        .collect();
    let mut total = Tally::default();
    for client in clients {
        if let Ok(tally) = client.join() {
            total.merge(tally);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Writes `count` notes, one after the other; any answer but `201` fails.
pub fn seed(addr: SocketAddr, count: u64, note_bytes: usize) -> std::io::Result<()> {
    let mut client = Client::new(addr, 1);
    let request = post_request(note_bytes);
    for _ in 0..count {
        let status = client.exchange(&request)?;
        if status != 201 {
            return Err(std::io::Error::other(format!(
                "a seed note was answered {status}"
            )));
        }
    }
    Ok(())
}

struct Client {
    addr: SocketAddr,
    connection: Option<BufReader<TcpStream>>,
    /// xorshift state: which requests are POSTs, which ids are read.
    random: u64,
}

impl Client {
    fn new(addr: SocketAddr, seed: u64) -> Client {
        Client {
            addr,
            connection: None,
            random: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }

    fn run(&mut self, mix: Mix, seeded: u64, deadline: Instant) -> Tally {
        let post = post_request(mix.note_bytes);
        let mut tally = Tally::default();
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            if Instant::now() >= deadline {
                break;
            }
            let request = if self.next_random() % 100 < u64::from(mix.post_percent) {
                post.clone()
            } else {
                match mix.read {
                    Reads::Note => {
                        let id = self.next_random() % seeded.max(1) + 1;
                        format!("GET /api/v1/notes/{id} HTTP/1.1\r\nHost: load\r\n\r\n")
                    }
                    Reads::Page => {
                        "GET /api/v1/notes?limit=100 HTTP/1.1\r\nHost: load\r\n\r\n".to_owned()
                    }
                }
            };
            let sent = Instant::now();
            if let Ok(status) = self.exchange(&request) {
                tally
                    .latencies_us
                    .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
            } else {
                tally.transport_errors += 1;
                self.connection = None;
            }
        }
        tally
    }

    /// Sends one request and reads its answer; returns the status.
    fn exchange(&mut self, request: &str) -> std::io::Result<u16> {
        if self.connection.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_write_timeout(Some(IO_TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.connection = Some(BufReader::new(stream));
        }
        let Some(reader) = self.connection.as_mut() else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        reader.get_mut().write_all(request.as_bytes())?;
        let (status, length, close) = read_head(reader)?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if close {
            self.connection = None;
        }
        Ok(status)
    }
}

fn post_request(note_bytes: usize) -> String {
    let body = format!(r#"{{"title":"load","body":"{}"}}"#, "x".repeat(note_bytes));
    format!(
        "POST /api/v1/notes HTTP/1.1\r\nHost: load\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Status, `Content-Length` and whether the server will close.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, usize, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut close = false;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.trim().eq_ignore_ascii_case("close");
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("an answer without Content-Length"))?;
    Ok((status, length, close))
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

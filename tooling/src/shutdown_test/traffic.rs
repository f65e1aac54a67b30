//! Traffic for proving a drain: slow requests still in flight when the stop
//! signal goes out, a steady stream of short ones through it, and a
//! readiness probe watching the server change its answer. The requests are
//! the manifest's (`[workspace.metadata.xtask.drain]`): writes, whose bodies
//! are still arriving at the signal, or reads of a path that answers slowly.
//!
//! Threads and blocking sockets: every loop is bounded in count and time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::http::{Client, Failure, HeldRequest, Started};
use crate::metadata::{Drain, DrainMethod};
use crate::traffic::{Bounds, Workers};

/// The rest of a slow upload's body goes out in this many pieces.
const PIECES: usize = 5;

/// How much traffic, and when.
#[derive(Debug, Clone)]
pub struct Plan {
    pub slow_uploads: usize,
    /// Bytes of each slow upload's body; half goes before the signal.
    pub upload_bytes: usize,
    pub short_workers: usize,
    /// Pause between one worker's short requests.
    pub short_pause: Duration,
    /// Pause between the two halves of a short request's body, so that
    /// short requests are in flight most of the time, the signal's moment
    /// included.
    pub short_body_pause: Duration,
    /// How long after the signal the slow uploads send nothing more, so the
    /// drain is seen with their bodies still incomplete.
    pub hold_after_signal: Duration,
    /// Over how long the rest of each body then goes out.
    pub trickle: Duration,
    /// Bounds on the whole run: the short requests, all workers together,
    /// and its time.
    pub max_requests: usize,
    pub max_duration: Duration,
    pub probe_interval: Duration,
    /// Readiness requests started before the signal and completed during
    /// the drain, one every `held_probe_spacing`. A server that closes its
    /// listener at the signal can only be asked on connections it already
    /// has; these show what it answers them.
    pub held_probes: usize,
    pub held_probe_spacing: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SlowUpload,
    Short,
}

/// One write and what became of it.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    pub title: String,
    pub body: String,
    /// When it was sent and when it ended, since the load started.
    pub sent_at: Duration,
    pub ended_at: Duration,
    pub result: Result<Answer, Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The stored note's id, when the answer carried one.
    pub id: Option<String>,
}

/// One readiness answer after the signal: `None` when nothing answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub since_signal: Duration,
    pub status: Option<u16>,
    /// Asked on a connection opened before the signal (see
    /// [`Plan::held_probes`]) rather than on a new one.
    pub held: bool,
}

struct Shared {
    started: Instant,
    signal_at: OnceLock<Instant>,
    stop: AtomicBool,
}

impl Shared {
    fn out_of_bounds(&self, plan: &Plan) -> bool {
        self.stop.load(Ordering::SeqCst) || self.started.elapsed() > plan.max_duration
    }

    /// When the stop signal went out; `None` if the load ran out of bounds first.
    fn wait_for_signal(&self, plan: &Plan) -> Option<Instant> {
        loop {
            if let Some(at) = self.signal_at.get() {
                return Some(*at);
            }
            if self.out_of_bounds(plan) {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Traffic under way.
pub struct Load {
    shared: Arc<Shared>,
    uploads: Vec<JoinHandle<Record>>,
    shorts: Workers<Record>,
    /// None when readiness is not watched.
    prober: Option<JoinHandle<Vec<Probe>>>,
    held: Vec<JoinHandle<Option<Probe>>>,
}

/// What the traffic saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub records: Vec<Record>,
    pub probes: Vec<Probe>,
    /// When the signal went out, since the load started.
    pub signal_at: Option<Duration>,
}

impl Load {
    /// Starts the slow uploads and returns once each has been taken by the
    /// server and half sent (or has failed), then starts the short stream.
    pub fn start(
        client: Client,
        plan: &Plan,
        tag: &str,
        drain: &Drain,
        ready_path: Option<&str>,
    ) -> Load {
        let shared = Arc::new(Shared {
            started: Instant::now(),
            signal_at: OnceLock::new(),
            stop: AtomicBool::new(false),
        });
        let (opened, opened_rx) = mpsc::channel::<()>();
        let uploads = (0..plan.slow_uploads)
            .map(|i| {
                let (shared, plan, opened) = (Arc::clone(&shared), plan.clone(), opened.clone());
                let title = format!("{tag}-slow-{i}");
                let drain = drain.clone();
                thread::spawn(move || match drain.method {
                    DrainMethod::Post => {
                        slow_upload(client, &drain, &plan, &shared, &title, &opened)
                    }
                    DrainMethod::Get => slow_read(client, &drain.path, &shared, &title, &opened),
                })
            })
            .collect();
        drop(opened);
        // Every upload reports once, opened or failed; the bound only guards
        // against a server that never answers.
        let deadline = Instant::now() + client.timeout * 2;
        for _ in 0..plan.slow_uploads {
            let left = deadline.saturating_duration_since(Instant::now());
            if opened_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        let bounds = Bounds {
            workers: plan.short_workers,
            max_duration: plan.max_duration.saturating_sub(shared.started.elapsed()),
            max_requests: plan.max_requests,
        };
        let shorts = Workers::start(bounds, |worker| {
            let (shared, plan) = (Arc::clone(&shared), plan.clone());
            let tag = format!("{tag}-short-{worker}");
            let drain = drain.clone();
            // Staggered, so that the streams are not all between two
            // requests at the same moment.
            let mut stagger = Some(
                plan.short_body_pause * u32::try_from(worker).unwrap_or(0)
                    / u32::try_from(plan.short_workers).unwrap_or(1),
            );
            let mut sent = 0;
            move || {
                if let Some(stagger) = stagger.take() {
                    thread::sleep(stagger);
                }
                let record =
                    short_request(client, &drain, &plan, &shared, &format!("{tag}-{sent}"));
                sent += 1;
                // Not taken: the listener is gone, and knocking as fast as a
                // working server answers would only inflate the count.
                let not_taken = matches!(&record.result, Err(f) if !f.accepted);
                let pause = if not_taken {
                    plan.short_pause * 5
                } else {
                    plan.short_pause
                };
                (record, pause)
            }
        });
        let prober = ready_path.map(|path| {
            let (shared, plan) = (Arc::clone(&shared), plan.clone());
            let path = path.to_owned();
            thread::spawn(move || probe_readiness(client, &path, &plan, &shared))
        });
        let held = (1..=plan.held_probes)
            .filter_map(|slot| {
                let ready_path = ready_path?;
                let request = client.hold_get(ready_path).ok()?;
                let (shared, plan) = (Arc::clone(&shared), plan.clone());
                let delay = plan.held_probe_spacing * u32::try_from(slot).unwrap_or(1);
                Some(thread::spawn(move || {
                    held_probe(request, delay, &plan, &shared)
                }))
            })
            .collect();
        Load {
            shared,
            uploads,
            shorts,
            prober,
            held,
        }
    }

    /// Marks the moment the stop signal went out.
    pub fn signal_sent(&self) {
        let _ = self.shared.signal_at.set(Instant::now());
    }

    /// Stops the short stream and the probe, waits for everything, and
    /// returns what was seen.
    pub fn finish(self) -> Seen {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut records: Vec<Record> = self
            .uploads
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect();
        records.extend(self.shorts.finish());
        let mut probes = self
            .prober
            .map(|p| p.join().unwrap_or_default())
            .unwrap_or_default();
        probes.extend(
            self.held
                .into_iter()
                .filter_map(|h| h.join().ok().flatten()),
        );
        probes.sort_by_key(|p| p.since_signal);
        let started = self.shared.started;
        Seen {
            records,
            probes,
            signal_at: self.shared.signal_at.get().map(|at| *at - started),
        }
    }
}

fn answer(drain: &Drain, response: &crate::http::Response) -> Answer {
    Answer {
        status: response.status,
        id: response.json().and_then(|v| drain.id_in(&v)),
    }
}

/// A read the server answers slowly, sent before the signal.
fn slow_read(
    client: Client,
    path: &str,
    shared: &Shared,
    title: &str,
    opened: &mpsc::Sender<()>,
) -> Record {
    let sent_at = shared.started.elapsed();
    // A GET has no interim answer to wait for: it is in flight once sent.
    let _ = opened.send(());
    let result = client.get(path).map(|r| Answer {
        status: r.status,
        id: None,
    });
    Record {
        kind: Kind::SlowUpload,
        title: title.to_owned(),
        body: String::new(),
        sent_at,
        ended_at: shared.started.elapsed(),
        result,
    }
}

fn slow_upload(
    client: Client,
    drain: &Drain,
    plan: &Plan,
    shared: &Shared,
    title: &str,
    opened: &mpsc::Sender<()>,
) -> Record {
    // The body is padded to the planned size around a fixed tag.
    let padding = plan
        .upload_bytes
        .saturating_sub(drain.body(title, "").len());
    let body = "x".repeat(padding);
    let json = drain.body(title, &body);
    let path = &drain.path;
    let sent_at = shared.started.elapsed();
    let record = |result| Record {
        kind: Kind::SlowUpload,
        title: title.to_owned(),
        body: body.clone(),
        sent_at,
        ended_at: shared.started.elapsed(),
        result,
    };
    let mut upload = match client.begin_upload(path, &drain.content_type, json.len()) {
        Ok(Started::Continue(upload)) => upload,
        Ok(Started::Answered(response)) => {
            let _ = opened.send(());
            return record(Ok(answer(drain, &response)));
        }
        Err(failure) => {
            let _ = opened.send(());
            return record(Err(failure));
        }
    };
    let bytes = json.as_bytes();
    let half = bytes.len() / 2;
    let first = upload.send(&bytes[..half]);
    let _ = opened.send(());
    if let Err(failure) = first {
        return record(Err(failure));
    }
    // Hold the rest until the signal has gone out, and a while after.
    while shared.signal_at.get().is_none() && !shared.out_of_bounds(plan) {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(plan.hold_after_signal);
    let rest = &bytes[half..];
    let piece = rest.len().div_ceil(PIECES).max(1);
    let pause = plan.trickle / u32::try_from(PIECES).unwrap_or(1);
    for chunk in rest.chunks(piece) {
        if let Err(failure) = upload.send(chunk) {
            return record(Err(failure));
        }
        thread::sleep(pause);
    }
    record(upload.finish().map(|r| answer(drain, &r)))
}

/// One short request of the stream: a write whose body goes in two parts,
/// or a read.
fn short_request(
    client: Client,
    drain: &Drain,
    plan: &Plan,
    shared: &Shared,
    title: &str,
) -> Record {
    let body = "short".to_owned();
    let sent_at = shared.started.elapsed();
    let result = match drain.method {
        DrainMethod::Post => post_in_two_parts(
            client,
            drain,
            &drain.body(title, &body),
            plan.short_body_pause,
        ),
        DrainMethod::Get => client.get(&drain.path).map(|r| Answer {
            status: r.status,
            id: None,
        }),
    };
    Record {
        kind: Kind::Short,
        title: title.to_owned(),
        body,
        sent_at,
        ended_at: shared.started.elapsed(),
        result,
    }
}

fn post_in_two_parts(
    client: Client,
    drain: &Drain,
    body: &str,
    pause: Duration,
) -> Result<Answer, Failure> {
    let mut upload = match client.begin_upload(&drain.path, &drain.content_type, body.len())? {
        Started::Continue(upload) => upload,
        Started::Answered(response) => return Ok(answer(drain, &response)),
    };
    let (first, second) = body.as_bytes().split_at(body.len() / 2);
    upload.send(first)?;
    thread::sleep(pause);
    upload.send(second)?;
    upload.finish().map(|r| answer(drain, &r))
}

fn probe_readiness(client: Client, path: &str, plan: &Plan, shared: &Shared) -> Vec<Probe> {
    let mut probes = Vec::new();
    let Some(signal_at) = shared.wait_for_signal(plan) else {
        return probes;
    };
    while !shared.stop.load(Ordering::SeqCst) && shared.started.elapsed() < plan.max_duration {
        let status = client.get(path).ok().map(|r| r.status);
        probes.push(Probe {
            since_signal: signal_at.elapsed(),
            status,
            held: false,
        });
        thread::sleep(plan.probe_interval);
    }
    probes
}

/// Completes a held readiness request `delay` after the signal.
fn held_probe(
    request: HeldRequest,
    delay: Duration,
    plan: &Plan,
    shared: &Shared,
) -> Option<Probe> {
    let signal_at = shared.wait_for_signal(plan)?;
    thread::sleep(delay.saturating_sub(signal_at.elapsed()));
    let since_signal = signal_at.elapsed();
    let status = request.complete().ok().map(|r| r.status);
    Some(Probe {
        since_signal,
        status,
        held: true,
    })
}

/// The fate of every write, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub sent: usize,
    /// Answered 2xx.
    pub completed: usize,
    /// Sent after the signal and answered 503: refused, not lost.
    pub refused_while_draining: usize,
    /// Sent after the signal and never taken by the server (it had stopped
    /// accepting): the client knows to retry.
    pub not_accepted_after_signal: usize,
    /// Taken by the server, or sent before the signal, and never answered.
    pub dropped: usize,
    /// Answered with a status no drain should produce.
    pub wrong_status: usize,
    /// Sent before the signal and still unanswered when it went out.
    pub in_flight_at_signal: usize,
    /// Of those, answered 2xx.
    pub in_flight_completed: usize,
    /// Why the first few dropped or wrong ones failed.
    pub examples: Vec<String>,
}

/// Counts what became of each write. A failure counts as dropped when the
/// server had shown it had the request, or when it went out before the
/// signal (a running server must answer it).
pub fn tally(records: &[Record], signal_at: Option<Duration>) -> Tally {
    const EXAMPLES: usize = 3;
    let mut tally = Tally {
        sent: records.len(),
        ..Tally::default()
    };
    let before_signal = |r: &Record| signal_at.is_none_or(|at| r.sent_at < at);
    for record in records {
        let before = before_signal(record);
        let in_flight = signal_at.is_some_and(|at| record.sent_at < at && record.ended_at >= at);
        if in_flight {
            tally.in_flight_at_signal += 1;
        }
        let mut problem = None;
        match &record.result {
            Ok(answer) if (200..300).contains(&answer.status) => {
                tally.completed += 1;
                if in_flight {
                    tally.in_flight_completed += 1;
                }
            }
            Ok(answer) if answer.status == 503 && !before => tally.refused_while_draining += 1,
            Ok(answer) => {
                tally.wrong_status += 1;
                problem = Some(format!("{}: status {}", record.title, answer.status));
            }
            Err(failure) if failure.accepted || before => {
                tally.dropped += 1;
                problem = Some(format!("{}: {}", record.title, failure.reason));
            }
            Err(_) => tally.not_accepted_after_signal += 1,
        }
        if let Some(problem) = problem
            && tally.examples.len() < EXAMPLES
        {
            tally.examples.push(problem);
        }
    }
    tally
}

/// A write the server acknowledged with 201 and an id: it must survive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    pub id: String,
    pub title: String,
    pub body: String,
}

pub fn acknowledged(records: &[Record]) -> Vec<Acknowledged> {
    records
        .iter()
        .filter_map(|r| match &r.result {
            Ok(Answer {
                status: 201,
                id: Some(id),
            }) => Some(Acknowledged {
                id: id.clone(),
                title: r.title.clone(),
                body: r.body.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Whether readiness turned to 503 during the drain and stayed there:
/// `Ok(what was seen)` or `Err(what was seen instead)`.
pub fn readiness_verdict(probes: &[Probe]) -> Result<String, String> {
    let first_503 = probes.iter().position(|p| p.status == Some(503));
    let held: Vec<Probe> = probes.iter().filter(|p| p.held).copied().collect();
    let fresh: Vec<Probe> = probes.iter().filter(|p| !p.held).copied().collect();
    let summary = format!(
        "on open connections: {}; on new ones: {}",
        summarize_probes(&held),
        summarize_probes(&fresh)
    );
    let Some(first) = first_503 else {
        return Err(format!("no 503 after the signal ({summary})"));
    };
    if let Some(back) = probes[first..].iter().find(|p| p.status == Some(200)) {
        return Err(format!(
            "200 again {} ms after the signal ({summary})",
            back.since_signal.as_millis()
        ));
    }
    Ok(summary)
}

/// Consecutive equal answers as runs: `503 ×12 from +4 ms, none ×3 from +620 ms`.
pub fn summarize_probes(probes: &[Probe]) -> String {
    if probes.is_empty() {
        return "none".to_owned();
    }
    let mut runs: Vec<(Option<u16>, usize, Duration)> = Vec::new();
    for probe in probes {
        match runs.last_mut() {
            Some((status, count, _)) if *status == probe.status => *count += 1,
            _ => runs.push((probe.status, 1, probe.since_signal)),
        }
    }
    runs.iter()
        .map(|(status, count, from)| {
            let status = status.map_or("no answer".to_owned(), |s| s.to_string());
            format!("{status} ×{count} from +{} ms", from.as_millis())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A write that took 150 ms.
    fn record(kind: Kind, sent_ms: u64, result: Result<Answer, Failure>) -> Record {
        Record {
            kind,
            title: format!("t{sent_ms}"),
            body: "b".into(),
            sent_at: ms(sent_ms),
            ended_at: ms(sent_ms + 150),
            result,
        }
    }

    #[allow(clippy::unnecessary_wraps)] // a result, like a record's
    fn ok(status: u16, id: Option<&str>) -> Result<Answer, Failure> {
        Ok(Answer {
            status,
            id: id.map(str::to_owned),
        })
    }

    fn failed(accepted: bool) -> Result<Answer, Failure> {
        Err(Failure {
            accepted,
            reason: "connection closed without an answer".into(),
        })
    }

    #[test]
    fn answered_writes_are_completed() {
        let tally = tally(
            &[record(Kind::SlowUpload, 10, ok(201, Some("1")))],
            Some(ms(100)),
        );
        assert_eq!(tally.completed, 1);
        assert_eq!(tally.in_flight_at_signal, 1);
        assert_eq!(tally.in_flight_completed, 1);
        assert_eq!(tally.dropped, 0);
    }

    #[test]
    fn a_write_answered_before_the_signal_was_not_in_flight() {
        let tally = tally(&[record(Kind::Short, 10, ok(201, None))], Some(ms(500)));
        assert_eq!(tally.in_flight_at_signal, 0);
        assert_eq!(tally.completed, 1);
    }

    #[test]
    fn a_write_the_server_took_and_never_answered_is_dropped() {
        let tally = tally(&[record(Kind::Short, 200, failed(true))], Some(ms(100)));
        assert_eq!(tally.dropped, 1);
        assert_eq!(tally.examples.len(), 1);
    }

    #[test]
    fn a_write_sent_before_the_signal_and_never_answered_is_dropped() {
        let tally = tally(&[record(Kind::Short, 50, failed(false))], Some(ms(100)));
        assert_eq!(tally.dropped, 1);
    }

    #[test]
    fn a_write_refused_after_the_listener_closed_is_not_dropped() {
        let tally = tally(&[record(Kind::Short, 200, failed(false))], Some(ms(100)));
        assert_eq!(tally.dropped, 0);
        assert_eq!(tally.not_accepted_after_signal, 1);
    }

    #[test]
    fn a_503_during_the_drain_is_a_refusal_but_before_it_is_wrong() {
        let during = tally(&[record(Kind::Short, 200, ok(503, None))], Some(ms(100)));
        assert_eq!(during.refused_while_draining, 1);
        let before = tally(&[record(Kind::Short, 50, ok(503, None))], Some(ms(100)));
        assert_eq!(before.wrong_status, 1);
    }

    #[test]
    fn only_201s_with_an_id_are_acknowledged() {
        let records = [
            record(Kind::Short, 1, ok(201, Some("7"))),
            record(Kind::Short, 2, ok(201, None)),
            record(Kind::Short, 3, ok(503, None)),
        ];
        let acknowledged = acknowledged(&records);
        assert_eq!(acknowledged.len(), 1);
        assert_eq!(acknowledged[0].id, "7");
    }

    fn probe(at: u64, status: Option<u16>) -> Probe {
        Probe {
            since_signal: ms(at),
            status,
            held: false,
        }
    }

    fn held(at: u64, status: Option<u16>) -> Probe {
        Probe {
            held: true,
            ..probe(at, status)
        }
    }

    #[test]
    fn readiness_that_turns_503_and_then_goes_away_passes() {
        let probes = [
            probe(1, Some(200)),
            probe(20, Some(503)),
            probe(40, Some(503)),
            probe(60, None),
        ];
        let seen = readiness_verdict(&probes).unwrap();
        assert_eq!(
            seen,
            "on open connections: none; on new ones: 200 ×1 from +1 ms, 503 ×2 from +20 ms, no answer ×1 from +60 ms"
        );
    }

    #[test]
    fn a_503_on_a_connection_opened_before_the_signal_counts() {
        let probes = [
            probe(1, Some(200)),
            probe(30, None),
            held(200, Some(503)),
            probe(210, None),
            held(400, Some(503)),
        ];
        let seen = readiness_verdict(&probes).unwrap();
        assert_eq!(
            seen,
            "on open connections: 503 ×2 from +200 ms; on new ones: 200 ×1 from +1 ms, no answer ×2 from +30 ms"
        );
    }

    #[test]
    fn readiness_that_never_says_503_fails() {
        let error = readiness_verdict(&[probe(1, Some(200)), probe(20, None)]).unwrap_err();
        assert!(error.starts_with("no 503"), "{error}");
    }

    #[test]
    fn readiness_that_flips_back_to_200_fails() {
        let probes = [probe(1, Some(503)), probe(20, Some(200))];
        let error = readiness_verdict(&probes).unwrap_err();
        assert!(error.starts_with("200 again 20 ms"), "{error}");
    }
}

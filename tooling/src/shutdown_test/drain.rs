//! The drain under load: SIGTERM while the manifest's slow requests (uploads,
//! or reads the service answers slowly) and short ones are in flight; every
//! one of them answered, readiness 503, nothing dropped.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::traffic::{self, Acknowledged, Load, Plan};
use super::{EXIT_KILLED, LOAD_LEAD, STOP_MARGIN, Test, human, not_applicable, progress};
use crate::checks::Check;
use crate::docker::container::{Container, State};
use crate::output;

impl Test<'_> {
    pub(super) fn drain_under_load(
        &mut self,
        container: &Container,
        addr: SocketAddr,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<Vec<Acknowledged>> {
        let plan = Plan {
            slow_uploads: self.flags.slow_uploads,
            upload_bytes: 16 * 1024,
            short_workers: self.flags.short_clients,
            short_pause: Duration::from_millis(10),
            short_body_pause: Duration::from_millis(40),
            hold_after_signal: Duration::from_secs(1),
            trickle: Duration::from_millis(500),
            max_requests: 5_000,
            max_duration: shutdown_timeout + STOP_MARGIN + Duration::from_secs(10),
            probe_interval: Duration::from_millis(25),
            held_probes: 4,
            held_probe_spacing: Duration::from_millis(200),
        };
        let drain = &self.metadata.drain;
        progress(&format!(
            "opening {} slow and {} streams of short {}",
            plan.slow_uploads,
            plan.short_workers,
            self.request()
        ));
        let tag = format!("{}-drain", self.tag);
        let load = Load::start(
            Self::client(addr),
            &plan,
            &tag,
            drain,
            drain.readiness.then_some(self.metadata.ready_path.as_str()),
        );
        thread::sleep(LOAD_LEAD);
        let grace = Self::grace(shutdown_timeout);
        progress("stopping the server under load");
        let stop = self.scope.stop_in_background(container, grace);
        let signalled = Instant::now();
        load.signal_sent();
        let stop = stop.and_then(|mut stop| stop.succeed_within(grace + Duration::from_secs(15)));
        let latency = signalled.elapsed();
        let seen = load.finish();
        stop?;
        let state = self.scope.inspect(self.sh, container)?.state;
        self.figures.stop_under_load_ms = Some(output::millis(latency));
        self.judge_drain(&plan, &seen, &state, latency, grace);
        Ok(traffic::acknowledged(&seen.records))
    }

    /// "drain: in-flight requests": every request in flight at the signal
    /// answered 2xx, by a service that drained; `never_drained` says how
    /// it ended when it did not.
    fn judge_in_flight(
        &mut self,
        plan: &Plan,
        seen: &traffic::Seen,
        tally: &traffic::Tally,
        never_drained: Option<&str>,
    ) {
        let uploads = seen
            .records
            .iter()
            .filter(|r| r.kind == traffic::Kind::SlowUpload)
            .collect::<Vec<_>>();
        let uploads_ok = uploads
            .iter()
            .filter(|r| matches!(&r.result, Ok(a) if (200..300).contains(&a.status)))
            .count();
        // The slow requests prove a drain only if they were still arriving
        // or being answered at the signal: a path the service answers at
        // once leaves nothing in flight, and every answer came before it.
        let slow_in_flight = uploads
            .iter()
            .filter(|r| {
                seen.signal_at
                    .is_some_and(|at| r.sent_at < at && r.ended_at >= at)
            })
            .count();
        let short_in_flight = tally.in_flight_at_signal.saturating_sub(slow_in_flight);
        let short_ok = tally.in_flight_completed.saturating_sub(uploads_ok);
        let all_answered = uploads_ok == plan.slow_uploads
            && tally.in_flight_completed == tally.in_flight_at_signal;
        let request = self.request();
        let upload_failures: Vec<String> = uploads
            .iter()
            .filter_map(|r| match &r.result {
                Ok(a) if (200..300).contains(&a.status) => None,
                Ok(a) => Some(format!("{request}: status {} ({})", a.status, r.title)),
                Err(f) => Some(format!("{request}: {} ({})", f.reason, r.title)),
            })
            .collect();
        let because = if let Some(ended) = never_drained {
            format!(
                "the service never drained ({ended}): answers while it ignores SIGTERM prove nothing"
            )
        } else if slow_in_flight == 0 {
            format!(
                "no slow request was in flight at SIGTERM: {request} was answered before the signal, so the drain held nothing; name a path the service answers slowly, or a POST whose body can trickle in"
            )
        } else {
            in_flight_story(
                &upload_failures,
                plan.slow_uploads,
                short_in_flight - short_ok.min(short_in_flight),
                short_in_flight,
            )
        };
        self.push(
            Check::judge(
                "drain: in-flight requests",
                all_answered && slow_in_flight > 0 && never_drained.is_none(),
                format!(
                    "{uploads_ok}/{} slow ({slow_in_flight} in flight at SIGTERM), {short_ok}/{short_in_flight} short answered 2xx",
                    plan.slow_uploads
                ),
                "every request in flight at SIGTERM answered 2xx",
            )
            .because(because),
        );
    }

    fn judge_drain(
        &mut self,
        plan: &Plan,
        seen: &traffic::Seen,
        state: &State,
        latency: Duration,
        grace: Duration,
    ) {
        let tally = traffic::tally(&seen.records, seen.signal_at);
        // Answers prove a drain only if the service drained: a service that
        // ignores SIGTERM answers everything too, until docker kills it.
        let killed = state.exit_code == EXIT_KILLED || latency >= grace;
        let exited_after_finishing = state.exit_code == 0 && !killed;
        let readiness_turned = seen.probes.iter().any(|p| p.status == Some(503));
        let never_drained =
            (killed || !(exited_after_finishing || readiness_turned)).then(|| state.story(grace));
        self.judge_in_flight(plan, seen, &tally, never_drained.as_deref());
        let request = self.request();
        if self.metadata.drain.readiness {
            let (ready_ok, ready_seen) = match traffic::readiness_verdict(&seen.probes) {
                Ok(seen) => (true, seen),
                Err(seen) => (false, seen),
            };
            self.push(
                Check::judge(
                    "drain: readiness answers 503",
                    ready_ok,
                    ready_seen.clone(),
                    "503 while draining, not 200 again",
                )
                .because(ready_seen),
            );
        } else {
            self.push(not_applicable(
                "drain: readiness answers 503",
                "503 while draining, not 200 again",
                "drain.readiness = false",
            ));
        }
        self.push(
            Check::judge(
                "drain: exit status",
                state.exit_code == 0 && !state.oom_killed,
                format!("exit {}", state.exit_code),
                "exit 0",
            )
            .because(state.story(grace)),
        );
        self.push(Check::judge(
            "drain: stop latency under load",
            latency < grace && state.exit_code != EXIT_KILLED,
            human(latency),
            format!("< {} (docker's kill)", human(grace)),
        ));
        self.push(
            Check::judge(
                "requests dropped",
                tally.dropped == 0 && tally.wrong_status == 0,
                format!("{} of {} sent", tally.dropped, tally.sent),
                "0",
            )
            .because(format!(
                "{} dropped, {} wrong statuses, of {request}: {}",
                tally.dropped,
                tally.wrong_status,
                tally.examples.join("; ")
            )),
        );
        self.figures.requests_dropped = Some(tally.dropped);
        self.figures.requests = Some(tally);
    }
}

impl Test<'_> {
    /// The drain's request, as failures name it: `POST /api/v1/notes`.
    pub(super) fn request(&self) -> String {
        let drain = &self.metadata.drain;
        let method = match drain.method {
            crate::metadata::DrainMethod::Get => "GET",
            crate::metadata::DrainMethod::Post => "POST",
        };
        format!("{method} {}", drain.path)
    }
}

/// Why requests in flight at the signal failed, briefly.
fn in_flight_story(
    upload_failures: &[String],
    uploads: usize,
    short_failed: usize,
    short_in_flight: usize,
) -> String {
    let mut story = Vec::new();
    if let Some(first) = upload_failures.first() {
        story.push(format!(
            "{} of {uploads} slow requests failed (first: {first})",
            upload_failures.len()
        ));
    }
    if short_failed > 0 {
        story.push(format!(
            "{short_failed} of {short_in_flight} short requests in flight failed"
        ));
    }
    story.join("; ")
}

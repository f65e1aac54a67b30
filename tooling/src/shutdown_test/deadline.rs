//! The deadline: a request that never completes cannot hold the container
//! past `SHUTDOWN_TIMEOUT`; the server exits non-zero on its own, before
//! docker's kill.

use std::time::Duration;

use anyhow::anyhow;

use super::{
    Broken, BrokenContext, DEADLINE_SLACK, EXIT_KILLED, ShutdownSettings, Test, human,
    not_applicable, progress,
};
use crate::checks::Check;
use crate::http::{Failure, Response, Started, Upload};
use crate::metadata::DrainMethod;
use crate::output;

impl Test<'_> {
    /// A request that never completes must not hold the container past
    /// `SHUTDOWN_TIMEOUT`.
    pub(super) fn deadline(&mut self) {
        if self.metadata.drain.shutdown_timeout_env.is_empty() {
            self.push(not_applicable(
                "deadline",
                "non-zero exit before docker's kill",
                "the service's drain deadline is not configurable (drain.shutdown-timeout-env = \"\")",
            ));
            return;
        }
        if let Some(blocked) = self.blocked {
            self.push(Check::skipped(
                "deadline",
                "non-zero exit before docker's kill",
                format!("not run: {blocked}"),
            ));
            return;
        }
        let result = self.try_deadline();
        self.record_broken(result);
    }

    /// The manifest's request, left in flight: a write whose body never
    /// finishes, or a read the service answers slowly.
    fn hold_request(&self, addr: std::net::SocketAddr) -> Result<Held, String> {
        let drain = &self.metadata.drain;
        let request = self.request();
        let client = Self::client(addr);
        match drain.method {
            DrainMethod::Get => {
                let path = drain.path.clone();
                Ok(Held::Read(std::thread::spawn(move || client.get(&path))))
            }
            DrainMethod::Post => {
                let body = drain.body("never-finished", "");
                let mut upload = match client.begin_upload(
                    &drain.path,
                    &drain.content_type,
                    body.len() + 4096,
                ) {
                    Ok(Started::Continue(upload)) => upload,
                    Ok(Started::Answered(response)) => {
                        return Err(format!(
                            "{request}: answered {} before the body was sent",
                            response.status
                        ));
                    }
                    Err(failure) => return Err(format!("{request}: {}", failure.reason)),
                };
                upload
                    .send(body.as_bytes())
                    .map_err(|f| format!("{request}: {}", f.reason))?;
                Ok(Held::Upload(upload))
            }
        }
    }

    fn try_deadline(&mut self) -> Result<(), Broken> {
        let deadline = self.flags.deadline;
        let grace = Self::grace(deadline);
        let expected = format!(
            "non-zero exit (not {EXIT_KILLED}) {}–{} after SIGTERM",
            human(deadline),
            human(deadline + DEADLINE_SLACK)
        );
        let volume = self
            .scope
            .volume(self.sh, "deadline")
            .broken("deadline", expected.clone())?;
        let (container, _, addr, _) = self
            .start_server(
                "deadline",
                &volume,
                ShutdownSettings::without_delay(deadline),
            )
            .broken("deadline", expected.clone())?;
        let held = self
            .hold_request(addr)
            .map_err(|reason| anyhow!(reason))
            .broken("deadline", expected.clone())?;
        progress("stopping the server with a request that never completes");
        let latency = self
            .scope
            .stop(self.sh, &container, grace)
            .broken("deadline", expected.clone())?;
        // What the unfinished request got, if anything, before the stop.
        let answer = held.answer();
        let state = self
            .scope
            .inspect(self.sh, &container)
            .broken("deadline", expected.clone())?
            .state;
        self.figures.deadline_stop_ms = Some(output::millis(latency));
        self.figures.deadline_exit_code = Some(state.exit_code);
        let on_time = latency + Duration::from_millis(250) >= deadline
            && latency <= deadline + DEADLINE_SLACK;
        let passed =
            state.exit_code != 0 && state.exit_code != EXIT_KILLED && !state.oom_killed && on_time;
        let measured = format!("exit {} after {}", state.exit_code, human(latency));
        let story = if state.exit_code == EXIT_KILLED {
            state.story(grace)
        } else if let Some(answer) = answer.filter(|_| state.exit_code == 0) {
            format!(
                "{measured}: the server answered the unfinished {} with {} itself, \
                 so its own deadline was never reached",
                self.request(),
                answer.status
            )
        } else if state.exit_code == 0 {
            format!("{measured}: exit 0 although a request was cut off unanswered")
        } else if on_time {
            state.story(grace)
        } else if latency < deadline {
            format!("{measured}: exited before the deadline, without waiting for the request")
        } else {
            format!("{measured}: the request held the container past the deadline")
        };
        self.push(Check::judge("deadline", passed, measured, expected).because(story));
        self.scope.remove(container);
        Ok(())
    }
}

/// A request left in flight across the stop.
enum Held {
    Upload(Upload),
    Read(std::thread::JoinHandle<Result<Response, Failure>>),
}

impl Held {
    /// The answer it got before the service stopped, if any.
    fn answer(self) -> Option<Response> {
        match self {
            Held::Upload(upload) => upload.finish().ok(),
            Held::Read(read) => read.join().ok().and_then(Result::ok),
        }
    }
}

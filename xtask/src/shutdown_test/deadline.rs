//! The deadline: a request that never completes cannot hold the container
//! past `SHUTDOWN_TIMEOUT`; the server exits non-zero on its own, before
//! docker's kill.

use std::time::Duration;

use anyhow::anyhow;

use super::{
    Broken, BrokenContext, DEADLINE_SLACK, EXIT_KILLED, NOTES_PATH, ShutdownSettings, Test,
    exit_story, human, progress, request_failed,
};
use crate::checks::Check;
use crate::load::http::Started;
use crate::output;

impl Test<'_> {
    /// A request that never completes must not hold the container past
    /// `SHUTDOWN_TIMEOUT`.
    pub(super) fn deadline(&mut self) {
        let result = self.try_deadline();
        self.record_broken(result);
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
        let mut upload = match Self::client(addr).begin_upload(NOTES_PATH, "application/json", 4096)
        {
            Ok(Started::Continue(upload)) => upload,
            Ok(Started::Answered(response)) => {
                return Err(anyhow!(request_failed(
                    "POST",
                    NOTES_PATH,
                    &format!("answered {} before the body was sent", response.status)
                )))
                .broken("deadline", expected);
            }
            Err(failure) => {
                return Err(anyhow!(request_failed("POST", NOTES_PATH, &failure.reason)))
                    .broken("deadline", expected);
            }
        };
        upload
            .send(br#"{"title":"never finished","body":""#)
            .map_err(|f| anyhow!(request_failed("POST", NOTES_PATH, &f.reason)))
            .broken("deadline", expected.clone())?;
        progress("stopping the server with a request that never completes");
        let latency = self
            .scope
            .stop(self.sh, &container, grace)
            .broken("deadline", expected.clone())?;
        // What the unfinished request got, if anything, before the stop.
        let answer = upload.finish().ok();
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
            exit_story(&state, grace)
        } else if let Some(answer) = answer.filter(|_| state.exit_code == 0) {
            format!(
                "{measured}: the server answered the unfinished POST {NOTES_PATH} with {} itself, \
                 so its own deadline was never reached",
                answer.status
            )
        } else if state.exit_code == 0 {
            format!("{measured}: exit 0 although a request was cut off unanswered")
        } else if on_time {
            exit_story(&state, grace)
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

//! What a shutdown-test run found, as text or `--json`: the settings it ran
//! with, each check, and the figures behind them.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::traffic::Tally;
use crate::checks::{Check, Verdict};
use crate::docker::ImageInspect;
use crate::docker::hardening::Hardening;
use crate::docker::history;
use crate::flags;
use crate::metadata::Drain;
use crate::output::{self, duration as human};

/// The figures behind the checks, for `--json` and the report.
#[derive(Debug, Default, Serialize)]
pub(super) struct Figures {
    /// Each start, in order: first start, restart for the drain, restart to verify.
    pub(super) start_to_ready_ms: Vec<u64>,
    pub(super) start_to_healthy_ms: Option<u64>,
    pub(super) stop_idle_ms: Option<u64>,
    pub(super) stop_under_load_ms: Option<u64>,
    pub(super) deadline_stop_ms: Option<u64>,
    pub(super) deadline_exit_code: Option<i64>,
    pub(super) requests: Option<Tally>,
    pub(super) requests_dropped: Option<usize>,
    pub(super) acknowledged_writes: usize,
    pub(super) writes_found_after_restart: Option<usize>,
    pub(super) health_check_without_server_ms: Option<u64>,
    pub(super) health_check_silent_server_ms: Option<u64>,
    pub(super) removed_containers: usize,
    pub(super) removed_volumes: usize,
}

impl flags::ShutdownTest {
    /// The drain's settings as passed to the service: only the variables
    /// the manifest names, and for the others that none was passed.
    pub(super) fn drain_settings(&self, drain: &Drain) -> String {
        let mut passed = Vec::new();
        let mut unset = Vec::new();
        for (variable, value, what) in [
            (
                &drain.shutdown_timeout_env,
                self.shutdown_timeout,
                "deadline",
            ),
            (&drain.shutdown_delay_env, self.shutdown_delay, "delay"),
        ] {
            if variable.is_empty() {
                unset.push(what);
            } else if !value.is_zero() {
                passed.push(format!("{variable}={}", human(value)));
            }
        }
        let mut text = if passed.is_empty() {
            "no shutdown setting passed".to_owned()
        } else {
            passed.join(" ")
        };
        if !unset.is_empty() {
            let _ = write!(
                text,
                " (the manifest names no variable for its {})",
                unset.join(" or ")
            );
        }
        if !drain.shutdown_delay_env.is_empty() && !self.shutdown_delay.is_zero() {
            text.push_str(
                "; readiness 503 and still serving for the delay, which the stop latency includes",
            );
        }
        text
    }

    /// The settings and figures around the checks, for people and for `--json`.
    pub(super) fn verdict(
        &self,
        name: &str,
        image: &ImageInspect,
        hardening: &Hardening,
        drain: &Drain,
        checks: Vec<Check>,
        figures: &Figures,
    ) -> Verdict {
        let details = serde_json::json!({
            "image": name,
            "image_id": image.id,
            "settings": self.settings_json(hardening, image, drain),
            "figures": figures,
        });
        let headline = format!(
            "stop {} idle, {} under load, {} dropped",
            figures
                .stop_idle_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
            figures
                .stop_under_load_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
            figures
                .requests_dropped
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        );
        Verdict {
            text: self.render(name, image, hardening, drain, figures),
            headline,
            checks,
            ..Verdict::new("shutdown-test", name).with_details(details)
        }
    }

    fn settings_json(
        &self,
        hardening: &Hardening,
        image: &ImageInspect,
        drain: &Drain,
    ) -> serde_json::Value {
        let health = image.config.healthcheck.clone().unwrap_or_default();
        serde_json::json!({
            "hardening": hardening,
            "user": image.config.user,
            "healthcheck_overridden_at_run_time": {
                "interval_ms": output::millis(self.health_interval),
                "start_period_ms": output::millis(self.health_start_period),
                "image_interval_ms": health.interval / 1_000_000,
                "image_timeout_ms": health.timeout / 1_000_000,
            },
            // Only what was passed: a service without the setting got none.
            "shutdown_timeout_ms": (!drain.shutdown_timeout_env.is_empty())
                .then(|| output::millis(self.shutdown_timeout)),
            "shutdown_delay_ms": (!drain.shutdown_delay_env.is_empty())
                .then(|| output::millis(self.shutdown_delay)),
            "deadline_ms": output::millis(self.deadline),
            "slow_uploads": self.slow_uploads,
            "short_clients": self.short_clients,
        })
    }

    fn render(
        &self,
        name: &str,
        image: &ImageInspect,
        hardening: &Hardening,
        drain: &Drain,
        figures: &Figures,
    ) -> String {
        let health = image.config.healthcheck.clone().unwrap_or_default();
        let mut out = format!(
            "image {name} ({})\nrun as: {}, user {}, volume on the data directory\n",
            history::short_id(&image.id),
            hardening.describe(),
            if image.config.user.is_empty() {
                "(root)"
            } else {
                &image.config.user
            },
        );
        let _ = writeln!(
            out,
            "HEALTHCHECK timing overridden at run time: --health-interval={} --health-start-period={} (the image's: interval {}, timeout {})",
            human(self.health_interval),
            human(self.health_start_period),
            human(Duration::from_nanos(health.interval)),
            human(Duration::from_nanos(health.timeout)),
        );
        let _ = writeln!(out, "drain under load: {}", self.drain_settings(drain));
        if let Some(tally) = &figures.requests {
            let _ = writeln!(
                out,
                "requests through the drain: {} sent, {} completed, {} refused with 503, {} not accepted after SIGTERM, {} dropped",
                tally.sent,
                tally.completed,
                tally.refused_while_draining,
                tally.not_accepted_after_signal,
                tally.dropped
            );
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn flags(args: &[&str]) -> flags::ShutdownTest {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            test: flags::ShutdownTest,
        }
        let mut command_line = vec!["shutdown-test"];
        command_line.extend_from_slice(args);
        Cli::parse_from(command_line).test
    }

    fn drain(timeout_env: &str, delay_env: &str) -> Drain {
        let table = format!(
            "method = \"GET\"\npath = \"/slow\"\nshutdown-timeout-env = \"{timeout_env}\"\nshutdown-delay-env = \"{delay_env}\"\n"
        );
        toml::from_str(&table).unwrap()
    }

    #[test]
    fn the_settings_line_names_only_the_variables_passed() {
        let test = flags(&["--shutdown-timeout", "10s", "--shutdown-delay", "1s"]);
        let both = test.drain_settings(&drain("SHUTDOWN_TIMEOUT", "SHUTDOWN_DELAY"));
        assert!(
            both.starts_with("SHUTDOWN_TIMEOUT=10 s SHUTDOWN_DELAY=1 s"),
            "{both}"
        );
        let none = test.drain_settings(&drain("", ""));
        assert!(!none.contains("SHUTDOWN"), "{none}");
        assert!(none.starts_with("no shutdown setting passed"), "{none}");
        assert!(
            none.contains("no variable for its deadline or delay"),
            "{none}"
        );
    }
}

//! What a shutdown-test run found, as text or `--json`: the settings it ran
//! with, each check, and the figures behind them.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::DATA_DIR;
use crate::checks::{self, Check};
use crate::container::Hardening;
use crate::docker::{Healthcheck, ImageInspect};
use crate::drain_load::Tally;
use crate::flags;
use crate::image_history;
use crate::report::{self, duration as human};

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
    pub(super) fn settings_json(
        &self,
        hardening: &Hardening,
        image: &ImageInspect,
        health: &Healthcheck,
    ) -> serde_json::Value {
        serde_json::json!({
            "hardening": {
                "read_only": true,
                "cap_drop": "ALL",
                "no_new_privileges": true,
                "user": image.config.user,
                "tmpfs": "/tmp",
                "volume": DATA_DIR,
                "memory": hardening.memory,
                "cpus": hardening.cpus,
                "pids_limit": hardening.pids_limit,
            },
            "healthcheck_overridden_at_run_time": {
                "interval_ms": report::millis(self.health_interval),
                "start_period_ms": report::millis(self.health_start_period),
                "image_interval_ms": health.interval / 1_000_000,
                "image_timeout_ms": health.timeout / 1_000_000,
            },
            "shutdown_timeout_ms": report::millis(self.shutdown_timeout),
            "deadline_ms": report::millis(self.deadline),
            "slow_uploads": self.slow_uploads,
            "short_clients": self.short_clients,
        })
    }

    pub(super) fn render(
        &self,
        name: &str,
        image: &ImageInspect,
        health: &Healthcheck,
        hardening: &Hardening,
        checks: &[Check],
        figures: &Figures,
    ) -> String {
        let mut out = format!(
            "image {name} ({})\nrun as: --read-only --cap-drop ALL --security-opt no-new-privileges, user {}, tmpfs /tmp, volume {DATA_DIR}, --memory {} --cpus {}\n",
            image_history::short_id(&image.id),
            if image.config.user.is_empty() {
                "(root)"
            } else {
                &image.config.user
            },
            hardening.memory,
            hardening.cpus,
        );
        let _ = write!(
            out,
            "HEALTHCHECK timing overridden at run time: --health-interval={} --health-start-period={} (the image's: interval {}, timeout {})\n\n",
            human(self.health_interval),
            human(self.health_start_period),
            human(Duration::from_nanos(health.interval)),
            human(Duration::from_nanos(health.timeout)),
        );
        out.push_str(&checks::render(checks));
        if let Some(tally) = &figures.requests {
            let _ = write!(
                out,
                "\nrequests through the drain: {} sent, {} completed, {} refused with 503, {} not accepted after SIGTERM, {} dropped\n",
                tally.sent,
                tally.completed,
                tally.refused_while_draining,
                tally.not_accepted_after_signal,
                tally.dropped
            );
        }
        out
    }
}

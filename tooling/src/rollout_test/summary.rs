//! What a rollout proved: the checks, the settings and the figures, for
//! people and for `--json`.

use std::fmt::Write as _;
use std::time::Duration;

use super::{LOAD_PATH, Rollout};
use crate::checks::{Check, Verdict};
use crate::docker::ImageInspect;
use crate::docker::container::env_duration;
use crate::docker::hardening::Hardening;
use crate::docker::history;
use crate::flags;
use crate::output::{Table, duration as human};

/// What the rollouts ran on.
pub struct Subject<'a> {
    pub name: &'a str,
    pub image: &'a ImageInspect,
    pub balancer: &'a str,
    pub hardening: &'a Hardening,
    pub ready_path: &'a str,
}

/// The rollout's checks are named for its delay.
pub fn rollout_check_name(delay: Duration) -> String {
    format!("rollout, SHUTDOWN_DELAY={}", env_duration(delay))
}

/// With the delay, nothing may fail; without it, something must, or the
/// test could not tell the two apart.
pub fn checks(rollout: &Rollout, configured_delay: Duration) -> Vec<Check> {
    let delay = Duration::from_millis(rollout.shutdown_delay_ms);
    let name = rollout_check_name(delay);
    let stops: Vec<String> = rollout
        .stops
        .iter()
        .map(|s| format!("{}: exit {}", s.replica, s.exit_code))
        .collect();
    let clean = rollout.stops.iter().all(|s| s.exit_code == 0);
    let mut checks = vec![Check::judge(
        format!("{name}: replicas restarted"),
        clean && rollout.stops.len() == super::REPLICAS.len(),
        stops.join(", "),
        "each stopped with exit 0 and back in rotation",
    )];
    let requests = &rollout.requests;
    let measured = format!(
        "{} of {} failed ({})",
        requests.failed,
        requests.sent,
        requests.kinds()
    );
    let account = if requests.examples.is_empty() {
        measured.clone()
    } else {
        format!("{measured}; e.g. {}", requests.examples.join("; "))
    };
    if delay.is_zero() && !configured_delay.is_zero() {
        checks.push(
            Check::judge(
                format!("{name}: failed requests (control)"),
                requests.sent > 0 && requests.failed > 0,
                measured,
                "> 0: what the delay prevents (0 would mean the test cannot tell)",
            )
            .because(account),
        );
    } else {
        checks.push(
            Check::judge(
                format!("{name}: failed requests"),
                requests.sent > 0 && requests.failed == 0,
                measured,
                "0, with requests flowing",
            )
            .because(account),
        );
    }
    checks
}

pub fn verdict(
    flags: &flags::RolloutTest,
    subject: &Subject<'_>,
    rollouts: &[Rollout],
    checks: Vec<Check>,
) -> Verdict {
    let failed = |delay_is_zero: bool| {
        rollouts
            .iter()
            .find(|r| (r.shutdown_delay_ms == 0) == delay_is_zero)
            .map_or_else(|| "-".to_owned(), |r| r.requests.failed.to_string())
    };
    let headline = format!(
        "failed requests: {} with SHUTDOWN_DELAY={}, {} with 0",
        failed(false),
        env_duration(flags.shutdown_delay),
        failed(true)
    );
    let details = serde_json::json!({
        "image": subject.name,
        "image_id": subject.image.id,
        "settings": {
            "load_balancer": subject.balancer,
            "check_path": subject.ready_path,
            "check_interval_ms": crate::output::millis(flags.check_interval),
            "check_fall": flags.check_fall,
            "shutdown_delay_ms": crate::output::millis(flags.shutdown_delay),
            "shutdown_timeout_ms": crate::output::millis(flags.shutdown_timeout),
            "clients": flags.clients,
            "rate_per_client": flags.rate,
            "path": LOAD_PATH,
            "hardening": subject.hardening,
        },
        "rollouts": rollouts,
    });
    Verdict {
        text: render(flags, subject, rollouts),
        headline,
        checks,
        ..Verdict::new("rollout-test", subject.name).with_details(details)
    }
}

fn render(flags: &flags::RolloutTest, subject: &Subject<'_>, rollouts: &[Rollout]) -> String {
    let mut out = format!(
        "image {} ({}), 2 replicas, run as: {}\n",
        subject.name,
        history::short_id(&subject.image.id),
        subject.hardening.describe()
    );
    let _ = writeln!(
        out,
        "load balancer: {} (HAProxy, Debian 13), GET {} every {}, out after {} failures (within {}), back after 2 passes",
        subject.balancer,
        subject.ready_path,
        human(flags.check_interval),
        flags.check_fall,
        human(flags.noticed_within()),
    );
    let _ = writeln!(
        out,
        "load: {} clients × {} requests/s, GET {LOAD_PATH} through the load balancer; SHUTDOWN_TIMEOUT={}\n",
        flags.clients,
        flags.rate,
        env_duration(flags.shutdown_timeout),
    );
    let mut table = Table::new(&[
        "SHUTDOWN_DELAY",
        "sent",
        "succeeded",
        "failed",
        "by kind",
        "stops",
    ])
    .right_align(&[1, 2, 3]);
    for rollout in rollouts {
        let stops: Vec<String> = rollout
            .stops
            .iter()
            .map(|s| {
                format!(
                    "{}: exit {} in {}",
                    s.replica,
                    s.exit_code,
                    human(Duration::from_millis(s.took_ms))
                )
            })
            .collect();
        table.row([
            env_duration(Duration::from_millis(rollout.shutdown_delay_ms)),
            rollout.requests.sent.to_string(),
            rollout.requests.succeeded.to_string(),
            rollout.requests.failed.to_string(),
            rollout.requests.kinds(),
            stops.join("; "),
        ]);
    }
    out.push_str(&table.render());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::super::traffic::Tally;
    use super::super::{Rollout, Stop};
    use super::*;
    use crate::checks::Status;

    fn rollout(delay_ms: u64, sent: usize, failed: usize, exit_code: i64) -> Rollout {
        let mut requests = Tally {
            sent,
            succeeded: sent - failed,
            failed,
            ..Tally::default()
        };
        if failed > 0 {
            requests.failed_by_kind.insert("5xx".to_owned(), failed);
            requests.examples.push("status 503".to_owned());
        }
        Rollout {
            shutdown_delay_ms: delay_ms,
            requests,
            stops: ["a", "b"]
                .into_iter()
                .map(|replica| Stop {
                    replica,
                    exit_code,
                    took_ms: 3000,
                })
                .collect(),
        }
    }

    const DELAY: Duration = Duration::from_secs(3);

    #[test]
    fn with_the_delay_one_failed_request_fails_the_check() {
        let passed = checks(&rollout(3000, 500, 0, 0), DELAY);
        assert!(
            passed.iter().all(|c| c.status == Status::Pass),
            "{passed:?}"
        );
        let failed = checks(&rollout(3000, 500, 1, 0), DELAY);
        let check = failed.iter().find(|c| c.failed()).unwrap();
        assert!(check.name.contains("SHUTDOWN_DELAY=3s"), "{}", check.name);
        assert!(check.actual.as_deref().unwrap().contains("status 503"));
    }

    #[test]
    fn without_the_delay_failures_are_expected_and_none_means_no_proof() {
        let control = checks(&rollout(0, 500, 40, 0), DELAY);
        assert!(control.iter().all(|c| !c.failed()), "{control:?}");
        let blind = checks(&rollout(0, 500, 0, 0), DELAY);
        assert!(blind.iter().any(Check::failed), "{blind:?}");
    }

    #[test]
    fn no_requests_sent_proves_nothing() {
        assert!(
            checks(&rollout(3000, 0, 0, 0), DELAY)
                .iter()
                .any(Check::failed)
        );
    }

    #[test]
    fn a_replica_that_did_not_stop_cleanly_fails() {
        let unclean = checks(&rollout(3000, 500, 0, 137), DELAY);
        assert!(unclean[0].failed(), "{unclean:?}");
    }
}

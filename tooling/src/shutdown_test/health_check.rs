//! The image's HEALTHCHECK command's own checks: run in a container, it must
//! exit 1, in time and with a reason, when nothing listens and when the
//! service accepts but never answers.

use std::time::Duration;

use super::Test;
use super::silent_server::SilentServer;
use crate::checks::Check;
use crate::docker::container::{Network, RunSpec};
use crate::output::{self, duration as human};

/// Docker's HEALTHCHECK timeout when the image sets none.
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

impl<'a> Test<'a> {
    /// The image's HEALTHCHECK command: its program and arguments.
    fn probe_command(&self) -> anyhow::Result<(String, Vec<String>)> {
        self.inspect.healthcheck_command()
    }

    fn health_check_spec<'s>(
        &self,
        role: &'s str,
        command: &'s (String, Vec<String>),
        network: Network,
        env: Vec<(String, String)>,
    ) -> RunSpec<'s>
    where
        'a: 's,
    {
        RunSpec {
            network,
            env,
            entrypoint: Some(&command.0),
            command: command.1.clone(),
            ..self.spec(role)
        }
    }

    fn health_timeout(&self) -> Duration {
        match self.inspect.config.healthcheck.as_ref().map(|h| h.timeout) {
            Some(nanos) if nanos > 0 => Duration::from_nanos(nanos),
            _ => DEFAULT_HEALTH_TIMEOUT,
        }
    }

    /// Runs the HEALTHCHECK command in a container and judges its exit;
    /// `also` may name a further reason to fail, once it has exited.
    fn judge_health_check(
        &mut self,
        name: &'static str,
        spec: &RunSpec<'_>,
        setup: &str,
        also: impl FnOnce() -> Option<String>,
    ) -> anyhow::Result<Duration> {
        let timeout = self.health_timeout();
        let (container, started) = self.scope.start(self.sh, spec)?;
        let exited =
            self.scope
                .wait_exit(self.sh, &container, timeout + Duration::from_secs(30))?;
        let ran = exited.state.ran_for().unwrap_or_else(|| started.elapsed());
        let logs = self.scope.logs_tail(self.sh, &container, 5);
        self.scope.remove(container);
        let reason = logs
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let code = exited.state.exit_code;
        let extra = also();
        let passed = code == 1 && ran <= timeout && !reason.is_empty() && extra.is_none();
        let actual = extra.unwrap_or_else(|| {
            format!(
                "{setup}: exit {code} after {}, output {:?}",
                human(ran),
                output::truncate(&logs, 200)
            )
        });
        self.push(
            Check::judge(
                name,
                passed,
                format!("exit {code} after {}: {}", human(ran), reason),
                format!("exit 1 within {} with a reason", human(timeout)),
            )
            .because(actual),
        );
        Ok(ran)
    }

    /// The HEALTHCHECK command with nothing listening.
    pub(super) fn health_check_without_server(&mut self) {
        let name = "health check, nothing listening";
        let ran = self.probe_command().and_then(|command| {
            let spec = self.health_check_spec("health-none", &command, Network::None, Vec::new());
            self.judge_health_check(name, &spec, "no network, nothing listening", || None)
        });
        match ran {
            Ok(ran) => self.figures.health_check_without_server_ms = Some(output::millis(ran)),
            Err(error) => self.push(Check::broken(name, "exit 1 with a reason", &error)),
        }
    }

    /// The HEALTHCHECK command against a listener that accepts and never
    /// answers.
    pub(super) fn health_check_against_silent_server(&mut self) {
        let name = "health check, server not answering";
        match self.try_silent_server(name) {
            Ok(ran) => self.figures.health_check_silent_server_ms = Some(output::millis(ran)),
            Err(error) => self.push(Check::broken(name, "exit 1 within its timeout", &error)),
        }
    }

    fn try_silent_server(&mut self, name: &'static str) -> anyhow::Result<Duration> {
        let command = self.probe_command()?;
        let silent = SilentServer::start(self.health_timeout() + Duration::from_secs(30))?;
        let port = silent.addr.port().to_string();
        // The probe asks 127.0.0.1 on HEALTHCHECK_PORT; LISTEN_ADDR points a
        // service's own probe mode, if the image uses one, the same way.
        let env = vec![
            ("HEALTHCHECK_PORT".to_owned(), port.clone()),
            ("LISTEN_ADDR".to_owned(), silent.addr.to_string()),
        ];
        // The host's network, so the check can reach the silent listener on
        // the host's loopback.
        let spec = self.health_check_spec("health-silent", &command, Network::Host, env);
        let setup = format!("HEALTHCHECK_PORT={port}, accepts and never answers");
        let ran = self.judge_health_check(name, &spec, &setup, || {
            (silent.accepted() == 0)
                .then(|| format!("the health check never connected to port {port}"))
        });
        silent.stop();
        ran
    }
}

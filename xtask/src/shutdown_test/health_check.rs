//! The `--health-check` probe's own checks: `server --health-check` run in
//! a container must exit 1, in time and with a reason, when nothing listens
//! and when the server accepts but never answers.

use std::time::Duration;

use super::Test;
use super::silent_server::SilentServer;
use crate::checks::Check;
use crate::docker::container::{Network, RunSpec};
use crate::metadata;
use crate::output::{self, duration as human};

/// Docker's HEALTHCHECK timeout when the image sets none.
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

impl<'a> Test<'a> {
    fn binary_path(&self) -> String {
        metadata::binary_path(&self.metadata.binary)
    }

    fn health_check_spec<'s>(
        &self,
        role: &'s str,
        binary: &'s str,
        network: Network,
        env: Vec<(String, String)>,
    ) -> RunSpec<'s>
    where
        'a: 's,
    {
        RunSpec {
            network,
            env,
            entrypoint: Some(binary),
            command: vec!["--health-check".to_owned()],
            ..self.spec(role)
        }
    }

    fn health_timeout(&self) -> Duration {
        match self.inspect.config.healthcheck.as_ref().map(|h| h.timeout) {
            Some(nanos) if nanos > 0 => Duration::from_nanos(nanos),
            _ => DEFAULT_HEALTH_TIMEOUT,
        }
    }

    /// Runs `server --health-check` in a container and judges its exit;
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

    /// `server --health-check` with nothing listening.
    pub(super) fn health_check_without_server(&mut self) {
        let binary = self.binary_path();
        let spec = self.health_check_spec("health-none", &binary, Network::None, Vec::new());
        let name = "health check, nothing listening";
        match self.judge_health_check(name, &spec, "no network, nothing listening", || None) {
            Ok(ran) => self.figures.health_check_without_server_ms = Some(output::millis(ran)),
            Err(error) => self.push(Check::broken(name, "exit 1 with a reason", &error)),
        }
    }

    /// `server --health-check` against a server that accepts and never answers.
    pub(super) fn health_check_against_silent_server(&mut self) {
        let name = "health check, server not answering";
        match self.try_silent_server(name) {
            Ok(ran) => self.figures.health_check_silent_server_ms = Some(output::millis(ran)),
            Err(error) => self.push(Check::broken(name, "exit 1 within its timeout", &error)),
        }
    }

    fn try_silent_server(&mut self, name: &'static str) -> anyhow::Result<Duration> {
        let silent = SilentServer::start(self.health_timeout() + Duration::from_secs(30))?;
        let binary = self.binary_path();
        let listen = silent.addr.to_string();
        let env = vec![("LISTEN_ADDR".to_owned(), listen.clone())];
        // The host's network, so the check can reach the silent listener on
        // the host's loopback.
        let spec = self.health_check_spec("health-silent", &binary, Network::Host, env);
        let setup = format!("LISTEN_ADDR={listen}, accepts and never answers");
        let ran = self.judge_health_check(name, &spec, &setup, || {
            (silent.accepted() == 0)
                .then(|| format!("the health check never connected to LISTEN_ADDR={listen}"))
        });
        silent.stop();
        ran
    }
}

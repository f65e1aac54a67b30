//! `healthcheck`: the image's HEALTHCHECK, for any service. It asks
//! `GET http://127.0.0.1:$HEALTHCHECK_PORT$HEALTHCHECK_PATH` and exits 0 on
//! a 2xx answer, 1 otherwise, printing one line that says why. The image
//! sets both variables from the manifest's `port` and `health-path`, so a
//! service needs no probe mode of its own, and the image no shell or curl.
//!
//! Never exit 2: Docker reserves it.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
Usage: healthcheck

Asks GET http://127.0.0.1:$HEALTHCHECK_PORT$HEALTHCHECK_PATH and exits 0 on a
2xx answer, 1 otherwise, with one line saying why.

  HEALTHCHECK_PORT        the service's port, 1-65535 (required)
  HEALTHCHECK_PATH        the path to ask, starting with /  (default /)
  HEALTHCHECK_TIMEOUT_MS  give up after this long, 1-60000  (default 2000)
";

/// Docker's own default probe timeout is 30 s; answering well within it
/// keeps a hung service from stacking up probes.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What to ask, from the environment.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    addr: SocketAddr,
    path: String,
    timeout: Duration,
}

fn main() -> ExitCode {
    if let Some(argument) = std::env::args().nth(1) {
        // Settings come from the environment only; any argument asks for help.
        print!("{USAGE}");
        let asked = matches!(argument.as_str(), "--help" | "-h");
        return if asked {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let outcome = target(|name| std::env::var(name).ok())
        .and_then(|target| healthcheck::probe(target.addr, &target.path, target.timeout));
    match outcome {
        Ok(said) => {
            println!("healthy: {said}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

fn target(var: impl Fn(&str) -> Option<String>) -> Result<Target, String> {
    let port = var("HEALTHCHECK_PORT").ok_or("HEALTHCHECK_PORT is not set")?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("HEALTHCHECK_PORT={port:?} is not a port from 1 to 65535"))?;
    let path = var("HEALTHCHECK_PATH").unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!(
            "HEALTHCHECK_PATH={path:?} must start with / and hold no spaces or control characters"
        ));
    }
    let timeout = match var("HEALTHCHECK_TIMEOUT_MS") {
        None => DEFAULT_TIMEOUT,
        Some(ms) => ms
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=60_000).contains(ms))
            .map(Duration::from_millis)
            .ok_or_else(|| {
                format!("HEALTHCHECK_TIMEOUT_MS={ms:?} is not a whole number from 1 to 60000")
            })?,
    };
    Ok(Target {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        path,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_port_is_required_and_the_rest_defaults() {
        assert_eq!(target(env(&[])), Err("HEALTHCHECK_PORT is not set".into()));
        assert_eq!(
            target(env(&[("HEALTHCHECK_PORT", "3000")])),
            Ok(Target {
                addr: "127.0.0.1:3000".parse().unwrap(),
                path: "/".into(),
                timeout: DEFAULT_TIMEOUT,
            })
        );
    }

    #[test]
    fn bad_settings_are_one_line_each() {
        for (pairs, says) in [
            (&[("HEALTHCHECK_PORT", "0")][..], "HEALTHCHECK_PORT=\"0\""),
            (
                &[("HEALTHCHECK_PORT", "http")][..],
                "HEALTHCHECK_PORT=\"http\"",
            ),
            (
                &[("HEALTHCHECK_PORT", "1"), ("HEALTHCHECK_PATH", "health")][..],
                "must start with /",
            ),
            (
                &[
                    ("HEALTHCHECK_PORT", "1"),
                    ("HEALTHCHECK_PATH", "/a\r\nX: y"),
                ][..],
                "control characters",
            ),
            (
                &[("HEALTHCHECK_PORT", "1"), ("HEALTHCHECK_TIMEOUT_MS", "0")][..],
                "from 1 to 60000",
            ),
        ] {
            let error = target(env(pairs)).unwrap_err();
            assert!(error.contains(says), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}

//! Waiting for a service container to answer its readiness path, and
//! saying why it never did: `image`'s stop check, `shutdown-test` and
//! `rollout-test` wait through here.
//!
//! A wait ends in one of four ways, each named for what a user can act on:
//! - ready: the readiness path answered 200 through the published port;
//! - exited: the container stopped first; its exit code and last log lines
//!   are the cause, never the port lookup that fails after it;
//! - loopback only: the image's own HEALTHCHECK answers inside the
//!   container while the published port does not, so the service listens on
//!   `127.0.0.1` or `::1` rather than on every interface;
//! - never ready: the bound passed; what the path last answered, and the log.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use xshell::Shell;

use crate::docker::ImageInspect;
use crate::docker::container::{Container, Scope};
use crate::http::Client;
use crate::wait::{self, Poll};

/// How long the published port may fail while the container runs before
/// the image's own probe is asked whether the service answers inside.
const LOOPBACK_SUSPICION: Duration = Duration::from_secs(2);

/// Where the service is reached from here.
#[derive(Debug, Clone, Copy)]
pub enum Address {
    /// The port it listens on inside its container, published on loopback.
    Published(u16),
    /// An address it listens on itself (a container on the host's network).
    Fixed(SocketAddr),
}

/// What is waited for, and how long.
pub struct Target<'a> {
    pub address: Address,
    pub ready_path: &'a str,
    /// The image, whose HEALTHCHECK tells a loopback-only listener apart.
    pub image: &'a ImageInspect,
    pub give_up: Duration,
}

/// A service that answered its readiness path.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub addr: SocketAddr,
    /// From `started` to the first 200.
    pub after: Duration,
}

/// Waits for `container`, started at `started`, to be ready.
pub fn wait(
    sh: &Shell,
    scope: &Scope,
    container: &Container,
    target: &Target<'_>,
    started: Instant,
) -> anyhow::Result<Ready> {
    let (mut addr, port) = match target.address {
        Address::Published(port) => (None, Some(port)),
        Address::Fixed(addr) => (Some(addr), None),
    };
    let mut looks = 0u32;
    let mut failing_since: Option<Instant> = None;
    let mut asked_inside = false;
    let path = target.ready_path;
    let waited = wait::until(target.give_up, Duration::from_millis(20), || {
        looks += 1;
        let client = match addr {
            Some(addr) => Client::new(addr, Duration::from_secs(1)),
            None => match scope.published_addr(sh, container, port.unwrap_or_default()) {
                Ok(found) => {
                    addr = Some(found);
                    Client::new(found, Duration::from_secs(1))
                }
                Err(error) => {
                    if let Some(exited) = exited(sh, scope, container)? {
                        return Ok(Poll::Ready(Err(exited)));
                    }
                    return Ok(Poll::Waiting(format!("{error:#}")));
                }
            },
        };
        let seen = match client.get(path) {
            Ok(response) if response.status == 200 => {
                return Ok(Poll::Ready(Ok(client.addr)));
            }
            Ok(response) => {
                failing_since = None;
                format!("GET {path}: status {}", response.status)
            }
            Err(failure) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                // Only a published port can be unreachable while the
                // service answers inside.
                if let Some(port) = port
                    && !asked_inside
                    && since.elapsed() >= LOOPBACK_SUSPICION
                {
                    asked_inside = true;
                    if let Some(exited) = exited(sh, scope, container)? {
                        return Ok(Poll::Ready(Err(exited)));
                    }
                    if answers_inside(sh, scope, container, target.image) {
                        return Ok(Poll::Ready(Err(anyhow!(
                            "it listens on loopback only: the image's HEALTHCHECK answers inside the container, but port {port} does not answer from outside ({}); listen on all interfaces (0.0.0.0 or [::]), not 127.0.0.1",
                            failure.reason
                        ))));
                    }
                }
                format!("GET {path}: {}", failure.reason)
            }
        };
        if looks.is_multiple_of(10)
            && let Some(exited) = exited(sh, scope, container)?
        {
            return Ok(Poll::Ready(Err(exited)));
        }
        Ok(Poll::Waiting(seen))
    });
    match waited {
        Ok(Ok(addr)) => Ok(Ready {
            addr,
            after: started.elapsed(),
        }),
        Ok(Err(cause)) => Err(cause),
        Err(timeout) => {
            // An exit during the last interval is still the cause.
            if let Some(exited) = exited(sh, scope, container)? {
                return Err(exited);
            }
            Err(timeout.context(format!(
                "never ready; its last log lines: {}",
                scope.log_lines(sh, container)
            )))
        }
    }
}

/// The container's own account, once it is no longer running.
fn exited(
    sh: &Shell,
    scope: &Scope,
    container: &Container,
) -> anyhow::Result<Option<anyhow::Error>> {
    let state = scope.inspect(sh, container)?.state;
    Ok((!state.running).then(|| {
        anyhow!(
            "{}",
            scope.exit_story(sh, container, &state, "before it was ready")
        )
    }))
}

/// Whether the image's HEALTHCHECK, run inside the container, succeeds.
fn answers_inside(sh: &Shell, scope: &Scope, container: &Container, image: &ImageInspect) -> bool {
    let Ok((program, args)) = image.healthcheck_command() else {
        return false;
    };
    scope
        .exec_succeeds(sh, container, &program, &args)
        .unwrap_or(false)
}

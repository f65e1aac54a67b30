//! Graceful shutdown. On SIGTERM or SIGINT: readiness turns 503 at once;
//! for `SHUTDOWN_DELAY` new connections are still accepted and served, so
//! that load balancers which have not yet seen the 503 (or, in Kubernetes,
//! the endpoint removal, which propagates concurrently with SIGTERM) lose
//! nothing; then the listener closes, connections without a request in
//! flight close (idle or mid-head), in-flight requests run to completion,
//! the pool closes, exit 0. `SHUTDOWN_TIMEOUT`, counted from the signal,
//! bounds the delay and the drain together (hyper has no deadline of its
//! own, hyper#3188); when it passes, or on a second signal, the process
//! exits non-zero at once.

use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::config::Limits;
use crate::connections;
use crate::state::AppState;

/// Linux's number for SIGXFSZ, the signal a write past `RLIMIT_FSIZE` raises.
const SIGXFSZ: i32 = 25;

/// SIGTERM and SIGINT handlers. Installed explicitly because the kernel gives
/// PID 1 no default action for SIGTERM: without a handler, a container's
/// `docker stop` would be ignored until it escalates to SIGKILL.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    /// Held, never read: with a handler installed, a write past the file
    /// size limit fails with an error the database reports, instead of
    /// SIGXFSZ killing the process.
    _file_too_large: Signal,
}

#[derive(Debug, Clone, Copy)]
pub enum Received {
    Terminate,
    Interrupt,
}

impl Received {
    fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        }
    }

    /// The shell's convention for "killed by this signal": 128 + its number.
    fn exit_code(self) -> ExitCode {
        match self {
            Self::Terminate => ExitCode::from(128 + 15),
            Self::Interrupt => ExitCode::from(128 + 2),
        }
    }
}

impl Signals {
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            _file_too_large: signal(SignalKind::from_raw(SIGXFSZ))?,
        })
    }

    async fn recv(&mut self) -> Received {
        tokio::select! {
            _ = self.terminate.recv() => Received::Terminate,
            _ = self.interrupt.recv() => Received::Interrupt,
        }
    }
}

/// How a shutdown proceeds after the first signal.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From the signal to exit, delay included.
    pub timeout: Duration,
    /// From the signal to the start of the drain: not ready, still serving.
    pub delay: Duration,
}

/// Serves until a signal, keeps serving (not ready) for `delay`, then
/// drains; all within `timeout` of the signal.
///
/// Exit status: 0 after a complete drain, 1 when the deadline passed first,
/// 128 + signal number when a second signal cut the shutdown short.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    state: &AppState,
    mut signals: Signals,
    Deadlines { timeout, delay }: Deadlines,
) -> ExitCode {
    let (begin_drain, drain_requested) = watch::channel(false);
    let serving = connections::serve(
        listener,
        app,
        limits,
        Arc::clone(&state.metrics),
        drain_requested,
    );
    let mut serving = std::pin::pin!(serving);

    let first = tokio::select! {
        () = &mut serving => {
            tracing::error!("server stopped without a signal");
            return ExitCode::FAILURE;
        }
        received = signals.recv() => received,
    };
    let signalled = Instant::now();
    state.draining.start();
    if !delay.is_zero() {
        tracing::info!(
            signal = first.name(),
            delay_ms = millis(delay),
            "shutting down: not ready, still serving until the delay ends"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut serving => {
                tracing::error!("server stopped during the shutdown delay");
                return ExitCode::FAILURE;
            }
            second = signals.recv() => {
                tracing::warn!(
                    signal = second.name(),
                    abandoned = state.metrics.in_flight(),
                    "second signal: exiting at once"
                );
                return second.exit_code();
            }
        }
    }
    tracing::info!(
        signal = first.name(),
        in_flight = state.metrics.in_flight(),
        timeout_ms = millis(timeout),
        "shutting down: draining in-flight requests"
    );
    let _ = begin_drain.send(true);

    let drain = async {
        serving.await;
        state.storage.close().await;
    };
    tokio::select! {
        () = drain => {
            tracing::info!(drain_ms = millis(signalled.elapsed()), "stopped cleanly");
            ExitCode::SUCCESS
        }
        () = tokio::time::sleep(timeout.saturating_sub(signalled.elapsed())) => {
            tracing::error!(
                abandoned = state.metrics.in_flight(),
                timeout_ms = millis(timeout),
                "shutdown deadline passed: abandoning in-flight requests"
            );
            ExitCode::FAILURE
        }
        second = signals.recv() => {
            tracing::warn!(
                signal = second.name(),
                abandoned = state.metrics.in_flight(),
                "second signal: exiting at once"
            );
            second.exit_code()
        }
    }
}

pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

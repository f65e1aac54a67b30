//! `hello`: an example service unlike the notes server. It is stateless,
//! listens on port 3000, and names its own routes:
//!
//! - `GET /livez`: 200 while the process runs;
//! - `GET /readyz`: 200, or 503 once SIGTERM has arrived;
//! - `GET /hello/{name}`: a greeting, as JSON;
//! - `GET /slow?ms=N`: answers after N ms (at most 10000), the request a
//!   drain must let finish.
//!
//! On SIGTERM it turns not ready, waits `SHUTDOWN_DELAY`, stops accepting,
//! lets requests in flight finish and exits 0; past `SHUTDOWN_TIMEOUT` it
//! exits 1. `HANDLE_SIGTERM=false` leaves SIGTERM unhandled, as many
//! services do by mistake: as a container's PID 1 it is then ignored, and
//! only Docker's SIGKILL stops it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::Notify;

/// The longest `/slow` wait: a client cannot hold a connection for long.
const MAX_SLOW_MS: u64 = 10_000;

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("hello: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hello: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(settings))
}

#[derive(Debug)]
struct Settings {
    listen: SocketAddr,
    handle_sigterm: bool,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        Self::from(|name| std::env::var(name).ok())
    }

    fn from(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let listen = match var("LISTEN_ADDR") {
            None => SocketAddr::from(([0, 0, 0, 0], 3000)),
            Some(value) => value
                .parse()
                .map_err(|_| format!("LISTEN_ADDR={value:?} is not an address and port"))?,
        };
        let handle_sigterm = match var("HANDLE_SIGTERM").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(format!("HANDLE_SIGTERM={other:?} is not true or false")),
        };
        let millis = |name: &str, default: u64| -> Result<Duration, String> {
            match var(name) {
                None => Ok(Duration::from_millis(default)),
                Some(value) => value
                    .strip_suffix("ms")
                    .and_then(|ms| ms.parse().ok())
                    .or_else(|| {
                        value
                            .strip_suffix('s')
                            .and_then(|s| s.parse::<u64>().ok())
                            .map(|s| s * 1000)
                    })
                    .map(Duration::from_millis)
                    .ok_or_else(|| format!("{name}={value:?} is not a duration like 500ms or 10s")),
            }
        };
        let shutdown_delay = millis("SHUTDOWN_DELAY", 0)?;
        let shutdown_timeout = millis("SHUTDOWN_TIMEOUT", 30_000)?;
        if shutdown_delay >= shutdown_timeout {
            return Err("SHUTDOWN_DELAY must be shorter than SHUTDOWN_TIMEOUT".to_owned());
        }
        Ok(Settings {
            listen,
            handle_sigterm,
            shutdown_delay,
            shutdown_timeout,
        })
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("hello: cannot listen on {}: {error}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    let ready = Arc::new(AtomicBool::new(true));
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/hello/{name}", get(hello))
        .route("/slow", get(slow))
        .with_state(Arc::clone(&ready));
    let addr = listener.local_addr().map_or(settings.listen, |a| a);
    println!("hello: listening on {addr}");

    if !settings.handle_sigterm {
        println!("hello: SIGTERM is not handled (HANDLE_SIGTERM=false)");
        return match axum::serve(listener, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("hello: {error}");
                ExitCode::FAILURE
            }
        };
    }

    let draining = Arc::new(Notify::new());
    let signalled = {
        let (ready, draining) = (Arc::clone(&ready), Arc::clone(&draining));
        let delay = settings.shutdown_delay;
        async move {
            stop_signal().await;
            ready.store(false, Ordering::SeqCst);
            println!("hello: signal received: not ready, draining");
            draining.notify_one();
            tokio::time::sleep(delay).await;
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signalled);
    let deadline = async {
        draining.notified().await;
        tokio::time::sleep(settings.shutdown_timeout).await;
    };
    tokio::select! {
        outcome = server => match outcome {
            Ok(()) => {
                println!("hello: drained, exiting");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("hello: {error}");
                ExitCode::FAILURE
            }
        },
        () = deadline => {
            eprintln!(
                "hello: SHUTDOWN_TIMEOUT ({} ms) passed with requests in flight",
                settings.shutdown_timeout.as_millis()
            );
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM, or Ctrl+C when run by hand.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                eprintln!("hello: cannot handle SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn readyz(State(ready): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
}

async fn hello(Path(name): Path<String>) -> Json<answers::Greeting> {
    Json(answers::Greeting {
        greeting: format!("hello, {name}"),
    })
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

async fn slow(
    Query(query): Query<SlowQuery>,
) -> Result<Json<answers::Slept>, (StatusCode, String)> {
    let ms = query.ms.unwrap_or(1000);
    if ms > MAX_SLOW_MS {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("ms must be at most {MAX_SLOW_MS}"),
        ));
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(Json(answers::Slept { slept_ms: ms }))
}

/// The JSON answers.
mod answers {
    #[derive(serde::Serialize)]
    pub struct Greeting {
        pub greeting: String,
    }

    #[derive(serde::Serialize)]
    pub struct Slept {
        pub slept_ms: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::from(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_listen_on_3000_and_handle_sigterm() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.listen.port(), 3000);
        assert!(settings.handle_sigterm);
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_settings_say_which() {
        for (pairs, says) in [
            (&[("HANDLE_SIGTERM", "no")][..], "HANDLE_SIGTERM"),
            (&[("SHUTDOWN_TIMEOUT", "10")][..], "SHUTDOWN_TIMEOUT"),
            (&[("LISTEN_ADDR", "here")][..], "LISTEN_ADDR"),
            (
                &[("SHUTDOWN_DELAY", "5s"), ("SHUTDOWN_TIMEOUT", "5s")][..],
                "shorter",
            ),
        ] {
            assert!(settings(pairs).unwrap_err().contains(says), "{says}");
        }
        assert_eq!(
            settings(&[("SHUTDOWN_TIMEOUT", "1500ms")])
                .unwrap()
                .shutdown_timeout,
            Duration::from_millis(1500)
        );
    }
}

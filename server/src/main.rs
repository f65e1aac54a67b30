//! The notes service: read the configuration, open the store, serve, and
//! shut down gracefully on SIGTERM or SIGINT.

mod access_log;
mod body_timeout;
mod config;
mod connections;
mod db_fault;
mod error;
mod health;
mod logging;
mod metrics;
mod page;
mod probe;
mod routes;
mod shutdown;
mod state;
mod storage;
#[cfg(test)]
mod testing;
mod upload;

use std::process::ExitCode;
use std::time::Instant;

use config::{Command, Config};
use state::AppState;
use storage::Storage;

/// Exit status for a bad setting or argument.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let started = Instant::now();
    match Command::from_process() {
        Ok(Command::Serve(config)) => serve(*config, started),
        Ok(Command::HealthCheck(listen_addr)) => probe::run(listen_addr),
        Ok(Command::Help) => {
            println!("{}", config::usage());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("server {}", config::VERSION);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            if config::wants_health_check() {
                ExitCode::FAILURE
            } else {
                ExitCode::from(EXIT_BAD_CONFIG)
            }
        }
    }
}

fn serve(config: Config, started: Instant) -> ExitCode {
    logging::init(config.log_level, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(config, started));
    // Whatever is still running was abandoned on purpose: do not wait for it.
    runtime.shutdown_background();
    code
}

async fn run(config: Config, started: Instant) -> ExitCode {
    // First, so that a signal during start-up is not lost.
    let signals = match shutdown::Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let storage = match Storage::connect(&config.database, config.db_pool_size).await {
        Ok(storage) => storage,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "cannot open the database");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, listen_addr = %config.listen_addr, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let listen_addr = listener.local_addr().unwrap_or(config.listen_addr);

    let state = AppState::new(storage, config.response_limit);
    let app = routes::router(state.clone(), config.body_limit);
    tracing::info!(
        version = config::VERSION,
        listen_addr = %listen_addr,
        database = config.database.kind(),
        db_pool_size = config.db_pool_size,
        body_limit = config.body_limit,
        response_limit = config.response_limit,
        shutdown_timeout_ms = shutdown::millis(config.shutdown_timeout),
        shutdown_delay_ms = shutdown::millis(config.shutdown_delay),
        header_read_timeout_ms = shutdown::millis(config.connection_limits.header_read_timeout),
        body_read_timeout_ms = shutdown::millis(config.connection_limits.body_read_timeout),
        idle_timeout_ms = shutdown::millis(config.connection_limits.idle_timeout),
        max_connections = config.connection_limits.max_connections,
        max_header_bytes = config.connection_limits.max_header_bytes,
        startup_ms = logging::tenths_of_millis(started.elapsed()),
        "ready"
    );
    let deadlines = shutdown::Deadlines {
        timeout: config.shutdown_timeout,
        delay: config.shutdown_delay,
    };
    shutdown::serve(
        listener,
        app,
        config.connection_limits,
        &state,
        signals,
        deadlines,
    )
    .await
}

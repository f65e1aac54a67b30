//! Configuration: environment variables, each overridable by a flag of the
//! same name (`DB_POOL_SIZE` ↔ `--db-pool-size`), all validated before
//! anything starts so that a typo stops the process with one clear line
//! instead of surfacing later as a confusing runtime failure.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::sqlite::SqliteConnectOptions;
use tracing::level_filters::LevelFilter;

/// What bounds a connection (`connections` holds each to it).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
    pub max_header_bytes: usize,
}

/// The server's version, reported by `--version`, `/health` and `/metrics`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
pub const DATABASE_URL: &str = "DATABASE_URL";
pub const DATA_DIR: &str = "DATA_DIR";
pub const DB_POOL_SIZE: &str = "DB_POOL_SIZE";
pub const BODY_LIMIT: &str = "BODY_LIMIT";
pub const RESPONSE_LIMIT: &str = "RESPONSE_LIMIT";
pub const SHUTDOWN_TIMEOUT: &str = "SHUTDOWN_TIMEOUT";
pub const SHUTDOWN_DELAY: &str = "SHUTDOWN_DELAY";
pub const HEADER_READ_TIMEOUT: &str = "HEADER_READ_TIMEOUT";
pub const BODY_READ_TIMEOUT: &str = "BODY_READ_TIMEOUT";
pub const IDLE_TIMEOUT: &str = "IDLE_TIMEOUT";
pub const MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
pub const MAX_HEADER_BYTES: &str = "MAX_HEADER_BYTES";
pub const LOG_LEVEL: &str = "LOG_LEVEL";
pub const LOG_FORMAT: &str = "LOG_FORMAT";

const SETTINGS: [&str; 15] = [
    LISTEN_ADDR,
    DATABASE_URL,
    DATA_DIR,
    DB_POOL_SIZE,
    BODY_LIMIT,
    RESPONSE_LIMIT,
    SHUTDOWN_TIMEOUT,
    SHUTDOWN_DELAY,
    HEADER_READ_TIMEOUT,
    BODY_READ_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    LOG_LEVEL,
    LOG_FORMAT,
];

const DEFAULT_LISTEN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
const DEFAULT_DATA_DIR: &str = "data";
/// The SQLite database's file in `DATA_DIR`, when `DATABASE_URL` is not set.
const DEFAULT_DATABASE_FILE: &str = "server.db";
const DEFAULT_DB_POOL_SIZE: u32 = 5;
const MAX_DB_POOL_SIZE: u32 = 1000;
const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
const MAX_BODY_LIMIT: usize = 1024 * 1024 * 1024;
/// Envoy's default buffer limit per connection: a page fits a proxy's buffer.
const DEFAULT_RESPONSE_LIMIT: usize = 1024 * 1024;
/// Room for a page's envelope and one small note.
const MIN_RESPONSE_LIMIT: usize = 1024;
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::ZERO;
// nginx's defaults: client_header_timeout, client_body_timeout and
// keepalive_timeout; worker_connections; large_client_header_buffers 4 8k.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_mins(1);
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_mins(1);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
const DEFAULT_MAX_CONNECTIONS: u32 = 512;
const MAX_MAX_CONNECTIONS: u32 = 1_000_000;
const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper's floor for its read buffer, and its default ceiling.
const MAX_HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 8 * 1024..=400 * 1024;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    /// Probe a running server's liveness endpoint on this address.
    HealthCheck(SocketAddr),
    Help,
    Version,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub database: Database,
    pub db_pool_size: u32,
    pub body_limit: usize,
    pub response_limit: usize,
    pub shutdown_timeout: Duration,
    /// How long readiness answers 503 while new connections are still
    /// served, before the drain; part of `shutdown_timeout`.
    pub shutdown_delay: Duration,
    pub connection_limits: Limits,
    pub log_level: LevelFilter,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// One bad setting or argument: names it, quotes the value, says what was
/// expected. Printed as the single line a user sees.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    name: String,
    value: String,
    expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.name, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// `--help`: every setting with its default, read from the constants the
/// parser uses, so the two cannot disagree.
pub fn usage() -> String {
    let secs = |duration: Duration| format!("{}s", duration.as_secs());
    format!(
        "\
Usage: server [serve] [--NAME=VALUE ...]
       server --health-check [--listen-addr=ADDR]
       server --help | --version

Settings come from the environment; a flag overrides the variable of the same
name (--db-pool-size overrides DB_POOL_SIZE).

  LISTEN_ADDR          address to listen on             (default {DEFAULT_LISTEN_ADDR})
  DATABASE_URL         sqlite://PATH or postgres://...  (default sqlite://DATA_DIR/{DEFAULT_DATABASE_FILE})
  DATA_DIR             directory of the default SQLite database
                       (default {DEFAULT_DATA_DIR}; the image sets its volume)
  DB_POOL_SIZE         database connections, 1-1000     (default {DEFAULT_DB_POOL_SIZE})
  BODY_LIMIT           largest request body, in bytes   (default {DEFAULT_BODY_LIMIT})
  RESPONSE_LIMIT       largest page of notes, in bytes  (default {DEFAULT_RESPONSE_LIMIT})
  SHUTDOWN_TIMEOUT     drain deadline, e.g. 500ms, 10s  (default {shutdown_timeout})
  SHUTDOWN_DELAY       not ready but serving before the drain, within
                       SHUTDOWN_TIMEOUT, e.g. 5s        (default {shutdown_delay})
  HEADER_READ_TIMEOUT  time to send a request head      (default {header_read_timeout})
  BODY_READ_TIMEOUT    longest pause within a body      (default {body_read_timeout})
  IDLE_TIMEOUT         keep-alive between requests      (default {idle_timeout})
  MAX_CONNECTIONS      open connections, 1-1000000      (default {DEFAULT_MAX_CONNECTIONS})
  MAX_HEADER_BYTES     largest head, 8192-409600 bytes  (default {DEFAULT_MAX_HEADER_BYTES})
  LOG_LEVEL            error, warn, info, debug, trace  (default info)
  LOG_FORMAT           text or json, to stdout          (default text)

--health-check asks the running server's GET /health over loopback and exits
0 when it answers 2xx, 1 otherwise.",
        shutdown_timeout = secs(DEFAULT_SHUTDOWN_TIMEOUT),
        shutdown_delay = secs(DEFAULT_SHUTDOWN_DELAY),
        header_read_timeout = secs(DEFAULT_HEADER_READ_TIMEOUT),
        body_read_timeout = secs(DEFAULT_BODY_READ_TIMEOUT),
        idle_timeout = secs(DEFAULT_IDLE_TIMEOUT),
    )
}

impl Command {
    /// Reads the process's own arguments and environment. Text that is not
    /// UTF-8 is taken lossily, so it fails validation instead of panicking.
    pub fn from_process() -> Result<Self, ConfigError> {
        Self::parse(process_args(), |name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// `args` excludes the program name; `env` looks a variable up.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parsed = Arguments::parse(args)?;
        if parsed.help {
            return Ok(Self::Help);
        }
        if parsed.version {
            return Ok(Self::Version);
        }
        let lookup = Lookup {
            flags: &parsed.flags,
            env: &env,
        };
        if parsed.health_check {
            // The probe needs only the port; a bad DATABASE_URL must not make
            // a healthy container look unhealthy.
            return Ok(Self::HealthCheck(lookup.listen_addr()?));
        }
        let shutdown_timeout = lookup.shutdown_timeout()?;
        Ok(Self::Serve(Box::new(Config {
            listen_addr: lookup.listen_addr()?,
            database: lookup.database()?,
            db_pool_size: lookup.db_pool_size()?,
            body_limit: lookup.body_limit()?,
            response_limit: lookup.response_limit()?,
            shutdown_timeout,
            shutdown_delay: lookup.shutdown_delay(shutdown_timeout)?,
            connection_limits: Limits {
                header_read_timeout: lookup
                    .timeout(HEADER_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT)?,
                body_read_timeout: lookup.timeout(BODY_READ_TIMEOUT, DEFAULT_BODY_READ_TIMEOUT)?,
                idle_timeout: lookup.timeout(IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT)?,
                max_connections: lookup.max_connections()?,
                max_header_bytes: lookup.max_header_bytes()?,
            },
            log_level: lookup.log_level()?,
            log_format: lookup.log_format()?,
        })))
    }
}

/// The process's arguments, without the program name.
fn process_args() -> impl Iterator<Item = String> {
    std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
}

/// True when the arguments ask for the health probe, whose failures must use
/// exit status 1: Docker reserves 2 for itself.
pub fn wants_health_check() -> bool {
    process_args().any(|arg| arg == "--health-check")
}

impl Database {
    /// The name used in logs and in readiness checks.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

#[derive(Default)]
struct Arguments {
    help: bool,
    version: bool,
    health_check: bool,
    /// Flag values, keyed by the variable name they override.
    flags: Vec<(&'static str, String)>,
}

impl Arguments {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ConfigError> {
        let mut parsed = Self::default();
        let mut args = args.into_iter().peekable();
        let mut first = true;
        while let Some(arg) = args.next() {
            let is_first = std::mem::replace(&mut first, false);
            match arg.as_str() {
                "serve" if is_first => {}
                "-h" | "--help" | "help" => parsed.help = true,
                "-V" | "--version" => parsed.version = true,
                "--health-check" => parsed.health_check = true,
                _ if arg.starts_with("--") => {
                    let (flag, inline_value) = match arg.split_once('=') {
                        Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                        None => (arg.clone(), None),
                    };
                    let Some(name) = setting_for_flag(&flag) else {
                        return Err(unknown_argument(&arg));
                    };
                    let value = match inline_value {
                        Some(value) => value,
                        None => args.next().ok_or_else(|| ConfigError {
                            name: flag.clone(),
                            value: String::new(),
                            expected: format!("a value after {flag}"),
                        })?,
                    };
                    parsed.flags.push((name, value));
                }
                _ => return Err(unknown_argument(&arg)),
            }
        }
        Ok(parsed)
    }
}

fn unknown_argument(arg: &str) -> ConfigError {
    ConfigError {
        name: "argument".to_owned(),
        value: arg.to_owned(),
        expected: "serve, --health-check, --help, --version or --NAME=VALUE (see --help)"
            .to_owned(),
    }
}

fn flag_for(name: &str) -> String {
    format!("--{}", name.to_ascii_lowercase().replace('_', "-"))
}

fn setting_for_flag(flag: &str) -> Option<&'static str> {
    SETTINGS.into_iter().find(|name| flag_for(name) == flag)
}

/// Finds each setting's raw value: a flag wins over the environment.
struct Lookup<'a> {
    flags: &'a [(&'static str, String)],
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// A raw value and the name it was given under, for error messages.
struct Raw {
    name: String,
    value: String,
}

impl Raw {
    fn invalid(&self, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            name: self.name.clone(),
            value: self.value.clone(),
            expected: expected.into(),
        }
    }
}

impl Lookup<'_> {
    fn raw(&self, name: &'static str) -> Option<Raw> {
        if let Some((_, value)) = self.flags.iter().rev().find(|(flag, _)| *flag == name) {
            return Some(Raw {
                name: flag_for(name),
                value: value.clone(),
            });
        }
        (self.env)(name).map(|value| Raw {
            name: name.to_owned(),
            value,
        })
    }

    fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let Some(raw) = self.raw(LISTEN_ADDR) else {
            return Ok(DEFAULT_LISTEN_ADDR);
        };
        raw.value
            .parse()
            .map_err(|_| raw.invalid("an IP address and port, e.g. 0.0.0.0:8080 or [::]:8080"))
    }

    fn database(&self) -> Result<Database, ConfigError> {
        if let Some(raw) = self.raw(DATABASE_URL) {
            return parse_database_url(&raw);
        }
        let data_dir = match self.raw(DATA_DIR) {
            Some(raw) if raw.value.trim().is_empty() => {
                return Err(raw.invalid("a directory, e.g. /data"));
            }
            Some(raw) => raw.value,
            None => DEFAULT_DATA_DIR.to_owned(),
        };
        let path = format!("{}/{DEFAULT_DATABASE_FILE}", data_dir.trim_end_matches('/'));
        parse_database_url(&Raw {
            name: DATA_DIR.to_owned(),
            value: format!("sqlite://{path}"),
        })
    }

    fn db_pool_size(&self) -> Result<u32, ConfigError> {
        let Some(raw) = self.raw(DB_POOL_SIZE) else {
            return Ok(DEFAULT_DB_POOL_SIZE);
        };
        match raw.value.parse::<u32>() {
            Ok(size) if (1..=MAX_DB_POOL_SIZE).contains(&size) => Ok(size),
            _ => Err(raw.invalid(format!("a whole number from 1 to {MAX_DB_POOL_SIZE}"))),
        }
    }

    fn body_limit(&self) -> Result<usize, ConfigError> {
        let Some(raw) = self.raw(BODY_LIMIT) else {
            return Ok(DEFAULT_BODY_LIMIT);
        };
        match raw.value.parse::<usize>() {
            Ok(limit) if (1..=MAX_BODY_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(raw.invalid(format!(
                "a number of bytes from 1 to {MAX_BODY_LIMIT}, e.g. 65536"
            ))),
        }
    }

    fn response_limit(&self) -> Result<usize, ConfigError> {
        let Some(raw) = self.raw(RESPONSE_LIMIT) else {
            return Ok(DEFAULT_RESPONSE_LIMIT);
        };
        match raw.value.parse::<usize>() {
            Ok(limit) if (MIN_RESPONSE_LIMIT..=MAX_BODY_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(raw.invalid(format!(
                "a number of bytes from {MIN_RESPONSE_LIMIT} to {MAX_BODY_LIMIT}, e.g. 1048576"
            ))),
        }
    }

    fn shutdown_timeout(&self) -> Result<Duration, ConfigError> {
        self.timeout(SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT)
    }

    fn max_connections(&self) -> Result<u32, ConfigError> {
        let Some(raw) = self.raw(MAX_CONNECTIONS) else {
            return Ok(DEFAULT_MAX_CONNECTIONS);
        };
        match raw.value.parse::<u32>() {
            Ok(count) if (1..=MAX_MAX_CONNECTIONS).contains(&count) => Ok(count),
            _ => Err(raw.invalid(format!("a whole number from 1 to {MAX_MAX_CONNECTIONS}"))),
        }
    }

    fn max_header_bytes(&self) -> Result<usize, ConfigError> {
        let Some(raw) = self.raw(MAX_HEADER_BYTES) else {
            return Ok(DEFAULT_MAX_HEADER_BYTES);
        };
        match raw.value.parse::<usize>() {
            Ok(bytes) if MAX_HEADER_BYTES_RANGE.contains(&bytes) => Ok(bytes),
            _ => Err(raw.invalid(format!(
                "a number of bytes from {} to {}, e.g. 32768",
                MAX_HEADER_BYTES_RANGE.start(),
                MAX_HEADER_BYTES_RANGE.end()
            ))),
        }
    }

    /// A positive duration with a unit, or `default` when unset.
    fn timeout(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let Some(raw) = self.raw(name) else {
            return Ok(default);
        };
        match parse_duration(&raw.value) {
            Some(timeout) if !timeout.is_zero() => Ok(timeout),
            _ => Err(raw
                .invalid("a positive whole number with a unit ms, s or m, e.g. 500ms, 10s or 2m")),
        }
    }

    /// Shorter than the timeout, which bounds the delay and the drain together.
    fn shutdown_delay(&self, timeout: Duration) -> Result<Duration, ConfigError> {
        let Some(raw) = self.raw(SHUTDOWN_DELAY) else {
            return Ok(DEFAULT_SHUTDOWN_DELAY);
        };
        match parse_duration(&raw.value) {
            Some(delay) if delay < timeout => Ok(delay),
            _ => Err(raw.invalid(format!(
                "a whole number with a unit ms, s or m, e.g. 0s or 5s, shorter than \
                 SHUTDOWN_TIMEOUT ({}ms)",
                timeout.as_millis()
            ))),
        }
    }

    fn log_level(&self) -> Result<LevelFilter, ConfigError> {
        let Some(raw) = self.raw(LOG_LEVEL) else {
            return Ok(LevelFilter::INFO);
        };
        match raw.value.to_ascii_lowercase().as_str() {
            "error" => Ok(LevelFilter::ERROR),
            "warn" => Ok(LevelFilter::WARN),
            "info" => Ok(LevelFilter::INFO),
            "debug" => Ok(LevelFilter::DEBUG),
            "trace" => Ok(LevelFilter::TRACE),
            _ => Err(raw.invalid("one of error, warn, info, debug, trace")),
        }
    }

    fn log_format(&self) -> Result<LogFormat, ConfigError> {
        let Some(raw) = self.raw(LOG_FORMAT) else {
            return Ok(LogFormat::Text);
        };
        match raw.value.to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(raw.invalid("json or text")),
        }
    }
}

fn parse_database_url(raw: &Raw) -> Result<Database, ConfigError> {
    let url = raw.value.as_str();
    // The error line goes to logs: it must not carry the password.
    let raw = &Raw {
        name: raw.name.clone(),
        value: redact_password(url),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| raw.invalid(format!("a valid PostgreSQL URL ({error})")))?;
        // This build carries no TLS stack (no OpenSSL, a smaller image): say
        // so now rather than fail on the first connection.
        return match options.get_ssl_mode() {
            PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer => {
                Ok(Database::Postgres(options))
            }
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => {
                Err(raw.invalid("sslmode disable, allow or prefer: this build has no TLS support"))
            }
        };
    }
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| raw.invalid(format!("a valid SQLite URL ({error})")))?;
        return Ok(Database::Sqlite(options));
    }
    Err(raw.invalid("sqlite://PATH, postgres://… or postgresql://…"))
}

/// `scheme://user:secret@host/…` becomes `scheme://user:***@host/…`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = userinfo.split_once(':') else {
        return url.to_owned();
    };
    format!("{scheme}://{user}:***@{host}{path}")
}

/// Parses `500ms`, `10s` or `2m`. A unit is required: a bare `30` would be
/// ambiguous between seconds and milliseconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Command::parse(args.iter().map(|a| (*a).to_owned()), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn serve(args: &[&str], env: &[(&str, &str)]) -> Config {
        match parse(args, env) {
            Ok(Command::Serve(config)) => *config,
            other => panic!("expected a serve command, got {other:?}"),
        }
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        match parse(args, env) {
            Err(error) => error.to_string(),
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = serve(&[], &[]);
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.database.kind(), "sqlite");
        assert_eq!(config.db_pool_size, 5);
        assert_eq!(config.body_limit, 65536);
        assert_eq!(config.response_limit, 1_048_576);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(config.shutdown_delay, Duration::ZERO);
        let limits = config.connection_limits;
        assert_eq!(limits.header_read_timeout, Duration::from_mins(1));
        assert_eq!(limits.body_read_timeout, Duration::from_mins(1));
        assert_eq!(limits.idle_timeout, Duration::from_secs(75));
        assert_eq!(limits.max_connections, 512);
        assert_eq!(limits.max_header_bytes, 32768);
        assert_eq!(config.log_level, LevelFilter::INFO);
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn default_database_is_a_file_relative_to_the_working_directory() {
        let Database::Sqlite(options) = serve(&[], &[]).database else {
            panic!("default database should be SQLite");
        };
        assert_eq!(
            options.get_filename(),
            std::path::Path::new("data/server.db")
        );
    }

    #[test]
    fn serve_subcommand_is_the_same_as_no_subcommand() {
        let config = serve(&["serve"], &[("LISTEN_ADDR", "127.0.0.1:9000")]);
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:9000");
    }

    #[test]
    fn a_flag_overrides_its_environment_variable() {
        let config = serve(
            &["--db-pool-size", "7", "--shutdown-timeout=500ms"],
            &[("DB_POOL_SIZE", "3"), ("SHUTDOWN_TIMEOUT", "10s")],
        );
        assert_eq!(config.db_pool_size, 7);
        assert_eq!(config.shutdown_timeout, Duration::from_millis(500));
    }

    #[test]
    fn the_shutdown_delay_must_leave_time_to_drain() {
        let config = serve(&["--shutdown-delay=5s"], &[("SHUTDOWN_TIMEOUT", "30s")]);
        assert_eq!(config.shutdown_delay, Duration::from_secs(5));
        assert_eq!(
            serve(&[], &[("SHUTDOWN_DELAY", "0s")]).shutdown_delay,
            Duration::ZERO
        );
        let message = error(
            &[],
            &[("SHUTDOWN_DELAY", "10s"), ("SHUTDOWN_TIMEOUT", "10s")],
        );
        assert!(
            message.contains("shorter than SHUTDOWN_TIMEOUT (10000ms)"),
            "{message}"
        );
    }

    #[test]
    fn the_default_database_lives_in_data_dir() {
        let file = |env: &[(&str, &str)]| match serve(&[], env).database {
            Database::Sqlite(options) => options.get_filename().to_path_buf(),
            Database::Postgres(_) => panic!("not SQLite"),
        };
        assert_eq!(file(&[]), std::path::Path::new("data/server.db"));
        assert_eq!(
            file(&[("DATA_DIR", "/data/")]),
            std::path::Path::new("/data/server.db")
        );
        assert_eq!(
            file(&[("DATA_DIR", "/data"), ("DATABASE_URL", "sqlite:///x/y.db")]),
            std::path::Path::new("/x/y.db")
        );
        assert!(error(&[], &[("DATA_DIR", " ")]).contains("DATA_DIR"));
    }

    #[test]
    fn postgres_urls_select_postgres() {
        for url in [
            "postgres://u@127.0.0.1/db",
            "postgresql://u@localhost:5433/db",
        ] {
            assert_eq!(
                serve(&[], &[("DATABASE_URL", url)]).database.kind(),
                "postgres"
            );
        }
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_mins(2)));
        for bad in ["30", "s", "1.5s", "-1s", "10 s", "10h", ""] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_value_names_the_variable_the_value_and_what_was_expected() {
        assert_eq!(
            error(&[], &[("SHUTDOWN_TIMEOUT", "soon")]),
            "invalid SHUTDOWN_TIMEOUT=\"soon\": expected a positive whole number with a unit \
             ms, s or m, e.g. 500ms, 10s or 2m"
        );
    }

    #[test]
    fn a_bad_flag_value_names_the_flag() {
        assert!(error(&["--body-limit=lots"], &[]).starts_with("invalid --body-limit=\"lots\""));
    }

    #[test]
    fn each_setting_rejects_nonsense() {
        let cases = [
            ("LISTEN_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://db"),
            ("DB_POOL_SIZE", "0"),
            ("BODY_LIMIT", "-1"),
            ("RESPONSE_LIMIT", "100"),
            ("SHUTDOWN_TIMEOUT", "0s"),
            ("SHUTDOWN_DELAY", "5"),
            ("HEADER_READ_TIMEOUT", "10"),
            ("BODY_READ_TIMEOUT", "0ms"),
            ("IDLE_TIMEOUT", "forever"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_HEADER_BYTES", "100"),
            ("LOG_LEVEL", "loud"),
            ("LOG_FORMAT", "xml"),
        ];
        for (name, value) in cases {
            let message = error(&[], &[(name, value)]);
            assert!(
                message.starts_with(&format!("invalid {name}={value:?}: expected ")),
                "{message}"
            );
        }
    }

    #[test]
    fn postgres_tls_is_refused_because_this_build_has_none() {
        let message = error(
            &[],
            &[("DATABASE_URL", "postgres://u@db/app?sslmode=require")],
        );
        assert!(message.contains("no TLS support"), "{message}");
    }

    #[test]
    fn a_database_password_never_appears_in_an_error() {
        let message = error(
            &[],
            &[(
                "DATABASE_URL",
                "postgres://app:s3cret@db:5432/app?sslmode=verify-full",
            )],
        );
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            message.contains("postgres://app:***@db:5432/app?sslmode=verify-full"),
            "{message}"
        );
    }

    #[test]
    fn urls_without_a_password_are_left_alone() {
        for url in [
            "sqlite://data/x.db",
            "postgres://app@db/app",
            "postgres://db/a@b",
        ] {
            assert_eq!(redact_password(url), url);
        }
    }

    #[test]
    fn unknown_arguments_are_errors() {
        assert!(error(&["--listen"], &[]).starts_with("invalid argument=\"--listen\""));
        assert!(error(&["bogus"], &[]).starts_with("invalid argument=\"bogus\""));
    }

    #[test]
    fn health_check_reads_only_the_listen_address() {
        let command = parse(
            &["--health-check"],
            &[("LISTEN_ADDR", "[::]:9090"), ("DATABASE_URL", "nonsense")],
        );
        let Ok(Command::HealthCheck(addr)) = command else {
            panic!("expected a health check, got {command:?}");
        };
        assert_eq!(addr.port(), 9090);
    }

    /// The settings' defaults are stated once, as constants; the usage text
    /// and docs/server.md both show them from there.
    /// `UPDATE_SERVER_USAGE=1 cargo test -p server docs_carry` writes the
    /// docs' copy anew.
    #[test]
    fn the_docs_carry_the_usage() {
        const BEGIN: &str = "<!-- server --help -->\n```text\n";
        const END: &str = "```\n<!-- end of server --help -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/server.md");
        let docs = std::fs::read_to_string(&path).unwrap();
        let start = docs.find(BEGIN).expect("docs/server.md marks the usage") + BEGIN.len();
        let end = start + docs[start..].find(END).expect("the usage block ends");
        let usage = format!("{}\n", usage());
        if std::env::var_os("UPDATE_SERVER_USAGE").is_some() {
            let updated = format!("{}{usage}{}", &docs[..start], &docs[end..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            assert!(
                docs[start..end] == usage,
                "docs/server.md shows an old `server --help`; \
                 UPDATE_SERVER_USAGE=1 cargo test -p server docs_carry writes it anew"
            );
        }
    }
}

//! newsletter: an example service of the shape most teams ship, adopted by
//! the workspace through its manifest table alone (`xtask.toml`).
//!
//! - actix-web, not axum;
//! - subscriptions kept in PostgreSQL, a running count in Redis: both must
//!   answer at start, or it exits 1 naming the one that does not;
//! - settings from `configuration/base.toml` and then
//!   `configuration/<APP_ENVIRONMENT>.toml` (default `local`), read from the
//!   working directory; the addresses of PostgreSQL and Redis, which carry
//!   credentials, only from the environment (`APP_DATABASE_URL`,
//!   `APP_REDIS_URL`);
//! - `NEWSLETTER_BUILD_CHANNEL` set at build time (a release build fails
//!   without);
//! - OpenSSL, linked dynamically, for each subscription's token;
//! - SIGTERM: readiness answers 503, the listener stops taking connections,
//!   and what is in flight finishes before it exits 0; past
//!   `APP_SHUTDOWN_TIMEOUT` it exits 1.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;

/// Where this build came from, fixed at compile time by the manifest's
/// `build-env`: a release build fails without it, as a service using
/// sqlx's checked queries fails without `SQLX_OFFLINE`. Debug builds (the
/// workspace's tests and lints) do without.
#[cfg(not(debug_assertions))]
const BUILD_CHANNEL: &str = env!("NEWSLETTER_BUILD_CHANNEL");
#[cfg(debug_assertions)]
const BUILD_CHANNEL: &str = match option_env!("NEWSLETTER_BUILD_CHANNEL") {
    Some(channel) => channel,
    None => "debug",
};
/// How long PostgreSQL and Redis have to answer at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct Settings {
    application: Application,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Application {
    host: String,
    port: u16,
    /// From the signal to a forced exit.
    shutdown_timeout_secs: u64,
    /// `postgres`, or `memory` for trying it out without a database (and
    /// without durability).
    storage: String,
}

/// The whole configuration, from the files and the environment.
struct Config {
    application: Application,
    database_url: String,
    redis_url: String,
    shutdown_timeout: Duration,
}

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("newsletter: Failed to read configuration: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("newsletter: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(config))
}

impl Config {
    fn load() -> Result<Config, String> {
        let environment = std::env::var("APP_ENVIRONMENT").unwrap_or_else(|_| "local".to_owned());
        let mut table = read_table("configuration/base.toml")?;
        let overlay = read_table(&format!("configuration/{environment}.toml"))?;
        merge(&mut table, overlay);
        if let Ok(storage) = std::env::var("APP_STORAGE") {
            table
                .entry("application")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or("application is not a table")?
                .insert("storage".to_owned(), toml::Value::String(storage));
        }
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .map_err(|error| format!("configuration: {error}"))?;
        if !["postgres", "memory"].contains(&settings.application.storage.as_str()) {
            return Err(format!(
                "application.storage {:?} is not postgres or memory",
                settings.application.storage
            ));
        }
        let variable = |name: &str| {
            std::env::var(name).map_err(|_| {
                format!("{name} is not set (it holds credentials, so it is never in a file)")
            })
        };
        let shutdown_timeout = match std::env::var("APP_SHUTDOWN_TIMEOUT") {
            Ok(value) => parse_duration(&value).ok_or_else(|| {
                format!("APP_SHUTDOWN_TIMEOUT={value:?} is not like 10s or 1500ms")
            })?,
            Err(_) => Duration::from_secs(settings.application.shutdown_timeout_secs),
        };
        Ok(Config {
            database_url: variable("APP_DATABASE_URL")?,
            redis_url: variable("APP_REDIS_URL")?,
            application: settings.application,
            shutdown_timeout,
        })
    }
}

fn read_table(path: &str) -> Result<toml::Table, String> {
    let cwd = std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string());
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("configuration file \"{cwd}/{path}\" not found ({error})"))?;
    text.parse::<toml::Table>()
        .map_err(|error| format!("{path}: {error}"))
}

/// `overlay`'s keys over `base`'s, table by table.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(overlay)) => merge(base, overlay),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    text.strip_suffix('s')?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// Where subscriptions are kept.
enum Store {
    Postgres(sqlx::PgPool),
    /// Lost at exit: what `APP_STORAGE=memory` is for, and what the
    /// workspace's durability check must catch.
    Memory(Mutex<HashMap<i64, Subscription>>),
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct Subscription {
    #[serde(default)]
    id: i64,
    email: String,
    name: String,
    #[serde(default)]
    token: String,
}

struct AppState {
    store: Store,
    redis: redis::aio::MultiplexedConnection,
    draining: AtomicBool,
}

async fn serve(config: Config) -> ExitCode {
    let store = if config.application.storage == "memory" {
        Store::Memory(Mutex::new(HashMap::new()))
    } else {
        match connect_postgres(&config.database_url).await {
            Ok(pool) => Store::Postgres(pool),
            Err(error) => {
                eprintln!("newsletter: cannot reach PostgreSQL: {error}");
                return ExitCode::FAILURE;
            }
        }
    };
    let redis = match connect_redis(&config.redis_url).await {
        Ok(redis) => redis,
        Err(error) => {
            eprintln!("newsletter: cannot reach Redis: {error}");
            return ExitCode::FAILURE;
        }
    };
    let state = web::Data::new(AppState {
        store,
        redis,
        draining: AtomicBool::new(false),
    });
    let address = (config.application.host.clone(), config.application.port);
    let app_state = state.clone();
    let server = match HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::JsonConfig::default().limit(64 * 1024))
            .route("/health_check", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/build", web::get().to(build))
            .route("/subscriptions", web::post().to(subscribe))
            .route("/subscriptions/{id}", web::get().to(subscription))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs().max(1))
    .bind(&address)
    {
        Ok(server) => server.run(),
        Err(error) => {
            eprintln!(
                "newsletter: cannot listen on {}:{}: {error}",
                address.0, address.1
            );
            return ExitCode::FAILURE;
        }
    };
    println!(
        "newsletter: listening on {}:{} (build {BUILD_CHANNEL}, storage {})",
        address.0, address.1, config.application.storage
    );
    let handle = server.handle();
    let timeout = config.shutdown_timeout;
    let signalled = Arc::new(Mutex::new(None::<Instant>));
    let on_signal = signalled.clone();
    tokio::task::spawn_local(async move {
        let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            eprintln!("newsletter: cannot listen for SIGTERM");
            return;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        println!("newsletter: stopping: finishing what is in flight");
        state.draining.store(true, Ordering::SeqCst);
        if let Ok(mut at) = on_signal.lock() {
            *at = Some(Instant::now());
        }
        handle.stop(true).await;
    });
    if let Err(error) = server.await {
        eprintln!("newsletter: {error}");
        return ExitCode::FAILURE;
    }
    let took = signalled
        .lock()
        .ok()
        .and_then(|at| *at)
        .map(|at| at.elapsed());
    match took {
        Some(took) if took >= timeout => {
            eprintln!(
                "newsletter: requests still open after the {} s shutdown timeout were dropped",
                timeout.as_secs()
            );
            ExitCode::FAILURE
        }
        _ => {
            println!("newsletter: stopped");
            ExitCode::SUCCESS
        }
    }
}

async fn connect_postgres(url: &str) -> Result<sqlx::PgPool, String> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await
        .map_err(|error| error.to_string())
}

async fn connect_redis(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|error| error.to_string())?;
    let mut connection =
        tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|error| error.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .map_err(|error| error.to_string())?;
    Ok(connection)
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// 200 while PostgreSQL and Redis answer and it is not stopping.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().body("stopping");
    }
    if let Store::Postgres(pool) = &state.store
        && sqlx::query("SELECT 1").execute(pool).await.is_err()
    {
        return HttpResponse::ServiceUnavailable().body("PostgreSQL does not answer");
    }
    let mut redis = state.redis.clone();
    if redis::cmd("PING")
        .query_async::<String>(&mut redis)
        .await
        .is_err()
    {
        return HttpResponse::ServiceUnavailable().body("Redis does not answer");
    }
    HttpResponse::Ok().body("ready")
}

async fn build() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "channel": BUILD_CHANNEL,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn subscribe(state: web::Data<AppState>, form: web::Json<Subscription>) -> HttpResponse {
    let Subscription { email, name, .. } = form.into_inner();
    if !email.contains('@') || name.trim().is_empty() {
        return HttpResponse::BadRequest().body("an email with an @ and a name are required");
    }
    let token = token(&email);
    let id = match &state.store {
        Store::Postgres(pool) => {
            let inserted: Result<(i64,), _> = sqlx::query_as(
                "INSERT INTO subscriptions (email, name, token) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(&email)
            .bind(&name)
            .bind(&token)
            .fetch_one(pool)
            .await;
            match inserted {
                Ok((id,)) => id,
                Err(error) => {
                    eprintln!("newsletter: cannot store a subscription: {error}");
                    return HttpResponse::InternalServerError().body("cannot store it");
                }
            }
        }
        Store::Memory(map) => {
            let Ok(mut map) = map.lock() else {
                return HttpResponse::InternalServerError().body("cannot store it");
            };
            let id = i64::try_from(map.len()).unwrap_or(i64::MAX) + 1;
            map.insert(
                id,
                Subscription {
                    id,
                    email,
                    name,
                    token: token.clone(),
                },
            );
            id
        }
    };
    let mut redis = state.redis.clone();
    if let Err(error) = redis::cmd("INCR")
        .arg("subscriptions_total")
        .query_async::<i64>(&mut redis)
        .await
    {
        eprintln!("newsletter: cannot count a subscription: {error}");
    }
    HttpResponse::Created().json(serde_json::json!({ "id": id, "token": token }))
}

async fn subscription(state: web::Data<AppState>, id: web::Path<i64>) -> HttpResponse {
    let id = id.into_inner();
    let found = match &state.store {
        Store::Postgres(pool) => sqlx::query_as::<_, (i64, String, String, String)>(
            "SELECT id, email, name, token FROM subscriptions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
        .map(|row| {
            row.map(|(id, email, name, token)| Subscription {
                id,
                email,
                name,
                token,
            })
        }),
        Store::Memory(map) => Ok(map.lock().ok().and_then(|map| map.get(&id).cloned())),
    };
    match found {
        Ok(Some(subscription)) => HttpResponse::Ok().json(subscription),
        Ok(None) => HttpResponse::NotFound().body("no such subscription"),
        Err(error) => {
            eprintln!("newsletter: cannot read a subscription: {error}");
            HttpResponse::InternalServerError().body("cannot read it")
        }
    }
}

/// The subscription's confirmation token: SHA-256 of its address, hex.
fn token(email: &str) -> String {
    use std::fmt::Write as _;
    openssl::sha::sha256(email.as_bytes()).iter().fold(
        String::with_capacity(64),
        |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environments_file_overrides_the_base() {
        let mut base: toml::Table =
            toml::from_str("[application]\nhost = \"127.0.0.1\"\nport = 8000").unwrap();
        merge(
            &mut base,
            toml::from_str("[application]\nhost = \"0.0.0.0\"").unwrap(),
        );
        assert_eq!(base["application"]["host"].as_str(), Some("0.0.0.0"));
        assert_eq!(base["application"]["port"].as_integer(), Some(8000));
    }

    #[test]
    fn durations_are_read_as_the_workspace_writes_them() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn the_token_is_the_addresss_sha256() {
        assert_eq!(token("a@b.c").len(), 64, "hex of 32 bytes from OpenSSL");
    }
}

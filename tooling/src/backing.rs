//! The services a service needs to start, as the manifest's `[services]`
//! names them (PostgreSQL, Redis), for every command that starts the
//! service:
//!
//! 1. their images, made from Debian packages (`postgres.rs`, `redis.rs`),
//!    so they run with no registry;
//! 2. a network of the scope's own, where each is known by its name;
//! 3. each started and waited for with its own client inside its container
//!    (`pg_isready`, `redis-cli ping`), then prepared (PostgreSQL's
//!    migrations, applied with `psql`);
//! 4. the manifest's `test-env`, with their addresses filled in, for the
//!    service's containers.
//!
//! They outlive the service's restarts, so durability is read back against
//! the same data, and go with the scope, also on failure. One that fails to
//! start is its own failure, named, never the service's.

pub mod postgres;
pub mod redis;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use xshell::Shell;

use crate::checks::Check;
use crate::docker::Docker;
use crate::docker::container::{Container, Network, RunSpec, Scope};
use crate::docker::hardening::Hardening;
use crate::metadata::{BackingKind, BackingService, Metadata};
use crate::output::{duration as human, relative};
use crate::wait::{self, Poll};

/// What `test-env` may ask of a backing service: `{NAME.FIELD}`.
pub const FIELDS: [&str; 6] = ["host", "port", "user", "password", "database", "url"];

/// Throwaway credentials: the backing services live as long as one test.
const POSTGRES_USER: &str = "app";
const POSTGRES_PASSWORD: &str = "test-only";
const POSTGRES_DATABASE: &str = "app";
/// A cold PostgreSQL runs initdb first.
const READY_GIVE_UP: Duration = Duration::from_mins(1);

/// The check's name in every command that starts backing services.
pub const CHECK: &str = "backing services";
/// Why the service's own checks did not run when one did not start.
pub const NOT_STARTED: &str = "a backing service did not start (see \"backing services\")";

/// The backing services of one run, ready.
#[derive(Debug, Default)]
pub struct Backing {
    network: Option<String>,
    started: Vec<Started>,
}

#[derive(Debug)]
struct Started {
    name: String,
    kind: BackingKind,
    database: String,
    ready_after: Duration,
    migrations: usize,
}

impl Backing {
    /// Starts what the manifest names, in name order, on a network of the
    /// scope's; nothing when it names none.
    pub fn start(
        sh: &Shell,
        docker: &Docker,
        scope: &Scope,
        metadata: &Metadata,
    ) -> anyhow::Result<Backing> {
        if metadata.services.is_empty() {
            return Ok(Backing::default());
        }
        let root = sh.current_dir();
        let network = scope.network(sh, "backing")?;
        let mut backing = Backing {
            network: Some(network.clone()),
            started: Vec::new(),
        };
        for (name, service) in &metadata.services {
            eprintln!(
                "backing service {name}: starting {}",
                kind_name(service.kind)
            );
            let started = start_one(sh, docker, scope, &root, &network, name, service)
                .with_context(|| {
                    format!(
                        "backing service {name} ({}) did not start",
                        kind_name(service.kind)
                    )
                })?;
            backing.started.push(started);
        }
        Ok(backing)
    }

    /// Whether there is anything to start.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty()
    }

    /// The network the service joins: the backing services', else the
    /// default bridge.
    pub fn network(&self) -> Network {
        match &self.network {
            Some(network) => Network::Named {
                network: network.clone(),
                alias: None,
            },
            None => Network::Bridge,
        }
    }

    /// The manifest's `test-env`, each `{NAME.FIELD}` filled in.
    pub fn env(&self, metadata: &Metadata) -> Vec<(String, String)> {
        metadata
            .test_env
            .iter()
            .map(|(name, value)| (name.clone(), self.fill(value)))
            .collect()
    }

    fn fill(&self, value: &str) -> String {
        let mut filled = value.to_owned();
        for started in &self.started {
            for field in FIELDS {
                let placeholder = format!("{{{}.{field}}}", started.name);
                if filled.contains(&placeholder) {
                    filled = filled.replace(&placeholder, &started.field(field));
                }
            }
        }
        filled
    }

    /// The check every command that starts them shows, passed.
    pub fn check(&self) -> Check {
        let started: Vec<String> = self
            .started
            .iter()
            .map(|s| {
                let migrations = if s.migrations > 0 {
                    format!(", {} migrations applied", s.migrations)
                } else {
                    String::new()
                };
                format!(
                    "{} ({}) ready in {}{migrations}",
                    s.name,
                    kind_name(s.kind),
                    human(s.ready_after)
                )
            })
            .collect();
        Check::judge(CHECK, true, started.join(", "), "each ready and prepared")
    }

    /// The check a start gives, for every command that starts them: passed
    /// or failed with the reason; none when the manifest names none.
    pub fn check_of(started: &anyhow::Result<Backing>) -> Option<Check> {
        match started {
            Ok(backing) if backing.is_empty() => None,
            Ok(backing) => Some(backing.check()),
            Err(error) => Some(Check::broken(CHECK, "each ready and prepared", error)),
        }
    }
}

impl Started {
    fn field(&self, field: &str) -> String {
        let port = match self.kind {
            BackingKind::Postgres => 5432,
            BackingKind::Redis => 6379,
        };
        match (field, self.kind) {
            ("host", _) => self.name.clone(),
            ("port", _) => port.to_string(),
            ("user", _) => POSTGRES_USER.to_owned(),
            ("password", _) => POSTGRES_PASSWORD.to_owned(),
            ("database", _) => self.database.clone(),
            (_, BackingKind::Postgres) => format!(
                "postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{}:{port}/{}",
                self.name, self.database
            ),
            (_, BackingKind::Redis) => format!("redis://{}:{port}", self.name),
        }
    }
}

fn kind_name(kind: BackingKind) -> &'static str {
    match kind {
        BackingKind::Postgres => "PostgreSQL",
        BackingKind::Redis => "Redis",
    }
}

fn start_one(
    sh: &Shell,
    docker: &Docker,
    scope: &Scope,
    root: &Path,
    network: &str,
    name: &str,
    service: &BackingService,
) -> anyhow::Result<Started> {
    let image = match service.kind {
        BackingKind::Postgres => postgres::image(sh, docker, root)?,
        BackingKind::Redis => redis::image(sh, docker, root)?,
    };
    let database = service
        .database
        .clone()
        .unwrap_or_else(|| POSTGRES_DATABASE.to_owned());
    // Not the production settings: a database writes its own files.
    let hardening = Hardening {
        read_only: false,
        tmp_size: "64m".to_owned(),
        ..Hardening::production("512m", "1")
    };
    let env = match service.kind {
        BackingKind::Postgres => vec![
            ("POSTGRES_USER".to_owned(), POSTGRES_USER.to_owned()),
            ("POSTGRES_PASSWORD".to_owned(), POSTGRES_PASSWORD.to_owned()),
            ("POSTGRES_DB".to_owned(), database.clone()),
        ],
        BackingKind::Redis => Vec::new(),
    };
    let spec = RunSpec {
        image: &image,
        role: name,
        hardening: &hardening,
        volume: None,
        scratch: Vec::new(),
        publish: None,
        network: Network::Named {
            network: network.to_owned(),
            alias: Some(name.to_owned()),
        },
        env,
        health: None,
        entrypoint: None,
        command: Vec::new(),
    };
    let (container, started) = scope.start(sh, &spec)?;
    let ready: Vec<String> = match service.kind {
        BackingKind::Postgres => [
            "pg_isready",
            "--host=127.0.0.1",
            "--port=5432",
            "--username",
            POSTGRES_USER,
            "--dbname",
            &database,
        ]
        .map(str::to_owned)
        .to_vec(),
        BackingKind::Redis => ["redis-cli", "-h", "127.0.0.1", "ping"]
            .map(str::to_owned)
            .to_vec(),
    };
    wait::until(READY_GIVE_UP, Duration::from_millis(200), || {
        if scope.exec_succeeds(sh, &container, &ready[0], &ready[1..])? {
            return Ok(Poll::Ready(()));
        }
        let state = scope.inspect(sh, &container)?.state;
        if !state.running {
            return Err(anyhow!(
                "{}",
                scope.exit_story(sh, &container, &state, "before it was ready")
            ));
        }
        Ok(Poll::Waiting(format!("`{}` fails", ready.join(" "))))
    })?;
    let ready_after = started.elapsed();
    let migrations = match &service.migrations {
        Some(dir) => migrate(sh, scope, &container, (root, dir), &database)?,
        None => 0,
    };
    Ok(Started {
        name: name.to_owned(),
        kind: service.kind,
        database,
        ready_after,
        migrations,
    })
}

/// Applies the folder's `*.sql` files (`dir`, relative to `root`) in name
/// order, each in one `psql` that stops at its first error; returns how many.
fn migrate(
    sh: &Shell,
    scope: &Scope,
    container: &Container,
    (root, dir): (&Path, &str),
    database: &str,
) -> anyhow::Result<usize> {
    let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
        .with_context(|| format!("cannot read the migrations in {dir}"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{dir} holds no *.sql migration");
    }
    let started = Instant::now();
    for file in &files {
        let sql = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        scope
            .exec(
                sh,
                container,
                &[("PGPASSWORD", POSTGRES_PASSWORD)],
                &[
                    "psql",
                    "--quiet",
                    "--no-psqlrc",
                    "--set=ON_ERROR_STOP=1",
                    "--host=127.0.0.1",
                    "--username",
                    POSTGRES_USER,
                    "--dbname",
                    database,
                    "--file=-",
                ],
                &sql,
            )
            .with_context(|| format!("migration {} failed", relative(root, file)))?;
    }
    eprintln!(
        "backing services: {} migrations from {dir} applied in {}",
        files.len(),
        human(started.elapsed())
    );
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing() -> Backing {
        Backing {
            network: Some("n".to_owned()),
            started: vec![
                Started {
                    name: "db".to_owned(),
                    kind: BackingKind::Postgres,
                    database: "newsletter".to_owned(),
                    ready_after: Duration::from_secs(1),
                    migrations: 2,
                },
                Started {
                    name: "cache".to_owned(),
                    kind: BackingKind::Redis,
                    database: String::new(),
                    ready_after: Duration::from_millis(200),
                    migrations: 0,
                },
            ],
        }
    }

    #[test]
    fn test_env_names_each_backing_service_by_its_host_name() {
        let backing = backing();
        assert_eq!(
            backing.fill("postgres://{db.user}:{db.password}@{db.host}:{db.port}/{db.database}"),
            "postgres://app:test-only@db:5432/newsletter"
        );
        assert_eq!(
            backing.fill("{db.url}"),
            backing.fill("postgres://{db.user}:{db.password}@{db.host}:{db.port}/{db.database}")
        );
        assert_eq!(backing.fill("{cache.url}"), "redis://cache:6379");
        assert_eq!(backing.fill("plain"), "plain");
    }

    #[test]
    fn the_check_names_each_service_and_its_migrations() {
        let check = backing().check();
        assert!(!check.failed());
        assert!(
            check
                .measured
                .contains("db (PostgreSQL) ready in 1 s, 2 migrations applied"),
            "{}",
            check.measured
        );
        assert!(
            check.measured.contains("cache (Redis)"),
            "{}",
            check.measured
        );
    }
}

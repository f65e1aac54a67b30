//! Notes storage: SQLite in a file or PostgreSQL, chosen by `DATABASE_URL`.
//! An enum over the two pools rather than sqlx's `Any` driver: each arm is
//! statically typed, and the SQL below is written once in the dialect both
//! understand (`$1` placeholders, `RETURNING`).

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::config::Database;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a request waits for a free connection before it is answered 503,
/// instead of hanging while the database is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long SQLite waits on a lock held by another connection of the pool.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub enum Storage {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Note {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub created_at: String,
}

/// Runs the same expression against whichever pool this is; each arm is
/// type-checked against its own driver.
macro_rules! with_pool {
    ($storage:expr, $pool:ident => $body:expr) => {
        match $storage {
            Storage::Sqlite($pool) => $body,
            Storage::Postgres($pool) => $body,
        }
    };
}

impl Storage {
    /// Opens the pool and applies the embedded migrations. A SQLite file and
    /// its directory are created on first start.
    pub async fn connect(database: &Database, pool_size: u32) -> anyhow::Result<Self> {
        match database {
            Database::Sqlite(options) => {
                let path = options.get_filename();
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("cannot create the database directory {}", dir.display())
                    })?;
                }
                // WAL lets readers run beside the writer; FULL makes a 201 mean
                // the note is on disk, not only in the OS cache.
                let options = options
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                let pool = SqlitePoolOptions::new()
                    .max_connections(pool_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .with_context(|| {
                        format!("cannot open the SQLite database {}", path.display())
                    })?;
                SQLITE_MIGRATIONS.run(&pool).await.with_context(|| {
                    format!("cannot migrate the SQLite database {}", path.display())
                })?;
                Ok(Self::Sqlite(pool))
            }
            Database::Postgres(options) => {
                let target = format!(
                    "{}:{}/{}",
                    options.get_host(),
                    options.get_port(),
                    options.get_database().unwrap_or_default()
                );
                let pool = PgPoolOptions::new()
                    .max_connections(pool_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options.clone())
                    .await
                    .with_context(|| format!("cannot connect to PostgreSQL at {target}"))?;
                POSTGRES_MIGRATIONS
                    .run(&pool)
                    .await
                    .with_context(|| format!("cannot migrate the PostgreSQL database {target}"))?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// The name used in logs and readiness checks.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// A round trip through a pooled connection: what readiness measures.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    pub async fn create(&self, title: &str, body: &str) -> Result<Note, sqlx::Error> {
        const SQL: &str =
            "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at";
        with_pool!(self, pool => {
            sqlx::query_as(SQL).bind(title).bind(body).fetch_one(pool).await
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<Note>, sqlx::Error> {
        const SQL: &str = "SELECT id, title, body, created_at FROM notes WHERE id = $1";
        with_pool!(self, pool => sqlx::query_as(SQL).bind(id).fetch_optional(pool).await)
    }

    /// Notes in creation order.
    pub async fn list(&self, limit: i64, offset: i64) -> Result<Vec<Note>, sqlx::Error> {
        const SQL: &str =
            "SELECT id, title, body, created_at FROM notes ORDER BY id LIMIT $1 OFFSET $2";
        with_pool!(self, pool => {
            sqlx::query_as(SQL).bind(limit).bind(offset).fetch_all(pool).await
        })
    }

    /// Whether a note was there to delete.
    pub async fn delete(&self, id: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let result = sqlx::query("DELETE FROM notes WHERE id = $1").bind(id).execute(pool).await?;
            Ok(result.rows_affected() > 0)
        })
    }

    /// Waits for borrowed connections to come back, then closes them all
    /// (for SQLite this also checkpoints the WAL into the main file).
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDb;

    #[tokio::test]
    async fn sqlite_file_and_its_directory_are_created_on_first_start() {
        let temp = TempDb::new("create");
        let storage = Storage::connect(&temp.database(), 2).await.unwrap();
        assert!(temp.dir.join("sub/notes.db").is_file());
        storage.close().await;
    }

    #[tokio::test]
    async fn notes_round_trip() {
        let temp = TempDb::new("round-trip");
        let storage = Storage::connect(&temp.database(), 2).await.unwrap();
        let created = storage.create("title", "body").await.unwrap();
        assert_eq!(
            storage.get(created.id).await.unwrap(),
            Some(created.clone())
        );
        assert_eq!(storage.list(10, 0).await.unwrap(), vec![created.clone()]);
        assert!(storage.delete(created.id).await.unwrap());
        assert!(!storage.delete(created.id).await.unwrap());
        assert_eq!(storage.get(created.id).await.unwrap(), None);
        storage.close().await;
    }

    #[tokio::test]
    async fn migrations_are_applied_once_across_restarts() {
        let temp = TempDb::new("restart");
        let first = Storage::connect(&temp.database(), 1).await.unwrap();
        let note = first.create("kept", "").await.unwrap();
        first.close().await;
        let second = Storage::connect(&temp.database(), 1).await.unwrap();
        assert_eq!(second.get(note.id).await.unwrap(), Some(note));
        second.close().await;
    }
}

//! Notes storage: SQLite in a file or PostgreSQL, chosen by `DATABASE_URL`.
//! An enum over the two pools rather than sqlx's `Any` driver: each arm is
//! statically typed, and the SQL below is written once in the dialect both
//! understand (`$1` placeholders, `RETURNING`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, SqlitePool};

use crate::config::Database;
use crate::db_fault::DbFault;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a request waits for a free connection before it is answered 503,
/// instead of hanging while the database is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The least the write probe writes: larger than a page of either
/// database, so that it must allocate one, as a new note would.
const MIN_WRITE_PROBE_BYTES: usize = 16 * 1024;

/// How long SQLite waits on a lock held by another connection of the pool.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Storage {
    pool: Pool,
    /// Operations waiting for a free connection: a pool about to run dry.
    waiting: Arc<AtomicU64>,
    /// The last write that failed for a fault of the database itself
    /// (full, I/O error), until a write succeeds again.
    write_fault: Arc<Mutex<Option<WriteFault>>>,
}

#[derive(Debug, Clone)]
struct WriteFault {
    /// How much the failed write stored: the probe writes as much, so that
    /// readiness passes only when that write would.
    bytes: usize,
}

#[derive(Debug, Clone)]
enum Pool {
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

/// What `/metrics` shows of the pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub open: u32,
    pub idle: usize,
    pub max: u32,
    pub waiting: u64,
}

/// Counts one operation as waiting for a connection while it lives, also
/// when its request is dropped mid-wait.
struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs the expression with a connection of whichever pool this is, taken
/// through [`Storage::acquire`] so that the wait is counted; each arm is
/// type-checked against its own driver.
macro_rules! with_connection {
    ($storage:expr, $connection:ident => $body:expr) => {
        match &$storage.pool {
            Pool::Sqlite(pool) => {
                let mut pooled = $storage.acquire(pool).await?;
                let $connection = &mut *pooled;
                $body
            }
            Pool::Postgres(pool) => {
                let mut pooled = $storage.acquire(pool).await?;
                let $connection = &mut *pooled;
                $body
            }
        }
    };
}

/// Runs the same expression against whichever pool this is; each arm is
/// type-checked against its own driver.
macro_rules! with_pool {
    ($storage:expr, $pool:ident => $body:expr) => {
        match &$storage.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
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
                Ok(Self::new(Pool::Sqlite(pool)))
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
                Ok(Self::new(Pool::Postgres(pool)))
            }
        }
    }

    fn new(pool: Pool) -> Self {
        Self {
            pool,
            waiting: Arc::default(),
            write_fault: Arc::default(),
        }
    }

    async fn acquire<DB: sqlx::Database>(
        &self,
        pool: &sqlx::Pool<DB>,
    ) -> Result<PoolConnection<DB>, sqlx::Error> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        pool.acquire().await
    }

    pub fn pool_stats(&self) -> PoolStats {
        with_pool!(self, pool => PoolStats {
            open: pool.size(),
            idle: pool.num_idle(),
            max: pool.options().get_max_connections(),
            waiting: self.waiting.load(Ordering::Relaxed),
        })
    }

    /// The name used in logs and readiness checks.
    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Whether a write failed for a fault of the database and none has
    /// succeeded since.
    pub fn has_write_fault(&self) -> bool {
        self.write_fault().is_some()
    }

    fn write_fault(&self) -> Option<WriteFault> {
        self.write_fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers the outcome of a write of `bytes` for readiness.
    fn record_write<T>(
        &self,
        bytes: usize,
        outcome: Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let fault = match &outcome {
            Ok(_) => None,
            // A pool timeout is load, not a database that cannot write.
            Err(error @ sqlx::Error::Database(_)) if DbFault::of(error).is_storage_fault() => {
                Some(WriteFault { bytes })
            }
            Err(_) => return outcome,
        };
        *self
            .write_fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fault;
        outcome
    }

    /// Writes a row as large as the write that failed and deletes it, in
    /// one committed transaction: it fails while the database has no room
    /// for that write or cannot write, and a success clears the fault.
    pub async fn probe_write(&self) -> Result<(), sqlx::Error> {
        let bytes = self
            .write_fault()
            .map_or(0, |fault| fault.bytes)
            .max(MIN_WRITE_PROBE_BYTES);
        let payload = "x".repeat(bytes);
        let outcome = with_connection!(self, connection => {
            let mut transaction = connection.begin().await?;
            sqlx::query("INSERT INTO write_probe (payload) VALUES ($1)")
                .bind(&payload)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM write_probe").execute(&mut *transaction).await?;
            transaction.commit().await
        });
        self.record_write(bytes, outcome)
    }

    /// A round trip through a pooled connection: what readiness measures.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_connection!(self, connection => {
            sqlx::query("SELECT 1").execute(connection).await.map(drop)
        })
    }

    pub async fn create(&self, title: &str, body: &str) -> Result<Note, sqlx::Error> {
        const SQL: &str =
            "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at";
        // Stepped to the end, not `fetch_one`: SQLite commits on the step
        // after the returned row, and that step is where a full disk or an
        // I/O error is reported. Stopping early would answer 201 for a note
        // that was rolled back.
        let created: Result<Vec<Note>, sqlx::Error> = with_connection!(self, connection => {
            sqlx::query_as(SQL).bind(title).bind(body).fetch_all(connection).await
        });
        self.record_write(
            title.len() + body.len(),
            created.and_then(|notes| notes.into_iter().next().ok_or(sqlx::Error::RowNotFound)),
        )
    }

    pub async fn get(&self, id: i64) -> Result<Option<Note>, sqlx::Error> {
        const SQL: &str = "SELECT id, title, body, created_at FROM notes WHERE id = $1";
        with_connection!(self, connection => {
            sqlx::query_as(SQL).bind(id).fetch_optional(connection).await
        })
    }

    /// Hands notes in creation order to `visit`, from `offset`, at most
    /// `limit` of them, until `visit` returns false. Streamed, and cut in
    /// the database after the first note that takes the title and body
    /// bytes before it past `max_bytes`: a page's budget bounds what is
    /// read and sent, not only what is answered.
    pub async fn visit_notes(
        &self,
        limit: i64,
        offset: i64,
        max_bytes: i64,
        mut visit: impl FnMut(Note) -> bool + Send,
    ) -> Result<(), sqlx::Error> {
        // Sizes first, from lengths alone (neither database reads a value
        // to measure it), then only the rows within the budget are read.
        const SQL: &str = "
            WITH page AS (
                SELECT id, octet_length(title) + octet_length(body) AS size
                FROM notes ORDER BY id LIMIT $1 OFFSET $2
            ), sized AS (
                SELECT id, SUM(size) OVER (ORDER BY id) - size AS before FROM page
            )
            SELECT notes.id, notes.title, notes.body, notes.created_at
            FROM notes JOIN sized ON notes.id = sized.id
            WHERE sized.before <= $3
            ORDER BY notes.id";
        with_connection!(self, connection => {
            let mut rows = sqlx::query_as(SQL)
                .bind(limit)
                .bind(offset)
                .bind(max_bytes)
                .fetch(connection);
            while let Some(note) = rows.try_next().await? {
                if !visit(note) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Whether a note was there to delete.
    pub async fn delete(&self, id: i64) -> Result<bool, sqlx::Error> {
        let deleted = with_connection!(self, connection => {
            sqlx::query("DELETE FROM notes WHERE id = $1")
                .bind(id)
                .execute(connection)
                .await
                .map(|result| result.rows_affected() > 0)
        });
        self.record_write(0, deleted)
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
        let mut listed = Vec::new();
        storage
            .visit_notes(10, 0, i64::MAX, |note| {
                listed.push(note);
                true
            })
            .await
            .unwrap();
        assert_eq!(listed, vec![created.clone()]);
        assert!(storage.delete(created.id).await.unwrap());
        assert!(!storage.delete(created.id).await.unwrap());
        assert_eq!(storage.get(created.id).await.unwrap(), None);
        storage.close().await;
    }

    #[tokio::test]
    async fn listing_is_cut_in_the_database_after_the_note_that_crosses_the_budget() {
        let temp = TempDb::new("budget");
        let storage = Storage::connect(&temp.database(), 1).await.unwrap();
        for _ in 0..3 {
            storage.create("t", &"b".repeat(99)).await.unwrap();
        }
        // 100 bytes a note: the second starts at 100, the third at 200.
        let mut visited = 0;
        storage
            .visit_notes(10, 0, 150, |_| {
                visited += 1;
                true
            })
            .await
            .unwrap();
        assert_eq!(visited, 2);
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

//! Helpers shared by the unit tests.

use sqlx::sqlite::SqliteConnectOptions;

use crate::config::Database;

/// A directory of its own for one test's SQLite database, removed afterwards.
pub struct TempDb {
    pub dir: std::path::PathBuf,
}

impl TempDb {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("server-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self { dir }
    }

    /// A file one directory below the temporary one, which does not exist yet.
    pub fn database(&self) -> Database {
        Database::Sqlite(SqliteConnectOptions::new().filename(self.dir.join("sub/notes.db")))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

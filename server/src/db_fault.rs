//! What a database error means for the client, the same on both backends:
//! a full disk, a database that is away for now, or a fault of the server.

use sqlx::error::DatabaseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFault {
    /// No room to store the write: `507`.
    Full,
    /// Down, restarting, unreachable or failing I/O: worth a retry, `503`.
    Unavailable,
    /// Anything else is a bug of the server: `500`.
    Internal,
}

impl DbFault {
    pub fn of(error: &sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable,
            sqlx::Error::Database(database) => Self::of_database(database.as_ref()),
            _ => Self::Internal,
        }
    }

    fn of_database(error: &dyn DatabaseError) -> Self {
        let code = error.code().unwrap_or_default();
        if error
            .try_downcast_ref::<sqlx::sqlite::SqliteError>()
            .is_some()
        {
            code.parse().map_or(Self::Internal, Self::of_sqlite_code)
        } else {
            Self::of_sqlstate(&code)
        }
    }

    /// SQLite's extended result codes: the primary code is the low byte.
    fn of_sqlite_code(code: i32) -> Self {
        const SQLITE_READONLY: i32 = 8;
        const SQLITE_IOERR: i32 = 10;
        const SQLITE_CORRUPT: i32 = 11;
        const SQLITE_FULL: i32 = 13;
        const SQLITE_CANTOPEN: i32 = 14;
        const SQLITE_BUSY: i32 = 5;
        const SQLITE_LOCKED: i32 = 6;
        match code & 0xff {
            SQLITE_FULL => Self::Full,
            SQLITE_BUSY | SQLITE_LOCKED | SQLITE_READONLY | SQLITE_IOERR | SQLITE_CORRUPT
            | SQLITE_CANTOPEN => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    /// PostgreSQL's SQLSTATE: class 08 is a lost connection, 53 insufficient
    /// resources (53100 a full disk), 57P01 to 57P03 a server shutting down
    /// or starting up.
    fn of_sqlstate(code: &str) -> Self {
        match code {
            "53100" => Self::Full,
            "57P01" | "57P02" | "57P03" => Self::Unavailable,
            _ if code.starts_with("08") || code.starts_with("53") => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    /// A fault of the storage itself, which readiness must report, as
    /// opposed to one request's bad luck.
    pub fn is_storage_fault(self) -> bool {
        self != Self::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_full_is_full_whatever_the_extended_code() {
        assert_eq!(DbFault::of_sqlite_code(13), DbFault::Full);
    }

    #[test]
    fn sqlite_io_errors_and_locks_are_unavailable() {
        // SQLITE_IOERR_WRITE, SQLITE_BUSY, SQLITE_READONLY_DBMOVED
        for code in [778, 5, 1032] {
            assert_eq!(
                DbFault::of_sqlite_code(code),
                DbFault::Unavailable,
                "{code}"
            );
        }
    }

    #[test]
    fn sqlite_constraint_is_internal() {
        assert_eq!(DbFault::of_sqlite_code(2067), DbFault::Internal);
    }

    #[test]
    fn postgres_shutdown_and_lost_connections_are_unavailable() {
        for code in ["57P01", "57P02", "57P03", "08006", "08003", "53300"] {
            assert_eq!(DbFault::of_sqlstate(code), DbFault::Unavailable, "{code}");
        }
        assert_eq!(DbFault::of_sqlstate("53100"), DbFault::Full);
        assert_eq!(DbFault::of_sqlstate("42P01"), DbFault::Internal);
    }

    #[test]
    fn pool_exhaustion_is_unavailable() {
        assert_eq!(
            DbFault::of(&sqlx::Error::PoolTimedOut),
            DbFault::Unavailable
        );
        assert_eq!(DbFault::of(&sqlx::Error::RowNotFound), DbFault::Internal);
    }
}

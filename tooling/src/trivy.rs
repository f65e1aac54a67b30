//! trivy, run in one place: with its caches under target/xtask/trivy, and
//! with its vulnerability database either fetched by trivy or copied from a
//! local directory, as trivy's air-gapped procedure has it. Its JSON is read
//! by the commands; its exit status only says whether it ran.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use crate::tools::{self, Tool};

/// Where trivy's database lives in a cache directory.
const DB_FILE: &str = "db/trivy.db";
const METADATA_FILE: &str = "db/metadata.json";
/// The database trivy fetches when none is given.
pub const ONLINE_DB: &str = "mirror.gcr.io/aquasec/trivy-db:2";

pub struct Trivy {
    program: PathBuf,
    cache_dir: PathBuf,
}

/// Which vulnerability database a scan used.
#[derive(Debug, Clone, Serialize)]
pub struct Database {
    /// Where it came from: a directory, or the registry trivy fetches from.
    pub source: String,
    /// When it was built (`UpdatedAt`), when known.
    pub updated_at: Option<String>,
    #[serde(skip)]
    offline: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    updated_at: Option<String>,
}

impl Trivy {
    pub fn find(sh: &Shell, root: &Path) -> anyhow::Result<Trivy> {
        let found = tools::require(sh, Tool::Trivy)?;
        Ok(Trivy {
            program: found.path,
            cache_dir: root.join("target/xtask/trivy"),
        })
    }

    /// Copies a local database into the cache (trivy writes beside it, and
    /// the given directory may be read-only), or leaves trivy to fetch one.
    pub fn database(&self, local: Option<&Path>) -> anyhow::Result<Database> {
        let Some(dir) = local else {
            return Ok(Database {
                source: ONLINE_DB.to_owned(),
                updated_at: None,
                offline: false,
            });
        };
        if !dir.is_dir() {
            bail!(
                "the trivy database directory {} does not exist",
                dir.display()
            );
        }
        let db = dir.join(DB_FILE);
        if !db.is_file() {
            bail!(
                "{} is not a trivy cache directory: it has no {DB_FILE}",
                dir.display()
            );
        }
        let metadata_path = dir.join(METADATA_FILE);
        let metadata: Metadata = serde_json::from_str(
            &std::fs::read_to_string(&metadata_path)
                .with_context(|| format!("cannot read {}", metadata_path.display()))?,
        )
        .with_context(|| {
            format!(
                "{} is not trivy's database metadata",
                metadata_path.display()
            )
        })?;
        let target = self.cache_dir.join("db");
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("cannot clear {}", target.display()))?;
        }
        std::fs::create_dir_all(&target)
            .with_context(|| format!("cannot create {}", target.display()))?;
        for file in [DB_FILE, METADATA_FILE] {
            std::fs::copy(dir.join(file), self.cache_dir.join(file)).with_context(|| {
                format!(
                    "cannot copy {} into trivy's cache",
                    dir.join(file).display()
                )
            })?;
        }
        Ok(Database {
            source: dir.display().to_string(),
            updated_at: metadata.updated_at,
            offline: true,
        })
    }

    /// Runs `trivy <subcommand> <args>` with the cache; returns what it
    /// printed on stdout. A trivy that fails says why in one line. With a
    /// `database`, a failure to fetch it is named as such.
    pub fn run(
        &self,
        sh: &Shell,
        subcommand: &str,
        database: Option<&Database>,
        args: &[OsString],
    ) -> anyhow::Result<String> {
        let program = &self.program;
        let cache_dir = &self.cache_dir;
        let db_args: &[&str] = match database {
            Some(db) if db.offline => &["--skip-db-update", "--skip-java-db-update"],
            _ => &[],
        };
        let output = cmd!(
            sh,
            "{program} {subcommand} --cache-dir {cache_dir} --quiet {db_args...} {args...}"
        )
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let reason = fatal_line(&String::from_utf8_lossy(&output.stderr));
        bail!("{}", failure(subcommand, database, &reason))
    }
}

/// Why trivy failed, in one line; a database it could not fetch is named
/// with the ways to give it one.
fn failure(subcommand: &str, database: Option<&Database>, reason: &str) -> String {
    match database {
        Some(db) if !db.offline && reason.contains("DB") => format!(
            "trivy could not fetch its vulnerability database {}: {reason}; give a local copy with --trivy-db DIR (a trivy cache directory holding {DB_FILE}), or skip the step with --skip",
            db.source
        ),
        _ => format!("trivy {subcommand} failed: {reason}"),
    }
}

/// trivy logs `<time>\tFATAL\tFatal error\t<reason>` and then the causes on
/// indented lines; this gives the reason and its first cause.
pub fn fatal_line(stderr: &str) -> String {
    let mut lines = stderr.lines();
    let Some(fatal) = lines.by_ref().find(|line| line.contains("FATAL")) else {
        return crate::process::last_line(stderr);
    };
    let reason = fatal.rsplit('\t').next().unwrap_or(fatal).trim();
    match lines.next().map(str::trim).filter(|l| !l.is_empty()) {
        Some(cause) => format!("{reason} {cause}"),
        None => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fatal_reason_is_one_line() {
        let stderr = "2026-11-23T02:52:59Z\tFATAL\tFatal error\trun error: init error: DB error: failed to download vulnerability DB: 1 error occurred:\n\t* Get \"https://mirror.gcr.io/v2/\": no such host\n\n";
        assert_eq!(
            fatal_line(stderr),
            "run error: init error: DB error: failed to download vulnerability DB: 1 error occurred: * Get \"https://mirror.gcr.io/v2/\": no such host"
        );
    }

    #[test]
    fn a_database_that_cannot_be_fetched_is_named_with_the_ways_to_give_one() {
        let online = Database {
            source: ONLINE_DB.to_owned(),
            updated_at: None,
            offline: false,
        };
        let stderr = "2026-11-23T02:52:59Z\tFATAL\tFatal error\trun error: init error: DB error: failed to download vulnerability DB: OCI artifact error\n\t* Get \"https://mirror.gcr.io/v2/\": dial tcp: lookup mirror.gcr.io: no such host\n";
        let line = failure("image", Some(&online), &fatal_line(stderr));
        assert!(
            line.starts_with("trivy could not fetch its vulnerability database mirror.gcr.io/aquasec/trivy-db:2: run error"),
            "{line}"
        );
        assert!(line.contains("--trivy-db DIR"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
        let line = failure("config", None, "unknown flag: --x");
        assert_eq!(line, "trivy config failed: unknown flag: --x");
    }

    #[test]
    fn a_database_directory_that_does_not_exist_is_a_clear_error() {
        let trivy = Trivy {
            program: "trivy".into(),
            cache_dir: std::env::temp_dir().join("xtask-trivy-test"),
        };
        let error = trivy
            .database(Some(Path::new("/nonexistent/trivy-db")))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the trivy database directory /nonexistent/trivy-db does not exist"
        );
    }
}

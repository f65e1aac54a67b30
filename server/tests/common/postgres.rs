//! A throwaway PostgreSQL cluster per test: its own directory, its own
//! loopback port, trust authentication, stopped and removed when dropped.
//!
//! The server binaries come from Debian's `postgresql` package
//! (`/usr/lib/postgresql/<version>/bin`), or from `PG_BIN_DIR`. When they
//! are missing the test fails and says how to install them, unless
//! `SERVER_TEST_SKIP_POSTGRES=1` asks to skip, which is printed.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::TempDir;

pub const SKIP_VARIABLE: &str = "SERVER_TEST_SKIP_POSTGRES";

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// PostgreSQL refuses to run as root: as root, run it as this user.
    run_as: Option<&'static str>,
    // Dropped last: the cluster lives inside it.
    _dir: TempDir,
}

impl Postgres {
    /// A running cluster, or `None` when the tests are explicitly skipped.
    pub fn start(name: &str) -> Option<Self> {
        if std::env::var(SKIP_VARIABLE).is_ok_and(|value| value == "1") {
            // Straight to stderr: the test harness would swallow `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {name}: PostgreSQL tests are off ({SKIP_VARIABLE}=1)"
            );
            return None;
        }
        let bin = find_binaries().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin \
                 or PG_BIN_DIR: run `cargo xtask setup` to install them, or set \
                 {SKIP_VARIABLE}=1 to skip the PostgreSQL tests"
            )
        });
        let run_as = is_root().then_some("postgres");
        let dir = TempDir::new(name);
        let cluster = dir.path().join("cluster");
        std::fs::create_dir(&cluster).expect("create the cluster directory");
        if let Some(user) = run_as {
            let chown = Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(&cluster)
                .output()
                .expect("run chown");
            assert!(
                chown.status.success(),
                "cannot hand {} to the {user} user (does it exist?): {}",
                cluster.display(),
                String::from_utf8_lossy(&chown.stderr)
            );
        }
        let cluster_db = Self {
            bin,
            data: cluster.join("data"),
            log: cluster.join("server.log"),
            socket_dir: cluster.clone(),
            port: free_port(),
            run_as,
            _dir: dir,
        };
        cluster_db.run(
            "initdb",
            &[
                "--pgdata".as_ref(),
                cluster_db.data.as_os_str(),
                "--auth=trust".as_ref(),
                "--username=postgres".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        cluster_db.start_again();
        Some(cluster_db)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A `psql` client for the cluster's database, stopping at the first error.
    pub fn psql(&self) -> Command {
        let mut command = Command::new(self.bin.join("psql"));
        command.args([
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            &self.url(),
        ]);
        command
    }

    /// Runs one statement and returns what it printed.
    pub fn sql(&self, statement: &str) -> String {
        let output = self
            .psql()
            .args(["--tuples-only", "--command", statement])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {statement:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Stops the cluster, waiting until it is down.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "--mode=fast", "--wait"]);
    }

    /// Starts the (stopped) cluster, waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.socket_dir.display()
        );
        self.pg_ctl(&["start", "--wait", "--timeout=30", "-o", &options]);
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "--pgdata".as_ref(),
            self.data.as_os_str(),
            "--log".as_ref(),
            self.log.as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        self.run("pg_ctl", &all)
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Output {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}\n{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        output
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: the directory is about to go anyway.
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command
                    .args(["-u", user, "--"])
                    .arg(self.bin.join("pg_ctl"));
                command
            }
            None => Command::new(self.bin.join("pg_ctl")),
        };
        let _ = command
            .arg("--pgdata")
            .arg(&self.data)
            .args(["stop", "--mode=immediate", "--wait"])
            .output();
    }
}

fn has_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

/// `PG_BIN_DIR`, else the newest `/usr/lib/postgresql/<version>/bin`.
fn find_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir)).filter(|dir| has_binaries(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_binaries(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}

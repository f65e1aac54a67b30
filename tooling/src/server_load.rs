//! `cargo xtask server-load`: drives the release server on loopback and
//! reports, per database and traffic mix, requests per second, p50 and p99
//! latency, non-2xx answers and peak resident memory. Figures, not a timed
//! test: the only checks are that every run was served.
//!
//! 1. build the release server (or take `--server`);
//! 2. start a throwaway PostgreSQL cluster (`postgres.rs`) when asked for;
//! 3. per database and mix: a fresh server, seeded notes, the clients
//!    (`traffic.rs`), its peak resident memory from /proc, SIGTERM.

mod postgres;
mod traffic;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::checks::{Check, Verdict};
use crate::flags;
use crate::metadata::Metadata;
use crate::output::Table;
use crate::process::{self, Background, Sink};
use traffic::{Mix, Reads, Tally};

/// The mixes the figures are kept for: many writers; mostly readers; more
/// clients than the pool has connections; pages of large notes, where
/// memory is what is watched.
const MIXES: [(&str, Mix); 4] = [
    ("POST, 64 clients", Mix::notes(64, 100)),
    ("80% GET / 20% POST, 64 clients", Mix::notes(64, 20)),
    (
        "80% GET / 20% POST, 200 clients, pool 5",
        Mix::notes(200, 20),
    ),
    (
        "GET ?limit=100 of 400 KB notes, 8 clients",
        Mix {
            clients: 8,
            post_percent: 0,
            read: Reads::Page,
            note_bytes: 400 * 1024,
        },
    ),
];
/// The server's pool in every run (its default).
const POOL_SIZE: u32 = 5;
/// Large enough for the large notes.
const BODY_LIMIT: usize = 1024 * 1024;
/// Notes written before a run, for its GETs to read.
const SEEDED_NOTES: u64 = 100;
const READY_WITHIN: Duration = Duration::from_secs(30);
const STOP_WITHIN: Duration = Duration::from_secs(40);

#[derive(Debug, Serialize)]
struct Run {
    database: &'static str,
    mix: &'static str,
    requests: usize,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    transport_errors: u64,
    peak_rss_mb: f64,
}

impl flags::ServerLoad {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let server = if let Some(path) = self.server {
            path
        } else {
            let package = &metadata.package;
            crate::process::run(cmd!(sh, "cargo build --release -p {package}"))?;
            sh.current_dir()
                .join("target/release")
                .join(&metadata.binary)
        };
        let work = sh.current_dir().join("target/xtask/server-load");
        let _ = std::fs::remove_dir_all(&work);
        let mut runs = Vec::new();
        if !self.skip_sqlite {
            for (mix_name, mix) in MIXES {
                let dir = work.join(format!("sqlite-{}", runs.len()));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let url = format!("sqlite://{}", dir.join("notes.db").display());
                runs.push(measure(
                    &server,
                    "sqlite",
                    &url,
                    mix_name,
                    mix,
                    self.duration,
                )?);
            }
        }
        if !self.skip_postgres {
            let cluster = postgres::Cluster::start(sh, &work.join("postgres"))?;
            for (mix_name, mix) in MIXES {
                cluster.reset(sh)?;
                runs.push(measure(
                    &server,
                    "postgres",
                    &cluster.url(),
                    mix_name,
                    mix,
                    self.duration,
                )?);
            }
        }
        Ok(verdict(&server, self.duration, &runs))
    }
}

fn measure(
    server: &Path,
    database: &'static str,
    url: &str,
    mix_name: &'static str,
    mix: Mix,
    duration: Duration,
) -> anyhow::Result<Run> {
    eprintln!("{database}: {mix_name} for {} s", duration.as_secs());
    let mut process = Server::start(server, url)?;
    traffic::seed(process.addr, SEEDED_NOTES, mix.note_bytes)
        .context("cannot seed the notes the GETs read")?;
    let mut tally: Tally = traffic::drive(process.addr, mix, duration, SEEDED_NOTES);
    let peak_rss_mb = process.peak_rss_mb()?;
    process.stop()?;
    Ok(Run {
        database,
        mix: mix_name,
        requests: tally.answered(),
        requests_per_second: tally.per_second(),
        p50_ms: tally.percentile_ms(50),
        p99_ms: tally.percentile_ms(99),
        non_2xx: tally.non_2xx,
        transport_errors: tally.transport_errors,
        peak_rss_mb,
    })
}

fn verdict(server: &Path, duration: Duration, runs: &[Run]) -> Verdict {
    let mut table = Table::new(&[
        "database",
        "mix",
        "req/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "no answer",
        "peak RSS MB",
    ])
    .right_align(&[2, 3, 4, 5, 6, 7]);
    for run in runs {
        table.row([
            run.database.to_owned(),
            run.mix.to_owned(),
            format!("{:.0}", run.requests_per_second),
            format!("{:.1}", run.p50_ms),
            format!("{:.1}", run.p99_ms),
            run.non_2xx.to_string(),
            run.transport_errors.to_string(),
            format!("{:.1}", run.peak_rss_mb),
        ]);
    }
    let checks = runs
        .iter()
        .map(|run| {
            Check::judge(
                format!("{} {}", run.database, run.mix),
                run.requests > 0 && run.transport_errors == 0,
                format!(
                    "{} answered, {} without an answer",
                    run.requests, run.transport_errors
                ),
                "every request answered",
            )
        })
        .collect();
    Verdict {
        text: format!(
            "server: {}\nduration per run: {} s\n\n{}",
            server.display(),
            duration.as_secs(),
            table.render()
        ),
        headline: runs
            .iter()
            .map(|run| format!("{} {:.0} req/s", run.database, run.requests_per_second))
            .collect::<Vec<_>>()
            .join(", "),
        checks,
        ..Verdict::new("server-load", server.display().to_string())
            .with_details(serde_json::json!({ "runs": runs }))
    }
}

/// The server under load (killed if still running when dropped).
struct Server {
    process: Background,
    addr: SocketAddr,
}

impl Server {
    fn start(binary: &Path, database_url: &str) -> anyhow::Result<Server> {
        let sh = Shell::new()?;
        // Only these settings: `env -i` leaves out whatever this shell has.
        let settings = [
            "LISTEN_ADDR=127.0.0.1:0".to_owned(),
            "LOG_FORMAT=json".to_owned(),
            format!("DATABASE_URL={database_url}"),
            format!("DB_POOL_SIZE={POOL_SIZE}"),
            format!("BODY_LIMIT={BODY_LIMIT}"),
        ];
        let mut process = process::start(
            "start the server",
            cmd!(sh, "env -i {settings...} {binary}"),
            &Sink::Piped,
            &Sink::Inherit,
        )?;
        let stdout = process.stdout().context("no stdout from the server")?;
        let (ready, ready_line) = mpsc::channel();
        // Reads every line, so that a server that logs never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(r#""message":"ready""#) {
                    let _ = ready.send(line);
                }
            }
        });
        let mut server = Server {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = ready_line
            .recv_timeout(READY_WITHIN)
            .context("the server did not log `ready` in time")?;
        let event: serde_json::Value =
            serde_json::from_str(&line).context("a ready line that is not JSON")?;
        server.addr = event["listen_addr"]
            .as_str()
            .and_then(|addr| addr.parse().ok())
            .context("the ready line has no listen_addr")?;
        Ok(server)
    }

    /// `VmHWM`: the most resident memory the process has had.
    fn peak_rss_mb(&self) -> anyhow::Result<f64> {
        let status = PathBuf::from(format!("/proc/{}/status", self.process.id()));
        let text = std::fs::read_to_string(&status)
            .with_context(|| format!("cannot read {}", status.display()))?;
        let kib: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib / 1024.0)
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.process.id().to_string();
        let sh = Shell::new()?;
        crate::process::read(cmd!(sh, "kill -TERM {pid}"))?;
        crate::wait::until(STOP_WITHIN, Duration::from_millis(50), || {
            Ok(match self.process.try_status()? {
                Some(_) => crate::wait::Poll::Ready(()),
                None => crate::wait::Poll::Waiting("still running".to_owned()),
            })
        })
        .context("the server did not stop after SIGTERM")
    }
}

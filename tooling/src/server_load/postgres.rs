//! A throwaway PostgreSQL cluster for a load run: Debian's server binaries,
//! its own directory and loopback port, trust authentication; stopped when
//! dropped. As root it runs as the `postgres` user, which PostgreSQL needs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::process;
use crate::tools::{self, Tool};

pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_root: bool,
}

impl Cluster {
    /// Creates and starts a cluster under `dir`, which must not exist.
    pub fn start(sh: &Shell, dir: &Path) -> anyhow::Result<Cluster> {
        let postgres = tools::require(sh, Tool::Postgres)?;
        let bin = postgres
            .path
            .parent()
            .context("the postgres binary has no directory")?
            .to_path_buf();
        let as_root = cmd!(sh, "id -u").read().is_ok_and(|uid| uid.trim() == "0");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if as_root {
            cmd!(sh, "chown postgres:postgres {dir}")
                .run()
                .with_context(|| format!("cannot hand {} to the postgres user", dir.display()))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free loopback port")?
            .port();
        let cluster = Cluster {
            bin,
            data: dir.join("data"),
            port,
            as_root,
        };
        let data = &cluster.data;
        cluster
            .run(
                sh,
                "initdb",
                &[
                    "--pgdata".into(),
                    data.display().to_string(),
                    "--auth=trust".into(),
                    "--username=postgres".into(),
                    "--encoding=UTF8".into(),
                ],
            )
            .context("initdb failed")?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            dir.display()
        );
        cluster
            .run(
                sh,
                "pg_ctl",
                &[
                    "--pgdata".into(),
                    data.display().to_string(),
                    "--log".into(),
                    dir.join("server.log").display().to_string(),
                    "start".into(),
                    "--wait".into(),
                    "-o".into(),
                    options,
                ],
            )
            .context("pg_ctl start failed")?;
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Drops what a server made, so that the next run starts empty.
    pub fn reset(&self, sh: &Shell) -> anyhow::Result<()> {
        let psql = self.bin.join("psql");
        let url = self.url();
        process::read(cmd!(
            sh,
            "{psql} --no-psqlrc --quiet --set=ON_ERROR_STOP=1 {url} --command 'DROP TABLE IF EXISTS notes, write_probe, _sqlx_migrations'"
        ))
        .map(drop)
        .context("cannot empty the PostgreSQL database")
    }

    fn run(&self, sh: &Shell, program: &str, args: &[String]) -> anyhow::Result<()> {
        let program = self.bin.join(program);
        let command = if self.as_root {
            cmd!(sh, "runuser -u postgres -- {program} {args...}")
        } else {
            cmd!(sh, "{program} {args...}")
        };
        process::read(command).map(drop)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(sh) = Shell::new() {
            let _ = self.run(
                &sh,
                "pg_ctl",
                &[
                    "--pgdata".into(),
                    self.data.display().to_string(),
                    "stop".into(),
                    "--mode=fast".into(),
                    "--wait".into(),
                ],
            );
        }
    }
}

//! `cargo xtask compose-test`: `docker compose up` of deploy/compose.yaml,
//! offline where no registry is reachable, and the service proved through it.
//!
//! 1. `postgres.rs`: with `--offline`, PostgreSQL made from Debian 13's
//!    package; else the compose file's default, or `--postgres-image`;
//! 2. `project.rs`: the compose file under a project name of its own, its
//!    containers, network and volumes labelled; `up --wait` until both
//!    services are healthy;
//! 3. the server as compose runs it: hardened, ready on PostgreSQL, notes
//!    written and read through the published port;
//! 4. `stop` and `start` of the server: exit 0, and the notes still there;
//! 5. `down --volumes`: nothing left behind.

mod project;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::Shell;

use crate::checks::{Check, Verdict};
use crate::docker::container::{ContainerInspect, Scope, parse_container_inspect};
use crate::docker::hardening::Hardening;
use crate::docker::{Docker, ImageInspect};
use crate::flags;
use crate::http::Client;
use crate::last_build;
use crate::metadata::Metadata;
use crate::output::{self, duration as human};
use crate::tools::{self, Tool};
use crate::wait::{self, Poll};
use project::Project;

/// Names of everything the test creates start with this.
const PREFIX: &str = "xtask-compose-test";
const COMPOSE_FILE: &str = "deploy/compose.yaml";
/// `up --wait`'s bound: PostgreSQL's first start makes its cluster.
const UP_TIMEOUT_SECS: &str = "180";
const READY_GIVE_UP: Duration = Duration::from_mins(1);
const NOTES_PATH: &str = "/api/v1/notes";
/// What the compose file gives the server.
const MEMORY: &str = "256m";
const CPUS: &str = "1";

impl flags::ComposeTest {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let image_ref = last_build::resolve(&root, self.image.as_deref())?;
        let docker = Docker::connect(sh)?;
        let image = docker.inspect_image(sh, &image_ref.reference)?;
        let compose = tools::require(sh, Tool::Compose)?.path;
        let postgres = match (self.postgres_image, self.offline) {
            (Some(name), _) => Some(name),
            (None, true) => Some(
                crate::backing::postgres::image(sh, &docker, &root)
                    .context("cannot make the PostgreSQL image")?,
            ),
            // The compose file's own default, pulled by docker-compose.
            (None, false) => None,
        };
        // Arms Ctrl+C, which removes what carries this process's label, and
        // sweeps what a killed run left.
        let (scope, _) = Scope::open(&docker, sh, PREFIX)?;
        let port = free_loopback_port()?;
        let mut env = vec![
            ("SERVER_IMAGE".to_owned(), image_ref.reference.clone()),
            ("SERVER_PORT".to_owned(), port.port().to_string()),
        ];
        env.extend(
            postgres
                .iter()
                .map(|name| ("POSTGRES_IMAGE".to_owned(), name.clone())),
        );
        let project = Project::new(
            sh,
            compose,
            format!("{PREFIX}-{}", std::process::id()),
            &root.join(COMPOSE_FILE),
            &root.join("target/xtask/compose-test"),
            PREFIX,
            env,
        )?;
        let mut test = Test {
            sh,
            docker: &docker,
            project: &project,
            metadata,
            addr: port,
            checks: Vec::new(),
            up_ms: None,
        };
        if let Err(error) = test.prove() {
            test.push(Check::broken(
                "compose-test",
                "the steps above run to the end",
                &error,
            ));
        }
        let Test {
            mut checks, up_ms, ..
        } = test;
        project.down();
        let mut left = project.leftovers(&docker);
        left.extend(scope.close(sh).1);
        checks.push(crate::docker::container::cleanup_check(
            "down --volumes",
            &left,
        ));
        Ok(verdict(
            &image_ref.display_name(&image),
            &image,
            postgres.as_deref().unwrap_or("the compose file's default"),
            up_ms,
            checks,
        ))
    }
}

struct Test<'a> {
    sh: &'a Shell,
    docker: &'a Docker,
    project: &'a Project<'a>,
    metadata: &'a Metadata,
    addr: SocketAddr,
    checks: Vec<Check>,
    up_ms: Option<u64>,
}

impl Test<'_> {
    fn push(&mut self, check: Check) {
        let mark = if check.failed() { "FAIL" } else { "ok  " };
        progress(&format!("{mark} {}: {}", check.name, check.measured));
        self.checks.push(check);
    }

    fn prove(&mut self) -> anyhow::Result<()> {
        let expected = "both services healthy";
        match self.up() {
            Ok(up) => {
                self.up_ms = Some(output::millis(up));
                self.push(Check::judge("up", true, human(up), expected));
            }
            Err(error) => {
                self.push(Check::broken("up", expected, &error));
                return Ok(());
            }
        }

        let server = self.project.container("server")?;
        let inspect = self.inspect(&server)?;
        let gaps = Hardening::production(MEMORY, CPUS).gaps(&inspect, &self.metadata.data_dir);
        self.push(Check::judge(
            "hardened run",
            gaps.is_empty(),
            if gaps.is_empty() {
                "read-only, no capabilities, no-new-privileges, tmpfs /tmp, limits, non-root"
                    .to_owned()
            } else {
                gaps.join(", ")
            },
            "as shutdown-test runs it",
        ));

        self.ready_on_postgres()?;
        let note = self.write_a_note()?;

        progress("docker-compose stop server");
        self.project.run(&["stop", "server"])?;
        let stopped = self.inspect(&server)?;
        self.push(Check::judge(
            "stop",
            !stopped.state.running && stopped.state.exit_code == 0,
            format!("exit {}", stopped.state.exit_code),
            "exit 0 within stop_grace_period",
        ));
        progress("docker-compose start server");
        self.project.run(&["start", "server"])?;
        self.wait_ready()?;
        let found = self
            .client()
            .get(&note)
            .map_err(|f| anyhow::anyhow!(f.reason))?;
        self.push(Check::judge(
            "restart keeps the data",
            found.status == 200,
            format!("GET {note}: {}", found.status),
            "200: the note is in PostgreSQL's volume",
        ));
        Ok(())
    }

    /// `up --wait`, then a look at each service's health: how long it took.
    fn up(&self) -> anyhow::Result<Duration> {
        progress(&format!(
            "docker-compose up --wait ({}), the server on {}",
            self.project.name, self.addr
        ));
        let started = Instant::now();
        let up = self.project.run(&[
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            UP_TIMEOUT_SECS,
        ]);
        if let Err(error) = up {
            bail!("{error:#}; logs: {}", self.logs(None));
        }
        // docker-compose 2.22 can exit 0 when a dependency turned unhealthy.
        for service in ["db", "server"] {
            let state = self.inspect(&self.project.container(service)?)?.state;
            if state.health_status() != Some("healthy") {
                bail!(
                    "{service} is {} after up --wait; logs: {}",
                    state.health_status().unwrap_or("without a health check"),
                    self.logs(Some(service))
                );
            }
        }
        Ok(started.elapsed())
    }

    /// The last lines the services wrote, on one line.
    fn logs(&self, service: Option<&str>) -> String {
        let mut args = vec!["logs", "--no-log-prefix", "--tail", "5"];
        args.extend(service);
        match self.project.read(&args) {
            Ok(text) if !text.trim().is_empty() => {
                text.lines().map(str::trim).collect::<Vec<_>>().join(" | ")
            }
            Ok(_) => "(none)".to_owned(),
            Err(error) => format!("(cannot read: {error:#})"),
        }
    }

    fn inspect(&self, container: &str) -> anyhow::Result<ContainerInspect> {
        parse_container_inspect(
            &self
                .docker
                .output(self.sh, ["container", "inspect", container])
                .with_context(|| format!("cannot inspect {container}"))?,
        )
    }

    fn client(&self) -> Client {
        Client::new(self.addr, Duration::from_secs(10))
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let client = Client::new(self.addr, Duration::from_secs(2));
        wait::until(READY_GIVE_UP, Duration::from_millis(100), || {
            Ok(match client.get(&self.metadata.ready_path) {
                Ok(response) if response.status == 200 => Poll::Ready(()),
                Ok(response) => Poll::Waiting(format!("status {}", response.status)),
                Err(failure) => Poll::Waiting(failure.reason),
            })
        })
        .context("the server is not ready")
    }

    /// Readiness answers 200, and its database check names PostgreSQL.
    fn ready_on_postgres(&mut self) -> anyhow::Result<()> {
        self.wait_ready()?;
        let response = self
            .client()
            .get(&self.metadata.ready_path)
            .map_err(|f| anyhow::anyhow!(f.reason))?;
        let component = response
            .json()
            .and_then(|body| {
                body.pointer("/checks/database:responseTime/0/componentId")
                    .and_then(|c| c.as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "(none)".to_owned());
        self.push(Check::judge(
            "ready on PostgreSQL",
            response.status == 200 && component == "postgres",
            format!(
                "{} {}, database {component}",
                response.status, self.metadata.ready_path
            ),
            "200, database postgres",
        ));
        Ok(())
    }

    /// Creates a note and reads it back; returns its path.
    fn write_a_note(&mut self) -> anyhow::Result<String> {
        let body = format!(
            r#"{{"title": "compose-test {}", "body": "through docker-compose"}}"#,
            std::process::id()
        );
        let created = self
            .client()
            .post_json(NOTES_PATH, &body)
            .map_err(|f| anyhow::anyhow!(f.reason))?;
        let id = created
            .json()
            .and_then(|note| note["id"].as_i64())
            .with_context(|| format!("no note in the answer: {}", created.body_text()))?;
        let path = format!("{NOTES_PATH}/{id}");
        let read = self
            .client()
            .get(&path)
            .map_err(|f| anyhow::anyhow!(f.reason))?;
        self.push(Check::judge(
            "writes",
            created.status == 201 && read.status == 200,
            format!("POST {}, GET {}", created.status, read.status),
            "201, then 200",
        ));
        Ok(path)
    }
}

fn verdict(
    name: &str,
    image: &ImageInspect,
    postgres: &str,
    up_ms: Option<u64>,
    checks: Vec<Check>,
) -> Verdict {
    let details = serde_json::json!({
        "image": name,
        "image_id": image.id,
        "postgres_image": postgres,
        "compose_file": COMPOSE_FILE,
        "up_ms": up_ms,
    });
    Verdict {
        text: format!("{COMPOSE_FILE}: SERVER_IMAGE={name}, POSTGRES_IMAGE={postgres}\n\n"),
        headline: up_ms.map_or_else(
            || "did not come up".to_owned(),
            |ms| format!("up and healthy in {}", human(Duration::from_millis(ms))),
        ),
        checks,
        ..Verdict::new("compose-test", name).with_details(details)
    }
}

fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("cannot find a free port on 127.0.0.1")
}

/// A progress line of this command's: [`crate::docker::container::progress`].
fn progress(text: &str) {
    crate::docker::container::progress("compose-test", text);
}

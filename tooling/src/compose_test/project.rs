//! One compose project of deploy/compose.yaml, under a name of its own, with
//! every container, network and volume labelled as the xtask labels what it
//! creates, and taken down with its volumes when dropped (so also on an
//! error). Containers and volumes left by a killed run are swept by the next
//! scope, as `shutdown-test`'s are.

use std::path::{Path, PathBuf};

use anyhow::Context;
use xshell::Shell;

use crate::docker::container::{OWNER_LABEL, SCOPE_LABEL};
use crate::process;

/// How long `down` lets each container stop.
const DOWN_TIMEOUT_SECS: &str = "30";

pub struct Project<'a> {
    sh: &'a Shell,
    program: PathBuf,
    pub name: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl<'a> Project<'a> {
    /// `compose_file` plus an override, written to `work`, that labels
    /// each service, network and volume it declares.
    pub fn new(
        sh: &'a Shell,
        program: PathBuf,
        name: String,
        compose_file: &Path,
        work: &Path,
        scope: &str,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Project<'a>> {
        let labels = labels_override(sh, &program, compose_file, scope)?;
        sh.create_dir(work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        let labelled = work.join(format!("{name}.labels.yaml"));
        sh.write_file(&labelled, labels)
            .with_context(|| format!("cannot write {}", labelled.display()))?;
        Ok(Project {
            sh,
            program,
            name,
            files: vec![compose_file.to_path_buf(), labelled],
            env,
        })
    }

    fn command(&self, args: &[&str]) -> xshell::Cmd<'a> {
        let mut cmd = self
            .sh
            .cmd(&self.program)
            .arg("--project-name")
            .arg(&self.name);
        for file in &self.files {
            cmd = cmd.arg("--file").arg(file);
        }
        for (key, value) in &self.env {
            cmd = cmd.env(key, value);
        }
        cmd.args(args)
    }

    /// Runs `docker-compose <args>` with its progress on stderr.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        process::run(self.command(args))
            .with_context(|| format!("docker-compose {} failed", args.join(" ")))
    }

    /// Runs `docker-compose <args>` and returns what it printed.
    pub fn read(&self, args: &[&str]) -> anyhow::Result<String> {
        process::read(self.command(args))
            .with_context(|| format!("docker-compose {} failed", args.join(" ")))
    }

    /// The container of `service`.
    pub fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.read(&["ps", "--all", "--quiet", service])?;
        id.lines().next().map(str::to_owned).with_context(|| {
            format!("docker-compose made no container for {service} (its output above says why)")
        })
    }

    /// What the engine still holds of the project: containers, networks and
    /// volumes labelled with its name.
    pub fn leftovers(&self, docker: &crate::docker::Docker) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let mut left = Vec::new();
        for args in [
            ["ps", "--all", "--quiet", "--filter"],
            ["network", "ls", "--quiet", "--filter"],
            ["volume", "ls", "--quiet", "--filter"],
        ] {
            let mut args: Vec<&str> = args.to_vec();
            args.push(&filter);
            match docker.output(self.sh, &args) {
                Ok(text) => left.extend(text.lines().map(|l| format!("{} {l}", args[0]))),
                Err(error) => left.push(format!("(cannot list: {error:#})")),
            }
        }
        left
    }

    /// `down --volumes`; nothing happens when it is already down.
    pub fn down(&self) {
        let _ = self
            .command(&[
                "down",
                "--volumes",
                "--remove-orphans",
                "--timeout",
                DOWN_TIMEOUT_SECS,
            ])
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .ignore_status()
            .run();
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        self.down();
    }
}

/// An override that adds the scope's labels to every service, network and
/// volume of the file, as `docker-compose config` reads it.
fn labels_override(
    sh: &Shell,
    program: &Path,
    compose_file: &Path,
    scope: &str,
) -> anyhow::Result<String> {
    let config = process::read(
        sh.cmd(program)
            .arg("--file")
            .arg(compose_file)
            .args(["config", "--format", "json"]),
    )
    .with_context(|| format!("docker-compose cannot read {}", compose_file.display()))?;
    let config: serde_json::Value = serde_json::from_str(&config)
        .with_context(|| format!("docker-compose config of {}", compose_file.display()))?;
    Ok(render_labels(&config, scope, std::process::id()))
}

/// The override as JSON, which is YAML too.
fn render_labels(config: &serde_json::Value, scope: &str, pid: u32) -> String {
    let labels = serde_json::json!({ SCOPE_LABEL: scope, OWNER_LABEL: pid.to_string() });
    let mut out = serde_json::Map::new();
    for section in ["services", "networks", "volumes"] {
        let names: Vec<String> = config[section]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let entries: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .map(|name| (name, serde_json::json!({ "labels": labels })))
            .collect();
        if !entries.is_empty() {
            out.insert(section.to_owned(), entries.into());
        }
    }
    serde_json::Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_network_and_volume_is_labelled() {
        let config = serde_json::json!({
            "services": {"server": {"image": "x"}, "db": {"image": "y"}},
            "networks": {"default": {"name": "p_default"}},
            "volumes": {"db-data": {"name": "p_db-data"}},
        });
        let labels: serde_json::Value =
            serde_json::from_str(&render_labels(&config, "xtask-compose-test", 42)).unwrap();
        for path in [
            "/services/server",
            "/services/db",
            "/networks/default",
            "/volumes/db-data",
        ] {
            let entry = labels.pointer(path).unwrap();
            assert_eq!(entry["labels"][SCOPE_LABEL], "xtask-compose-test", "{path}");
            assert_eq!(entry["labels"][OWNER_LABEL], "42", "{path}");
        }
    }
}

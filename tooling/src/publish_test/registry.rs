//! A throwaway registry on loopback: Debian's `docker-registry` (the CNCF
//! distribution registry), its storage in a directory of its own, stopped
//! when dropped (with its process).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use xshell::{Shell, cmd};

use crate::http::Client;
use crate::process::{self, Background, Sink};
use crate::wait::{self, Poll};

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Registry {
    pub addr: SocketAddr,
    process: Background,
}

impl Registry {
    /// Starts the registry with its storage and log under `dir`.
    pub fn start(program: &Path, dir: &Path) -> anyhow::Result<Registry> {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free loopback port")?;
        std::fs::create_dir_all(dir.join("storage"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let config = dir.join("config.yml");
        std::fs::write(&config, config_yaml(addr, &dir.join("storage")))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let log = dir.join("registry.log");
        let sh = Shell::new()?;
        let process = process::start(
            "start the registry",
            cmd!(sh, "{program} serve {config}"),
            &Sink::File(log.clone()),
            &Sink::File(log.clone()),
        )?;
        let mut registry = Registry { addr, process };
        let client = Client::new(addr, Duration::from_secs(2));
        wait::until(START_TIMEOUT, Duration::from_millis(200), || {
            if let Ok(Some(status)) = registry.process.try_status() {
                anyhow::bail!("the registry exited ({status}); see {}", log.display());
            }
            Ok(match client.get("/v2/") {
                Ok(response) if response.status == 200 => Poll::Ready(()),
                Ok(response) => Poll::Waiting(format!("/v2/ answered {}", response.status)),
                Err(failure) => Poll::Waiting(failure.reason),
            })
        })
        .with_context(|| {
            format!(
                "the registry did not answer on {addr}; see {}",
                log.display()
            )
        })?;
        Ok(registry)
    }

    /// The tags the registry holds for `name`.
    pub fn tags(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let client = Client::new(self.addr, Duration::from_secs(5));
        let response = client
            .get(&format!("/v2/{name}/tags/list"))
            .map_err(|failure| {
                anyhow::anyhow!("cannot list the tags of {name}: {}", failure.reason)
            })?;
        if response.status != 200 {
            anyhow::bail!("listing the tags of {name} answered {}", response.status);
        }
        let list = response
            .json()
            .with_context(|| format!("the tag list of {name} is not JSON"))?;
        Ok(list["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag.as_str().map(str::to_owned))
            .collect())
    }
}

fn config_yaml(addr: SocketAddr, storage: &Path) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        storage.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_listens_on_loopback_only() {
        let yaml = config_yaml("127.0.0.1:5055".parse().unwrap(), Path::new("/tmp/r"));
        assert!(yaml.contains("addr: 127.0.0.1:5055"), "{yaml}");
        assert!(yaml.contains("rootdirectory: /tmp/r"), "{yaml}");
    }
}

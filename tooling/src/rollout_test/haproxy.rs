//! The load balancer: HAProxy from Debian 13 as a local image made offline,
//! run on the host's network beside the replicas, configured by environment,
//! and asked through its statistics page which replicas it sends traffic to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use xshell::Shell;

use crate::docker::Docker;
use crate::http::Client;
use crate::stand_ins::{self, PackageImage};

const CONFIG: &str = include_str!("haproxy.cfg");
const CONFIG_PATH: &str = "/etc/haproxy/rollout.cfg";
/// The backend's name in the configuration.
const BACKEND: &str = "replicas";
/// The replicas' names in the configuration, in order.
pub const REPLICAS: [&str; 2] = ["a", "b"];

/// The image, made unless the engine has it: HAProxy's binary and its
/// libraries, no shell, run as `nobody`.
pub fn image(sh: &Shell, docker: &Docker, root: &std::path::Path) -> anyhow::Result<String> {
    let entrypoint = format!(r#"ENTRYPOINT ["/usr/sbin/haproxy", "-db", "-f", "{CONFIG_PATH}"]"#);
    stand_ins::package_image(
        sh,
        docker,
        root,
        &PackageImage {
            name: "haproxy",
            packages: &["haproxy"],
            files: &[(CONFIG_PATH, CONFIG)],
            setup: "",
            changes: &[&entrypoint, "USER 65534:65534"],
        },
    )
}

/// Where HAProxy listens and what it checks.
#[derive(Debug, Clone)]
pub struct Settings {
    pub frontend: SocketAddr,
    pub stats: SocketAddr,
    pub replicas: [SocketAddr; 2],
    pub ready_path: String,
    pub check_interval: Duration,
    pub check_fall: u32,
}

impl Settings {
    /// The environment the configuration reads.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("FRONTEND_PORT", self.frontend.port().to_string()),
            ("STATS_PORT", self.stats.port().to_string()),
            ("REPLICA_A_PORT", self.replicas[0].port().to_string()),
            ("REPLICA_B_PORT", self.replicas[1].port().to_string()),
            ("READY_PATH", self.ready_path.clone()),
            (
                "CHECK_INTERVAL",
                format!("{}ms", self.check_interval.as_millis()),
            ),
            ("CHECK_FALL", self.check_fall.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }
}

/// Each replica's state as HAProxy's statistics page gives it: `UP`,
/// `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), ….
pub fn replica_states(stats: SocketAddr) -> anyhow::Result<BTreeMap<String, String>> {
    let response = Client::new(stats, Duration::from_secs(2))
        .get("/stats;csv")
        .map_err(|failure| anyhow::anyhow!("{}", failure.reason))
        .context("cannot read HAProxy's statistics")?;
    if response.status != 200 {
        anyhow::bail!("HAProxy's statistics answered {}", response.status);
    }
    parse_states(&response.body_text())
}

/// The `status` of each server of the backend, from the statistics CSV.
pub fn parse_states(csv: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .context("HAProxy's statistics have no header line")?;
    let column = |name: &str| {
        header
            .split(',')
            .position(|c| c == name)
            .with_context(|| format!("HAProxy's statistics have no {name} column"))
    };
    let (proxy, server, status) = (column("pxname")?, column("svname")?, column("status")?);
    Ok(lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|fields| {
            fields.get(proxy) == Some(&BACKEND)
                && fields
                    .get(server)
                    .is_some_and(|name| REPLICAS.contains(name))
        })
        .map(|fields| (fields[server].to_owned(), fields[status].to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
        rollout,FRONTEND,,,0,2,512,40,0,0,0,0,0,,,,,OPEN,\n\
        replicas,a,0,0,0,1,,20,0,0,,0,,0,0,0,0,UP,1\n\
        replicas,b,0,0,0,1,,20,0,0,,0,,0,0,0,0,DOWN 1/2,1\n\
        replicas,BACKEND,0,0,0,2,52,40,0,0,0,0,,0,0,0,0,UP,2\n\
        stats,FRONTEND,,,1,1,512,3,0,0,0,0,0,,,,,OPEN,\n";

    #[test]
    fn reads_each_replicas_state_from_the_statistics() {
        let states = parse_states(STATS).unwrap();
        assert_eq!(states.len(), 2);
        assert_eq!(states["a"], "UP");
        assert_eq!(states["b"], "DOWN 1/2");
    }

    #[test]
    fn statistics_without_a_status_column_are_an_error() {
        let error = parse_states("# pxname,svname\nreplicas,a\n").unwrap_err();
        assert!(error.to_string().contains("status"), "{error}");
        assert!(parse_states("").is_err());
    }

    #[test]
    fn the_configuration_reads_every_variable_it_is_given() {
        let settings = Settings {
            frontend: "127.0.0.1:1".parse().unwrap(),
            stats: "127.0.0.1:2".parse().unwrap(),
            replicas: [
                "127.0.0.1:3".parse().unwrap(),
                "127.0.0.1:4".parse().unwrap(),
            ],
            ready_path: "/ready".to_owned(),
            check_interval: Duration::from_millis(500),
            check_fall: 2,
        };
        for (key, _) in settings.env() {
            assert!(CONFIG.contains(&format!("${{{key}}}")), "{key}");
        }
        for name in REPLICAS {
            assert!(CONFIG.contains(&format!("server {name} ")), "{name}");
        }
        assert!(CONFIG.contains(&format!("backend {BACKEND}")));
    }
}

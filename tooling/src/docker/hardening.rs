//! The settings a container runs under in production, as one value: the
//! `docker run` arguments, the check that a running container has them, and
//! how reports show them all come from [`Hardening`].

use serde::Serialize;

use super::container::ContainerInspect;

/// The production settings of a test container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hardening {
    /// `--read-only`: the root filesystem cannot be written.
    pub read_only: bool,
    /// `--cap-drop ALL`.
    pub drop_all_capabilities: bool,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// Size of the tmpfs on /tmp, e.g. `16m`.
    pub tmp_size: String,
    /// `--memory`, e.g. `256m`.
    pub memory: String,
    /// `--cpus`, e.g. `1`.
    pub cpus: String,
    pub pids_limit: u32,
}

/// Mount options of the writable scratch directories.
pub const TMPFS_OPTIONS: &str = "rw,noexec,nosuid,nodev";

impl Hardening {
    /// Everything on, with these resource limits.
    pub fn production(memory: &str, cpus: &str) -> Hardening {
        Hardening {
            read_only: true,
            drop_all_capabilities: true,
            no_new_privileges: true,
            tmp_size: "16m".to_owned(),
            memory: memory.to_owned(),
            cpus: cpus.to_owned(),
            pids_limit: 256,
        }
    }

    /// The `docker run` arguments that apply the settings.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.read_only {
            args.push("--read-only".to_owned());
        }
        if self.drop_all_capabilities {
            args.extend(["--cap-drop".to_owned(), "ALL".to_owned()]);
        }
        if self.no_new_privileges {
            args.extend(["--security-opt".to_owned(), "no-new-privileges".to_owned()]);
        }
        args.extend([
            "--tmpfs".to_owned(),
            format!("/tmp:{TMPFS_OPTIONS},size={}", self.tmp_size),
            "--memory".to_owned(),
            self.memory.clone(),
            "--cpus".to_owned(),
            self.cpus.clone(),
            "--pids-limit".to_owned(),
            self.pids_limit.to_string(),
        ]);
        args
    }

    /// The settings as a reader sees them on the command line.
    pub fn describe(&self) -> String {
        self.args().join(" ")
    }

    /// Every setting the running container lacks, in words; also a root
    /// user, and no writable named volume on `data_dir`. Empty when it runs
    /// as production should.
    pub fn gaps(&self, inspect: &ContainerInspect, data_dir: &str) -> Vec<String> {
        let host = &inspect.host_config;
        let mut gaps = Vec::new();
        if self.read_only && !host.readonly_rootfs {
            gaps.push("root filesystem is writable".to_owned());
        }
        if self.drop_all_capabilities
            && !host
                .cap_drop
                .iter()
                .flatten()
                .any(|c| c.eq_ignore_ascii_case("ALL"))
        {
            gaps.push("capabilities not dropped".to_owned());
        }
        if self.no_new_privileges
            && !host
                .security_opt
                .iter()
                .flatten()
                .any(|o| o == "no-new-privileges" || o == "no-new-privileges:true")
        {
            gaps.push("no-new-privileges not set".to_owned());
        }
        if !host.tmpfs.as_ref().is_some_and(|t| t.contains_key("/tmp")) {
            gaps.push("no tmpfs on /tmp".to_owned());
        }
        if host.memory <= 0 {
            gaps.push("no memory limit".to_owned());
        }
        if host.nano_cpus <= 0 {
            gaps.push("no CPU limit".to_owned());
        }
        if host.pids_limit.unwrap_or(0) <= 0 {
            gaps.push("no pids limit".to_owned());
        }
        let user = inspect.config.user.split(':').next().unwrap_or_default();
        if matches!(user, "" | "root" | "0") {
            gaps.push(format!("runs as root (user {:?})", inspect.config.user));
        }
        if !inspect
            .mounts
            .iter()
            .any(|m| m.kind == "volume" && m.destination == data_dir && m.rw)
        {
            gaps.push(format!("no writable named volume on {data_dir}"));
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::container::{HostConfig, parse_container_inspect};

    const HEALTHY: &str = include_str!("../../fixtures/container-healthy.json");

    #[test]
    fn the_arguments_apply_every_setting() {
        let args = Hardening::production("256m", "1").describe();
        assert_eq!(
            args,
            "--read-only --cap-drop ALL --security-opt no-new-privileges \
             --tmpfs /tmp:rw,noexec,nosuid,nodev,size=16m --memory 256m --cpus 1 --pids-limit 256"
        );
    }

    #[test]
    fn a_real_hardened_container_has_no_gaps() {
        let inspect = parse_container_inspect(HEALTHY).unwrap();
        let hardening = Hardening::production("256m", "1");
        assert_eq!(hardening.gaps(&inspect, "/data"), Vec::<String>::new());
    }

    #[test]
    fn every_missing_setting_is_named() {
        let mut inspect = parse_container_inspect(HEALTHY).unwrap();
        inspect.host_config = HostConfig::default();
        inspect.config.user = String::new();
        inspect.mounts.clear();
        let gaps = Hardening::production("256m", "1").gaps(&inspect, "/data");
        assert_eq!(gaps.len(), 9, "{gaps:?}");
        assert!(gaps.iter().any(|g| g.starts_with("runs as root")));
    }
}

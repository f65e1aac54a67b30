//! What the built image must be, checked on the image itself rather than on
//! the Dockerfile: a non-root user, an exec-form health check, SIGTERM as the
//! stop signal, the service port, the data volume, OCI labels, no shell and
//! no package manager, and a size within budget.

use crate::docker::ImageInspect;
use crate::metadata::{self, Metadata};

/// The user and group distroless calls `nonroot`.
pub const NONROOT: &str = "65532";

/// Health checks must answer quickly enough for tests to wait on them.
const MAX_HEALTH_INTERVAL_NANOS: u64 = 10_000_000_000;

/// The labels the Dockerfile fills from `cargo xtask image`'s build arguments.
const LABELS: &[&str] = &[
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.version",
    "org.opencontainers.image.created",
];

/// Where the SQLite database lives.
const DATA_VOLUME: &str = "/data";

/// Programs that make a shell or install packages.
const FORBIDDEN_PROGRAMS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "busybox", "apt", "apt-get", "dpkg",
];

#[derive(Debug, Clone)]
pub struct Expectations {
    pub binary: String,
    pub port: u16,
    pub max_bytes: u64,
}

impl Expectations {
    pub fn of(metadata: &Metadata) -> Expectations {
        // Budgets are whole or fractional megabytes; bytes fit comfortably.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max_bytes = (metadata.budget.max_image_mb * 1_000_000.0) as u64;
        Expectations {
            binary: metadata.binary.clone(),
            port: metadata.port,
            max_bytes,
        }
    }

    fn binary_path(&self) -> String {
        metadata::binary_path(&self.binary)
    }
}

/// Every way the image falls short, one sentence each; empty when it conforms.
pub fn violations(image: &ImageInspect, paths: &[String], expect: &Expectations) -> Vec<String> {
    let mut found = Vec::new();
    let config = &image.config;

    if !runs_as_nonroot(&config.user) {
        found.push(format!(
            "runs as {:?}, not as {NONROOT}:{NONROOT}",
            config.user
        ));
    }

    let binary = expect.binary_path();
    if config.entrypoint.as_deref() != Some(std::slice::from_ref(&binary)) {
        found.push(format!(
            "entrypoint is {:?}, not [{binary:?}]",
            config.entrypoint
        ));
    }
    match &config.healthcheck {
        None => found.push("has no health check".to_owned()),
        Some(health) => {
            let wanted = ["CMD", binary.as_str(), "--health-check"];
            if health.test != wanted {
                found.push(format!(
                    "health check is {:?}, not the exec form {wanted:?}",
                    health.test
                ));
            }
            if health.interval == 0 || health.interval > MAX_HEALTH_INTERVAL_NANOS {
                found.push(format!(
                    "health check interval is {} s, more than {} s (or unset)",
                    health.interval / 1_000_000_000,
                    MAX_HEALTH_INTERVAL_NANOS / 1_000_000_000
                ));
            }
        }
    }

    if config.stop_signal.as_deref() != Some("SIGTERM") {
        found.push(format!(
            "stop signal is {:?}, not SIGTERM",
            config.stop_signal
        ));
    }

    if !image.exposes(expect.port) {
        found.push(format!("does not expose {}/tcp", expect.port));
    }

    if !config
        .volumes
        .as_ref()
        .is_some_and(|volumes| volumes.contains_key(DATA_VOLUME))
    {
        found.push(format!("has no {DATA_VOLUME} volume"));
    }

    for label in LABELS {
        if image.label(label).is_none_or(str::is_empty) {
            found.push(format!("has no {label} label"));
        }
    }

    let binary_file = binary.trim_start_matches('/');
    if !paths.iter().any(|path| path == binary_file) {
        found.push(format!("has no {binary}"));
    }
    for path in paths.iter().filter(|path| is_forbidden_program(path)) {
        found.push(format!("contains /{path}"));
    }

    if image.size >= expect.max_bytes {
        found.push(format!(
            "is {} bytes, not under {} bytes",
            image.size, expect.max_bytes
        ));
    }
    found
}

/// `65532` or `65532:65532`.
fn runs_as_nonroot(user: &str) -> bool {
    let mut ids = user.split(':');
    ids.next() == Some(NONROOT) && ids.all(|group| group == NONROOT)
}

fn is_forbidden_program(path: &str) -> bool {
    let Some((dir, name)) = path.rsplit_once('/') else {
        return false;
    };
    (dir == "bin" || dir.ends_with("/bin") || dir == "sbin" || dir.ends_with("/sbin"))
        && FORBIDDEN_PROGRAMS.contains(&name)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::docker::{Docker, ImageInspect};
    use crate::image_report::ImageReport;

    const INSPECT: &str = include_str!("../fixtures/image-inspect.json");

    fn expectations() -> Expectations {
        Expectations {
            binary: "server".into(),
            port: 8080,
            max_bytes: 100_000_000,
        }
    }

    fn paths(extra: &[&str]) -> Vec<String> {
        ["etc/passwd", "usr/bin", "usr/local/bin/server", "data"]
            .iter()
            .chain(extra)
            .map(|p| (*p).to_owned())
            .collect()
    }

    #[test]
    fn the_fixture_image_conforms() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        assert_eq!(
            violations(&image, &paths(&[]), &expectations()),
            [] as [String; 0]
        );
    }

    #[test]
    fn a_root_user_is_a_violation() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        for user in ["", "root", "0", "65532:0"] {
            image.config.user = user.into();
            let found = violations(&image, &paths(&[]), &expectations());
            assert_eq!(found.len(), 1, "{user}: {found:?}");
        }
        image.config.user = "65532".into();
        assert!(violations(&image, &paths(&[]), &expectations()).is_empty());
    }

    #[test]
    fn a_shell_anywhere_in_a_bin_directory_is_a_violation() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        for shell in [
            "bin/sh",
            "usr/bin/sh",
            "usr/bin/dash",
            "usr/local/bin/busybox",
        ] {
            let found = violations(&image, &paths(&[shell]), &expectations());
            assert_eq!(found, [format!("contains /{shell}")]);
        }
        let harmless = paths(&["usr/share/doc/sh", "etc/profile.d/bash"]);
        assert!(violations(&image, &harmless, &expectations()).is_empty());
    }

    #[test]
    fn a_package_manager_is_a_violation() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        let found = violations(&image, &paths(&["usr/bin/dpkg"]), &expectations());
        assert_eq!(found, ["contains /usr/bin/dpkg"]);
    }

    #[test]
    fn a_shell_form_health_check_is_a_violation() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        if let Some(health) = image.config.healthcheck.as_mut() {
            health.test = vec!["CMD-SHELL".into(), "server --health-check".into()];
        }
        let found = violations(&image, &paths(&[]), &expectations());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("exec form"));
    }

    #[test]
    fn a_slow_or_missing_health_check_is_a_violation() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        if let Some(health) = image.config.healthcheck.as_mut() {
            health.interval = 30_000_000_000;
        }
        assert_eq!(violations(&image, &paths(&[]), &expectations()).len(), 1);
        image.config.healthcheck = None;
        assert_eq!(
            violations(&image, &paths(&[]), &expectations()),
            ["has no health check"]
        );
    }

    #[test]
    fn the_stop_signal_port_binary_and_size_are_checked() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        image.config.stop_signal = None;
        image.config.exposed_ports = None;
        image.size = 100_000_000;
        let found = violations(&image, &["etc/passwd".into()], &expectations());
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn the_entrypoint_volume_and_labels_are_checked() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        image.config.entrypoint = Some(vec!["/bin/server".into()]);
        image.config.volumes = None;
        if let Some(labels) = image.config.labels.as_mut() {
            labels.insert("org.opencontainers.image.revision".into(), String::new());
        }
        let found = violations(&image, &paths(&[]), &expectations());
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|f| f.contains("revision")));
    }

    /// The end-to-end check of the image `cargo xtask image` built last.
    #[test]
    #[ignore = "needs docker and a built image: run `cargo xtask image` first"]
    fn built_image_conforms() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let report = ImageReport::load(root).unwrap();
        let metadata = Metadata::load(root).unwrap();
        let sh = xshell::Shell::new().unwrap();
        let docker = Docker::connect(&sh).unwrap();
        let image = docker.inspect_image(&sh, &report.image_id).unwrap();
        let paths = docker.image_paths(&sh, &report.image_id).unwrap();
        let found = violations(&image, &paths, &Expectations::of(&metadata));
        assert!(
            found.is_empty(),
            "{} ({}): {}",
            report.reference(),
            report.image_id,
            found.join("; ")
        );
    }
}

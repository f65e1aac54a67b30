//! What the built image must be, checked on the image itself rather than on
//! the Dockerfile: a non-root user, the service as entrypoint, the
//! `healthcheck` probe as an exec-form health check asking the manifest's
//! port and path, STOPSIGNAL SIGTERM, the service port, the data volume, OCI
//! labels, and no shell and no package manager. Its weight is size-check's
//! to judge.

use std::collections::BTreeMap;

use crate::checks::Check;
use crate::docker::ImageInspect;
use crate::metadata::{HEALTHCHECK_PATH, Metadata, SERVICE_PATH};

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

/// Programs that make a shell or install packages.
const FORBIDDEN_PROGRAMS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "busybox", "apt", "apt-get", "dpkg",
];

#[derive(Debug, Clone)]
pub struct Expectations {
    pub port: u16,
    pub health_path: String,
    pub data_dir: String,
    /// The manifest's run-time settings, each checked when it names any.
    pub runtime_files: Vec<String>,
    pub workdir: Option<String>,
    pub runtime_env: BTreeMap<String, String>,
    /// Names that must not be in the image: the build's own variables.
    pub build_env: Vec<String>,
}

impl Expectations {
    pub fn of(metadata: &Metadata) -> Expectations {
        Expectations {
            port: metadata.port,
            health_path: metadata.health_path.clone(),
            data_dir: metadata.data_dir.clone(),
            runtime_files: metadata
                .runtime_files
                .iter()
                .map(|file| file.to.clone())
                .collect(),
            workdir: metadata.workdir.clone(),
            runtime_env: metadata.runtime_env.clone(),
            build_env: metadata.build_env.keys().cloned().collect(),
        }
    }
}

/// One check for each thing the image must be; `paths` lists its files.
pub fn checks(image: &ImageInspect, paths: &[String], expect: &Expectations) -> Vec<Check> {
    let config = &image.config;
    let binary = SERVICE_PATH.to_owned();
    let mut checks = vec![Check::judge(
        "non-root user",
        runs_as_nonroot(&config.user),
        format!("{:?}", config.user),
        format!("{NONROOT}:{NONROOT}"),
    )];

    let entrypoint = config.entrypoint.clone().unwrap_or_default();
    checks.push(Check::judge(
        "entrypoint",
        entrypoint == [binary.clone()],
        format!("{entrypoint:?}"),
        format!("[{binary:?}]"),
    ));

    checks.push(health_check(image));
    checks.push(probe_target(image, expect));

    checks.push(Check::judge(
        "STOPSIGNAL SIGTERM",
        config.stop_signal.as_deref() == Some("SIGTERM"),
        config.stop_signal.as_deref().unwrap_or("unset"),
        "SIGTERM",
    ));

    checks.push(Check::judge(
        "port",
        image.exposes(expect.port),
        exposed(image),
        format!("{}/tcp", expect.port),
    ));

    checks.push(Check::judge(
        "data volume",
        config
            .volumes
            .as_ref()
            .is_some_and(|volumes| volumes.contains_key(&expect.data_dir)),
        config.volumes.as_ref().map_or_else(
            || "none".to_owned(),
            |v| v.keys().cloned().collect::<Vec<_>>().join(" "),
        ),
        format!("VOLUME {}", expect.data_dir),
    ));

    checks.push(labels(image));
    let missing: Vec<&str> = [SERVICE_PATH, HEALTHCHECK_PATH]
        .into_iter()
        .filter(|file| {
            !paths
                .iter()
                .any(|path| path == file.trim_start_matches('/'))
        })
        .collect();
    checks.push(Check::judge(
        "binary",
        missing.is_empty(),
        if missing.is_empty() {
            format!("{SERVICE_PATH}, {HEALTHCHECK_PATH}")
        } else {
            format!("no {}", missing.join(", no "))
        },
        format!("{SERVICE_PATH} and {HEALTHCHECK_PATH} in the image"),
    ));

    checks.extend(run_time_settings(image, paths, expect));

    let forbidden: Vec<String> = paths
        .iter()
        .filter(|path| is_forbidden_program(path))
        .map(|path| format!("/{path}"))
        .collect();
    checks.push(Check::judge(
        "no shell or package manager",
        forbidden.is_empty(),
        if forbidden.is_empty() {
            "none".to_owned()
        } else {
            forbidden.join(" ")
        },
        "none",
    ));
    checks
}

/// The `healthcheck` probe as an exec-form health check, often enough to
/// wait on.
fn health_check(image: &ImageInspect) -> Check {
    let wanted = ["CMD", HEALTHCHECK_PATH];
    match &image.config.healthcheck {
        None => Check::judge("health check", false, "none", "exec form, interval <= 10 s"),
        Some(health) => {
            let mut problems = Vec::new();
            if health.test != wanted {
                problems.push(format!(
                    "health check is {:?}, not the exec form {wanted:?}",
                    health.test
                ));
            }
            if health.interval == 0 || health.interval > MAX_HEALTH_INTERVAL_NANOS {
                problems.push(format!(
                    "interval is {} s, more than {} s (or unset)",
                    health.interval / 1_000_000_000,
                    MAX_HEALTH_INTERVAL_NANOS / 1_000_000_000
                ));
            }
            Check::judge(
                "health check",
                problems.is_empty(),
                format!(
                    "{:?} every {} s",
                    health.test,
                    health.interval / 1_000_000_000
                ),
                "exec form, interval <= 10 s",
            )
            .because(problems.join("; "))
        }
    }
}

/// The probe asks the manifest's port and liveness path: the image's
/// environment says which.
fn probe_target(image: &ImageInspect, expect: &Expectations) -> Check {
    let port = image.env("HEALTHCHECK_PORT");
    let path = image.env("HEALTHCHECK_PATH");
    let wanted_port = expect.port.to_string();
    Check::judge(
        "health probe target",
        port == Some(wanted_port.as_str()) && path == Some(expect.health_path.as_str()),
        format!(
            "HEALTHCHECK_PORT={} HEALTHCHECK_PATH={}",
            port.unwrap_or("unset"),
            path.unwrap_or("unset")
        ),
        format!(
            "port {} and health-path {}",
            expect.port, expect.health_path
        ),
    )
}

/// The OCI labels `cargo xtask image` fills.
fn labels(image: &ImageInspect) -> Check {
    let missing: Vec<&str> = LABELS
        .iter()
        .copied()
        .filter(|label| image.label(label).is_none_or(str::is_empty))
        .collect();
    Check::judge(
        "OCI labels",
        missing.is_empty(),
        format!("{} of {}", LABELS.len() - missing.len(), LABELS.len()),
        "source, revision, version, created",
    )
    .because({
        let mut because = format!("missing: {}", missing.join(", "));
        if missing.contains(&LABELS[0]) {
            because.push_str(
                " (the source is the package's `repository` in its Cargo.toml, else the git remote `origin`)",
            );
        }
        because
    })
}

/// The manifest's run-time files, working directory and variables, each
/// in the image as named, and the build's variables not.
fn run_time_settings(image: &ImageInspect, paths: &[String], expect: &Expectations) -> Vec<Check> {
    let mut checks = Vec::new();
    if !expect.runtime_files.is_empty() {
        let missing: Vec<&str> = expect
            .runtime_files
            .iter()
            .map(String::as_str)
            .filter(|file| !paths.iter().any(|p| p == file.trim_start_matches('/')))
            .collect();
        checks.push(
            Check::judge(
                "run-time files",
                missing.is_empty(),
                format!(
                    "{} of {} present",
                    expect.runtime_files.len() - missing.len(),
                    expect.runtime_files.len()
                ),
                expect.runtime_files.join(", "),
            )
            .because(format!("not in the image: {}", missing.join(", "))),
        );
    }
    if let Some(workdir) = &expect.workdir {
        let actual = &image.config.working_dir;
        checks.push(Check::judge(
            "working directory",
            actual == workdir,
            if actual.is_empty() { "/" } else { actual },
            workdir.clone(),
        ));
    }
    if !expect.runtime_env.is_empty() {
        let wrong: Vec<String> = expect
            .runtime_env
            .iter()
            .filter(|(name, value)| image.env(name) != Some(value.as_str()))
            .map(|(name, value)| match image.env(name) {
                Some(actual) => format!("{name}={actual:?}, not {value:?}"),
                None => format!("{name} unset"),
            })
            .collect();
        checks.push(
            Check::judge(
                "run-time environment",
                wrong.is_empty(),
                format!(
                    "{} of {} set",
                    expect.runtime_env.len() - wrong.len(),
                    expect.runtime_env.len()
                ),
                expect
                    .runtime_env
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            )
            .because(wrong.join("; ")),
        );
    }
    if !expect.build_env.is_empty() {
        let leaked: Vec<&str> = expect
            .build_env
            .iter()
            .map(String::as_str)
            .filter(|name| image.env(name).is_some() && !expect.runtime_env.contains_key(*name))
            .collect();
        checks.push(
            Check::judge(
                "build environment kept out",
                leaked.is_empty(),
                if leaked.is_empty() {
                    "none in the image".to_owned()
                } else {
                    leaked.join(", ")
                },
                format!("none of {} in the image", expect.build_env.join(", ")),
            )
            .because(format!("in the image's environment: {}", leaked.join(", "))),
        );
    }
    checks
}

fn exposed(image: &ImageInspect) -> String {
    image.config.exposed_ports.as_ref().map_or_else(
        || "none".to_owned(),
        |ports| ports.keys().cloned().collect::<Vec<_>>().join(" "),
    )
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
    use super::*;
    use crate::docker::ImageInspect;

    const INSPECT: &str = include_str!("../../fixtures/image-inspect.json");

    fn expectations() -> Expectations {
        Expectations {
            port: 8080,
            health_path: "/health".into(),
            data_dir: "/data".into(),
            runtime_files: Vec::new(),
            workdir: None,
            runtime_env: BTreeMap::new(),
            build_env: Vec::new(),
        }
    }

    #[test]
    fn the_manifests_run_time_settings_are_checked_in_the_image() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        image.config.env = Some(vec![
            "APP_ENVIRONMENT=production".to_owned(),
            "SQLX_OFFLINE=true".to_owned(),
        ]);
        image.config.working_dir = "/app".to_owned();
        let expect = Expectations {
            runtime_files: vec!["/app/configuration".to_owned()],
            workdir: Some("/app".to_owned()),
            runtime_env: BTreeMap::from([("APP_ENVIRONMENT".to_owned(), "production".to_owned())]),
            build_env: vec!["SQLX_OFFLINE".to_owned()],
            ..expectations()
        };
        let checks = run_time_settings(&image, &paths(&["app/configuration"]), &expect);
        let status = |name: &str| {
            checks
                .iter()
                .find(|c| c.name == name)
                .map(Check::failed)
                .unwrap()
        };
        assert!(!status("run-time files"));
        assert!(!status("working directory"));
        assert!(!status("run-time environment"));
        assert!(status("build environment kept out"), "SQLX_OFFLINE leaked");
        let without_files = run_time_settings(&image, &paths(&[]), &expect);
        assert!(
            without_files
                .iter()
                .any(|c| c.name == "run-time files" && c.failed())
        );
        let unset = run_time_settings(&image, &paths(&[]), &expectations());
        assert!(
            unset.is_empty(),
            "no check for settings the manifest leaves out"
        );
    }

    fn paths(extra: &[&str]) -> Vec<String> {
        [
            "etc/passwd",
            "usr/bin",
            "usr/local/bin/service",
            "usr/local/bin/healthcheck",
            "data",
        ]
        .iter()
        .chain(extra)
        .map(|p| (*p).to_owned())
        .collect()
    }

    /// The names of the checks that failed.
    fn failed(image: &ImageInspect, paths: &[String]) -> Vec<String> {
        crate::checks::failures(checks(image, paths, &expectations()))
    }

    #[test]
    fn the_fixture_image_conforms() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        assert_eq!(failed(&image, &paths(&[])), [] as [String; 0]);
    }

    #[test]
    fn a_root_user_is_a_violation() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        for user in ["", "root", "0", "65532:0"] {
            image.config.user = user.into();
            let found = failed(&image, &paths(&[]));
            assert_eq!(found.len(), 1, "{user}: {found:?}");
            assert!(found[0].starts_with("non-root user"), "{found:?}");
        }
        image.config.user = "65532".into();
        assert!(failed(&image, &paths(&[])).is_empty());
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
            let found = failed(&image, &paths(&[shell]));
            assert_eq!(found, [format!("no shell or package manager: /{shell}")]);
        }
        let harmless = paths(&["usr/share/doc/sh", "etc/profile.d/bash"]);
        assert!(failed(&image, &harmless).is_empty());
    }

    #[test]
    fn a_package_manager_is_a_violation() {
        let image = ImageInspect::parse(INSPECT).unwrap();
        let found = failed(&image, &paths(&["usr/bin/dpkg"]));
        assert_eq!(found, ["no shell or package manager: /usr/bin/dpkg"]);
    }

    #[test]
    fn a_shell_form_health_check_is_a_violation() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        if let Some(health) = image.config.healthcheck.as_mut() {
            health.test = vec!["CMD-SHELL".into(), "healthcheck".into()];
        }
        let found = failed(&image, &paths(&[]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("exec form"));
    }

    #[test]
    fn a_slow_or_missing_health_check_is_a_violation() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        if let Some(health) = image.config.healthcheck.as_mut() {
            health.interval = 30_000_000_000;
        }
        assert_eq!(failed(&image, &paths(&[])).len(), 1);
        image.config.healthcheck = None;
        assert_eq!(failed(&image, &paths(&[])), ["health check: none"]);
    }

    #[test]
    fn the_stop_signal_port_and_binary_are_checked() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        image.config.stop_signal = None;
        image.config.exposed_ports = None;
        let found = failed(&image, &["etc/passwd".into()]);
        assert_eq!(
            found,
            [
                "STOPSIGNAL SIGTERM: unset",
                "port: none",
                "binary: no /usr/local/bin/service, no /usr/local/bin/healthcheck"
            ]
        );
    }

    #[test]
    fn a_probe_asking_another_port_or_path_is_a_violation() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        let mut expect = expectations();
        expect.health_path = "/livez".into();
        let found = crate::checks::failures(checks(&image, &paths(&[]), &expect));
        assert_eq!(
            found,
            ["health probe target: HEALTHCHECK_PORT=8080 HEALTHCHECK_PATH=/health"]
        );
        image.config.env = None;
        let found = failed(&image, &paths(&[]));
        assert_eq!(
            found,
            ["health probe target: HEALTHCHECK_PORT=unset HEALTHCHECK_PATH=unset"]
        );
    }

    #[test]
    fn the_entrypoint_volume_and_labels_are_checked() {
        let mut image = ImageInspect::parse(INSPECT).unwrap();
        image.config.entrypoint = Some(vec!["/bin/server".into()]);
        image.config.volumes = None;
        if let Some(labels) = image.config.labels.as_mut() {
            labels.insert("org.opencontainers.image.revision".into(), String::new());
        }
        let found = failed(&image, &paths(&[]));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|f| f.contains("revision")));
    }
}

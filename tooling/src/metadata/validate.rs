//! The table's values checked before anything runs: each bad value is one
//! line that names its key, never a failure later inside BuildKit or at run
//! time.

use super::{BackingKind, BackingService, Metadata, RuntimeFile};

impl Metadata {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.drain.validate()?;
        for (key, path) in [
            ("health-path", &self.health_path),
            ("ready-path", &self.ready_path),
        ] {
            if !path.starts_with('/') {
                anyhow::bail!("{key} {path:?} must start with /");
            }
        }
        image_name(&self.image)?;
        packages("runtime-extras", &self.runtime_extras)?;
        packages("builder-packages", &self.builder_packages)?;
        for (name, value) in &self.build_env {
            variable("build-env", name, value)?;
        }
        for (name, value) in &self.runtime_env {
            variable("runtime-env", name, value)?;
        }
        for path in &self.build_context {
            workspace_path("build-context", path)?;
        }
        for RuntimeFile { from, to } in &self.runtime_files {
            workspace_path("runtime-files", from)?;
            image_path("runtime-files", to)?;
        }
        if let Some(workdir) = &self.workdir {
            image_path("workdir", workdir)?;
        }
        for (name, service) in &self.services {
            backing_service(name, service)?;
        }
        for (name, value) in &self.test_env {
            variable_name("test-env", name)?;
            for placeholder in placeholders(value) {
                let known = placeholder.split_once('.').is_some_and(|(service, field)| {
                    self.services.get(service).is_some_and(|s| {
                        crate::backing::FIELDS.contains(&field)
                            && (s.kind == BackingKind::Postgres
                                || !["user", "password", "database"].contains(&field))
                    })
                });
                if !known {
                    anyhow::bail!(
                        "test-env.{name}: {{{placeholder}}} names no backing service's address; write {{NAME.host}}, {{NAME.port}}, {{NAME.url}} (and for PostgreSQL {{NAME.user}}, {{NAME.password}}, {{NAME.database}}) for a service under [services]"
                    );
                }
            }
        }
        Ok(())
    }
}

/// The `{…}` placeholders of a value.
pub(crate) fn placeholders(value: &str) -> Vec<&str> {
    value
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(inside, _)| inside))
        .collect()
}

fn backing_service(name: &str, service: &BackingService) -> anyhow::Result<()> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        anyhow::bail!(
            "services.{name}: the name is the service's host name, so lower-case letters, digits and -"
        );
    }
    if service.kind != BackingKind::Postgres
        && (service.database.is_some() || service.migrations.is_some())
    {
        anyhow::bail!("services.{name}: `database` and `migrations` are PostgreSQL's");
    }
    if let Some(database) = &service.database
        && !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        anyhow::bail!("services.{name}.database {database:?}: letters, digits and _ only");
    }
    if let Some(migrations) = &service.migrations {
        workspace_path(&format!("services.{name}.migrations"), migrations)?;
    }
    Ok(())
}

/// A repository name as docker takes it: lower case, digits and `._-/`.
fn image_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        && !name.ends_with(['.', '_', '-', '/']);
    if !valid {
        anyhow::bail!(
            "image {name:?} is not an image name: lower-case letters, digits and . _ - /, like \"api\" or \"team/api\""
        );
    }
    Ok(())
}

/// Debian's package names: lower case letters, digits, `+`, `-` and `.`,
/// two or more, starting with a letter or digit. Anything else would reach
/// the build's shell.
fn packages(key: &str, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        let valid = name.len() >= 2
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !valid {
            anyhow::bail!("{key}: {name:?} is not a Debian package name");
        }
    }
    Ok(())
}

/// A variable's name as a shell takes it, a value on one line, and never a
/// secret: what the table holds is baked into the image or its build.
fn variable(key: &str, name: &str, value: &str) -> anyhow::Result<()> {
    variable_name(key, name)?;
    if value.contains(['\n', '\r', '\0']) {
        anyhow::bail!("{key}.{name}: the value must be one line");
    }
    if let Some(why) = looks_secret(name, value) {
        anyhow::bail!(
            "{key}.{name} looks like a secret ({why}): the table is baked into the image, so it never holds one; pass it at run time instead (see docs/adopting.md, \"Secrets\")"
        );
    }
    Ok(())
}

/// Words in a variable's name that say it holds a credential.
const NAMES: [&str; 8] = [
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
];

/// Why a name or value looks like a credential, if it does.
fn looks_secret(name: &str, value: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if NAMES.iter().any(|word| upper.contains(word)) {
        return Some("its name");
    }
    if value.contains("-----BEGIN") {
        return Some("a PEM key");
    }
    // `scheme://user:password@host`
    if let Some((_, rest)) = value.split_once("://")
        && let Some((credentials, _)) = rest.split_once('@')
        && credentials.contains(':')
    {
        return Some("a URL with a password");
    }
    None
}

fn variable_name(key: &str, name: &str) -> anyhow::Result<()> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        anyhow::bail!("{key}: {name:?} is not a variable name (letters, digits and _)");
    }
    Ok(())
}

/// A relative path inside the workspace, in characters that need no quoting.
fn workspace_path(key: &str, path: &str) -> anyhow::Result<()> {
    plain_path(key, path)?;
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        anyhow::bail!("{key}: {path:?} must be a path inside the workspace, relative to its root");
    }
    Ok(())
}

/// An absolute path in the image.
fn image_path(key: &str, path: &str) -> anyhow::Result<()> {
    plain_path(key, path)?;
    if !path.starts_with('/') || path == "/" || path.split('/').any(|part| part == "..") {
        anyhow::bail!("{key}: {path:?} must be an absolute path in the image, like /app");
    }
    Ok(())
}

fn plain_path(key: &str, path: &str) -> anyhow::Result<()> {
    let plain = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if !plain {
        anyhow::bail!("{key}: {path:?} may hold only letters, digits and . _ - /");
    }
    Ok(())
}

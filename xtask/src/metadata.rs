//! `[workspace.metadata.xtask]`: what the xtask builds and the budgets it holds it to.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The workspace's description of its service image.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Metadata {
    /// The Cargo package that holds the service.
    pub package: String,
    /// The binary the image runs.
    pub binary: String,
    /// The image's name, without a tag.
    pub image: String,
    /// The port the service listens on inside the container.
    pub port: u16,
    /// The liveness path.
    pub health_path: String,
    /// The readiness path.
    pub ready_path: String,
    /// Where the service keeps its data: the image declares a VOLUME there,
    /// and test containers mount a named volume on it.
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// The workspace version, from `[workspace.package]`.
    #[serde(skip)]
    pub version: String,
    /// The source repository's URL, from `[workspace.package]`.
    #[serde(skip)]
    pub repository: Option<String>,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub scan: ScanPolicy,
}

/// What `cargo xtask scan` fails on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all(deserialize = "kebab-case"), deny_unknown_fields, default)]
pub struct ScanPolicy {
    /// trivy's severities that gate (`UNKNOWN`, `LOW`, `MEDIUM`, `HIGH`, `CRITICAL`).
    pub severities: Vec<String>,
    /// Whether a finding with no fixed version gates; when not, it is shown only.
    pub gate_unfixed: bool,
    /// trivy's YAML ignore file, relative to the workspace root.
    pub ignore_file: String,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            severities: vec!["HIGH".to_owned(), "CRITICAL".to_owned()],
            gate_unfixed: false,
            ignore_file: ".trivyignore.yaml".to_owned(),
        }
    }
}

/// Limits `cargo xtask size-check` fails the build on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all(deserialize = "kebab-case"), deny_unknown_fields, default)]
#[allow(clippy::struct_field_names)] // the names are the manifest's keys
pub struct Budget {
    pub max_image_mb: f64,
    pub max_layers: usize,
    pub max_binary_mb: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_image_mb: 100.0,
            max_layers: 20,
            max_binary_mb: 20.0,
        }
    }
}

#[derive(Deserialize)]
struct Manifest {
    workspace: Workspace,
}

#[derive(Deserialize)]
struct Workspace {
    package: WorkspacePackage,
    metadata: WorkspaceMetadata,
}

#[derive(Deserialize)]
struct WorkspacePackage {
    version: String,
    repository: Option<String>,
}

#[derive(Deserialize)]
struct WorkspaceMetadata {
    xtask: Metadata,
}

fn default_data_dir() -> String {
    "/data".to_owned()
}

/// Where the image installs the service's binary, whatever its name: the
/// Dockerfile's exec-form ENTRYPOINT cannot take a build argument.
pub const SERVICE_PATH: &str = "/usr/local/bin/service";
/// Where the image installs the workspace's `healthcheck`, its HEALTHCHECK.
pub const HEALTHCHECK_PATH: &str = "/usr/local/bin/healthcheck";

impl Metadata {
    /// Reads the table from the workspace manifest under `root`.
    pub fn load(root: &Path) -> anyhow::Result<Metadata> {
        let path = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Metadata::parse(&text)
            .with_context(|| format!("{}: bad [workspace.metadata.xtask] table", path.display()))
    }

    fn parse(manifest: &str) -> anyhow::Result<Metadata> {
        let manifest: Manifest = toml::from_str(manifest)?;
        let mut metadata = manifest.workspace.metadata.xtask;
        metadata.version = manifest.workspace.package.version;
        metadata.repository = manifest.workspace.package.repository;
        Ok(metadata)
    }

    /// The tags `cargo xtask image` gives a build: `<image>:<version>` and
    /// `<image>:sha-<revision>`. The optimized build gets an `-optimized`
    /// suffix on both, so that the two builds of one revision can coexist.
    pub fn default_tags(&self, revision: &str, optimize: bool) -> Vec<String> {
        let suffix = if optimize { "-optimized" } else { "" };
        vec![
            format!("{}:{}{suffix}", self.image, self.version),
            format!("{}:sha-{revision}{suffix}", self.image),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This workspace's table, as written, whatever service it names: a
    /// team adopting the workspace changes no test.
    fn this_workspaces_table() -> (Metadata, toml::Table) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        let table = manifest["workspace"]["metadata"]["xtask"]
            .as_table()
            .unwrap()
            .clone();
        (Metadata::load(root).unwrap(), table)
    }

    #[test]
    fn reads_this_workspaces_table() {
        let (metadata, table) = this_workspaces_table();
        assert_eq!(metadata.package, table["package"].as_str().unwrap());
        assert_eq!(metadata.binary, table["binary"].as_str().unwrap());
        assert_eq!(metadata.image, table["image"].as_str().unwrap());
        assert_eq!(
            i64::from(metadata.port),
            table["port"].as_integer().unwrap()
        );
        assert!(metadata.budget.max_image_mb > 0.0);
        assert!(!metadata.version.is_empty());
    }

    #[test]
    fn default_tags_name_the_version_and_the_revision() {
        let (mut metadata, _) = this_workspaces_table();
        metadata.image = "api".into();
        metadata.version = "1.2.3".into();
        assert_eq!(
            metadata.default_tags("abc1234", false),
            ["api:1.2.3", "api:sha-abc1234"]
        );
        assert_eq!(
            metadata.default_tags("abc1234-dirty", true),
            ["api:1.2.3-optimized", "api:sha-abc1234-dirty-optimized"]
        );
    }

    #[test]
    fn budgets_default_when_the_table_leaves_them_out() {
        let manifest = r#"
            [workspace.package]
            version = "1.2.3"
            [workspace.metadata.xtask]
            package = "api"
            binary = "api"
            image = "api"
            port = 3000
            health-path = "/livez"
            ready-path = "/readyz"
        "#;
        let metadata = Metadata::parse(manifest).unwrap();
        assert_eq!(metadata.version, "1.2.3");
        assert!((metadata.budget.max_image_mb - 100.0).abs() < f64::EPSILON);
    }

    #[test]
    fn an_unknown_key_is_an_error_not_a_silent_default() {
        let manifest = r#"
            [workspace.package]
            version = "1.2.3"
            [workspace.metadata.xtask]
            package = "api"
            binary = "api"
            image = "api"
            port = 3000
            health-path = "/livez"
            ready-path = "/readyz"
            prot = 1
        "#;
        let error = Metadata::parse(manifest).unwrap_err();
        assert!(format!("{error:#}").contains("prot"), "{error:#}");
    }
}

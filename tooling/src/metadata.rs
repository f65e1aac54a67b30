//! `[workspace.metadata.xtask]`: what the xtask builds and the budgets it holds it to.

use std::collections::BTreeMap;
use std::path::Path;

mod validate;

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
    /// The file the table was read from (`ci` keys its verdicts on it).
    #[serde(skip)]
    pub table_path: std::path::PathBuf,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub scan: ScanPolicy,
    /// What `shutdown-test` holds in flight at SIGTERM.
    pub drain: Drain,
    /// The image's runtime base.
    #[serde(default)]
    pub runtime: Runtime,
    /// Debian packages whose files join the minimal runtime, for a service
    /// that needs them at run time: `ca-certificates` (its bundle, for TLS
    /// clients), `tzdata`, or any other. Each gets its dpkg record, so
    /// scanners see it. The distroless runtime has a fixed set instead.
    #[serde(default)]
    pub runtime_extras: Vec<String>,
    /// Debian packages the build stage needs besides a C toolchain
    /// (`libssl-dev`, `protobuf-compiler`, `cmake`, `clang`…), installed at
    /// the builder suite's versions. They never reach the runtime.
    #[serde(default)]
    pub builder_packages: Vec<String>,
    /// Variables set for cargo in the build stage, cook and build alike
    /// (`SQLX_OFFLINE = "true"`). Not in the runtime image.
    #[serde(default)]
    pub build_env: BTreeMap<String, String>,
    /// Files and folders of the workspace the build reads besides the
    /// packages' own (`.sqlx`, `migrations`, `include_str!` targets).
    #[serde(default)]
    pub build_context: Vec<String>,
    /// The repository's own Dockerfile, relative to its root, used instead of
    /// the built-in one; it must keep the built-in one's contract
    /// (`build_context::CONTRACT`). A Dockerfile the table does not name
    /// is never read.
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// Files and folders of the workspace copied into the image, owned by
    /// root and read-only to the service: `{ from = "configuration", to =
    /// "/app/configuration" }`.
    #[serde(default)]
    pub runtime_files: Vec<RuntimeFile>,
    /// The service's working directory in the image; the runtime base's
    /// when unset.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Fixed variables of the image (`APP_ENVIRONMENT = "production"`).
    /// Never a secret: those are passed at run time.
    #[serde(default)]
    pub runtime_env: BTreeMap<String, String>,
    /// What the service needs running to start (`[…services.db]`, `kind =
    /// "postgres"`): every command that starts the service starts these
    /// first, on a network of their own, by their names.
    #[serde(default)]
    pub services: BTreeMap<String, BackingService>,
    /// The service's settings in every proof that starts it, never baked
    /// into the image: `{db.host}`, `{db.port}`, `{db.user}`,
    /// `{db.password}`, `{db.database}` and `{db.url}` name a backing
    /// service's address and throwaway credentials.
    #[serde(default)]
    pub test_env: BTreeMap<String, String>,
}

/// A service the service needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BackingService {
    pub kind: BackingKind,
    /// PostgreSQL: the database the service uses (default `app`).
    #[serde(default)]
    pub database: Option<String>,
    /// PostgreSQL: a folder of the workspace whose `*.sql` files are
    /// applied in name order before the service starts, for a service that
    /// does not migrate on its own.
    #[serde(default)]
    pub migrations: Option<String>,
}

/// The backing services the proofs can run: from Debian's packages, so
/// that they run offline too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackingKind {
    /// PostgreSQL 17 (Debian 13's `postgresql-17`).
    Postgres,
    /// Redis (Debian 13's `redis-server`).
    Redis,
}

/// A file or folder of the workspace that the image carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    /// Relative to the workspace root.
    pub from: String,
    /// An absolute path in the image.
    pub to: String,
}

/// What the service runs on in the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// distroless cc on Debian 13 (or its offline stand-in): a fixed set of
    /// packages.
    #[default]
    Distroless,
    /// The binaries' own ELF closure, with the dpkg records of the packages
    /// it came from, and nothing else.
    Minimal,
}

/// The traffic `shutdown-test` sends through a drain, and what it reads
/// back after a restart: the service's own request, not the xtask's guess.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Drain {
    /// `POST` (a write, sent slowly, its body arriving after the signal) or
    /// `GET` (a slow read: the path must take a while to answer).
    pub method: DrainMethod,
    pub path: String,
    /// POST only.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// POST only: the body, where `{tag}` becomes a unique tag and
    /// `{padding}` filler that makes a slow upload long.
    #[serde(default)]
    pub body: String,
    /// A JSON pointer to the id in a write's answer (`/id`). With
    /// `read-back`, every write acknowledged must be there after a restart;
    /// without, durability is not applicable.
    pub id: Option<String>,
    /// Where a written item is read back, `{id}` replaced.
    pub read_back: Option<String>,
    /// Whether readiness turns 503 during the drain; `false` makes that check
    /// not applicable.
    #[serde(default = "yes")]
    pub readiness: bool,
    /// The variable that sets the service's drain deadline; `""` when it has
    /// none, which makes the deadline check not applicable.
    #[serde(default = "default_timeout_env")]
    pub shutdown_timeout_env: String,
    /// The variable that delays the drain after the signal (not ready, still
    /// serving); `""` when it has none.
    #[serde(default = "default_delay_env")]
    pub shutdown_delay_env: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum DrainMethod {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

impl Drain {
    /// Whether acknowledged writes can be looked for after a restart.
    pub fn durable(&self) -> bool {
        self.method == DrainMethod::Post && self.id.is_some() && self.read_back.is_some()
    }

    /// A write's body with its tag and filler.
    pub fn body(&self, tag: &str, padding: &str) -> String {
        self.body
            .replace("{tag}", tag)
            .replace("{padding}", padding)
    }

    /// Where the write with `id` is read back.
    pub fn read_back_path(&self, id: &str) -> Option<String> {
        self.read_back.as_ref().map(|path| path.replace("{id}", id))
    }

    /// The id in a write's JSON answer, a string or a number.
    pub fn id_in(&self, answer: &serde_json::Value) -> Option<String> {
        match answer.pointer(self.id.as_deref()?)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !self.path.starts_with('/') {
            anyhow::bail!("drain.path {:?} must start with /", self.path);
        }
        if self.method == DrainMethod::Post && !self.body.contains("{tag}") {
            anyhow::bail!("drain.body must contain {{tag}}, so each write can be told apart");
        }
        if let Some(pointer) = &self.id
            && !pointer.starts_with('/')
        {
            anyhow::bail!("drain.id {pointer:?} must be a JSON pointer, like /id");
        }
        if let Some(path) = &self.read_back
            && !path.contains("{id}")
        {
            anyhow::bail!("drain.read-back {path:?} must contain {{id}}");
        }
        Ok(())
    }
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

fn yes() -> bool {
    true
}

fn default_timeout_env() -> String {
    "SHUTDOWN_TIMEOUT".to_owned()
}

fn default_delay_env() -> String {
    "SHUTDOWN_DELAY".to_owned()
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

/// The file a repository adopted with `cargo xtask init` keeps its table
/// in, beside its root `Cargo.toml`, which is then left as it was.
pub const TABLE_FILE: &str = "xtask.toml";

impl Metadata {
    /// Reads the table under `root`: from `xtask.toml` when there is one,
    /// else from `[workspace.metadata.xtask]` in `Cargo.toml`.
    pub fn load(root: &Path) -> anyhow::Result<Metadata> {
        let file = root.join(TABLE_FILE);
        if file.is_file() {
            return Metadata::load_from(root, &file);
        }
        let path = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut metadata = Metadata::parse(&text)
            .with_context(|| format!("{}: bad [workspace.metadata.xtask] table", path.display()))?;
        metadata.table_path = path;
        Ok(metadata)
    }

    /// Reads the table from `table`, a TOML file holding a
    /// `[workspace.metadata.xtask]` table as `Cargo.toml` would; the version
    /// still comes from the root manifest under `root`.
    pub fn load_from(root: &Path, table: &Path) -> anyhow::Result<Metadata> {
        let path = root.join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let text = std::fs::read_to_string(table)
            .with_context(|| format!("cannot read the manifest table {}", table.display()))?;
        let mut metadata = Metadata::parse_with(&manifest, &text).with_context(|| {
            format!("{}: bad [workspace.metadata.xtask] table", table.display())
        })?;
        metadata.table_path = table.to_path_buf();
        Ok(metadata)
    }

    fn parse_with(manifest: &str, table: &str) -> anyhow::Result<Metadata> {
        #[derive(Deserialize)]
        struct TableFile {
            workspace: TableWorkspace,
        }
        #[derive(Deserialize)]
        struct TableWorkspace {
            metadata: WorkspaceMetadata,
        }
        let mut metadata = toml::from_str::<TableFile>(table)
            .map_err(explain)?
            .workspace
            .metadata
            .xtask;
        metadata.version = version(manifest)?;
        metadata.validate()?;
        Ok(metadata)
    }

    fn parse(manifest: &str) -> anyhow::Result<Metadata> {
        Metadata::parse_with(manifest, manifest)
    }

    /// The tags `cargo xtask image` gives a build: `<image>:<version>` and
    /// `<image>:sha-<revision>`, with the build's suffix (`-optimized`,
    /// `-minimal`…) on both, so that the builds of one revision coexist.
    pub fn default_tags(&self, revision: &str, suffix: &str) -> Vec<String> {
        vec![
            format!("{}:{}{suffix}", self.image, self.version),
            format!("{}:sha-{revision}{suffix}", self.image),
        ]
    }
}

/// Whether the root manifest under `root` holds the table at `keys`
/// (`["profile", "size"]`); `false` when it cannot be read.
pub fn root_manifest_has(root: &Path, keys: &[&str]) -> bool {
    std::fs::read_to_string(root.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|manifest| {
            let mut value = Some(&toml::Value::Table(manifest));
            for key in keys {
                value = value.and_then(|v| v.get(key));
            }
            value.is_some()
        })
}

/// The version images are tagged with: the root manifest's
/// `[workspace.package]` version, or a single crate's `[package]` one.
fn version(manifest: &str) -> anyhow::Result<String> {
    let manifest: toml::Table = toml::from_str(manifest)?;
    let version_in = |table: &str| {
        manifest
            .get(table)
            .and_then(|t| {
                if table == "workspace" {
                    t.get("package")
                } else {
                    Some(t)
                }
            })
            .and_then(|package| package.get("version"))
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
    };
    version_in("workspace")
        .or_else(|| version_in("package"))
        .context("the root Cargo.toml gives no version to tag images with: set [workspace.package] version, or the single crate's [package] version")
}

/// A missing key says what to write, not only that it is missing.
fn explain(error: toml::de::Error) -> anyhow::Error {
    let message = error.message();
    if message.contains("missing field `drain`") {
        anyhow::anyhow!(
            "{error}\nadd a [workspace.metadata.xtask.drain] table: the request shutdown-test holds in flight at SIGTERM, either a write whose body trickles in (method = \"POST\", path = \"/items\", body = '{{\"name\":\"{{tag}}{{padding}}\"}}') or a read the service answers slowly (method = \"GET\", path = \"/slow\"); docs/adopting.md has an example"
        )
    } else {
        error.into()
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
            metadata.default_tags("abc1234", ""),
            ["api:1.2.3", "api:sha-abc1234"]
        );
        assert_eq!(
            metadata.default_tags("abc1234-dirty", "-optimized"),
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
            drain = { method = "GET", path = "/slow" }
        "#;
        let metadata = Metadata::parse(manifest).unwrap();
        assert_eq!(metadata.version, "1.2.3");
        assert!((metadata.budget.max_image_mb - 100.0).abs() < f64::EPSILON);
    }

    const API_TABLE: &str = r#"
        [workspace.metadata.xtask]
        package = "api"
        binary = "api"
        image = "api"
        port = 3000
        health-path = "/livez"
        ready-path = "/readyz"
        drain = { method = "GET", path = "/slow?ms=2000", readiness = false, shutdown-timeout-env = "" }
    "#;

    #[test]
    fn a_table_file_names_another_service_with_the_workspaces_version() {
        let workspace = "[workspace.package]\nversion = \"1.2.3\"\n";
        let metadata = Metadata::parse_with(workspace, API_TABLE).unwrap();
        assert_eq!(metadata.package, "api");
        assert_eq!(metadata.version, "1.2.3");
        assert_eq!(metadata.drain.method, DrainMethod::Get);
        assert!(!metadata.drain.readiness);
        assert!(metadata.drain.shutdown_timeout_env.is_empty());
        assert_eq!(metadata.drain.shutdown_delay_env, "SHUTDOWN_DELAY");
        assert!(!metadata.drain.durable());
    }

    #[test]
    fn this_workspaces_drain_writes_and_reads_back_notes() {
        let (metadata, _) = this_workspaces_table();
        let drain = &metadata.drain;
        assert!(drain.durable());
        let body = drain.body("t-1", "xx");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["title"], "t-1");
        assert_eq!(
            drain.id_in(&serde_json::json!({"id": 7})).as_deref(),
            Some("7")
        );
        assert!(drain.read_back_path("7").unwrap().ends_with("/7"));
    }

    #[test]
    fn a_drain_that_cannot_be_told_apart_or_read_back_is_refused() {
        let workspace = "[workspace.package]\nversion = \"1\"\n";
        for (drain, says) in [
            (r#"{ method = "POST", path = "/w", body = "{}" }"#, "{tag}"),
            (r#"{ method = "GET", path = "w" }"#, "start with /"),
            (
                r#"{ method = "GET", path = "/w", id = "id" }"#,
                "JSON pointer",
            ),
            (
                r#"{ method = "GET", path = "/w", read-back = "/w" }"#,
                "{id}",
            ),
            (r#"{ method = "PATCH", path = "/w" }"#, "PATCH"),
        ] {
            let table = API_TABLE.replace(
                r#"{ method = "GET", path = "/slow?ms=2000", readiness = false, shutdown-timeout-env = "" }"#,
                drain,
            );
            let error = format!("{:#}", Metadata::parse_with(workspace, &table).unwrap_err());
            assert!(error.contains(says), "{drain}: {error}");
        }
    }

    #[test]
    fn runtime_extras_must_be_debian_package_names() {
        let workspace = "[workspace.package]\nversion = \"1\"\n";
        let with = |extras: &str| {
            API_TABLE.replace(
                "[workspace.metadata.xtask]\n",
                &format!("[workspace.metadata.xtask]\nruntime-extras = {extras}\n"),
            )
        };
        let metadata = Metadata::parse_with(
            workspace,
            &with(r#"["ca-certificates", "tzdata", "libssl3t64"]"#),
        )
        .unwrap();
        assert_eq!(
            metadata.runtime_extras,
            ["ca-certificates", "tzdata", "libssl3t64"]
        );
        for bad in [r#"["tzdata; rm -rf /"]"#, r#"["TZdata"]"#, r#"["-x"]"#] {
            let error = format!(
                "{:#}",
                Metadata::parse_with(workspace, &with(bad)).unwrap_err()
            );
            assert!(
                error.contains("not a Debian package name"),
                "{bad}: {error}"
            );
        }
    }

    /// `API_TABLE` with `lines` added to its table.
    fn api_table_with(lines: &str) -> String {
        API_TABLE.replace(
            "[workspace.metadata.xtask]\n",
            &format!("[workspace.metadata.xtask]\n{lines}\n"),
        )
    }

    fn refusal(lines: &str) -> String {
        let workspace = "[workspace.package]\nversion = \"1\"\n";
        match Metadata::parse_with(workspace, &api_table_with(lines)) {
            Ok(_) => panic!("accepted: {lines}"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn a_real_services_build_and_run_time_settings_are_read() {
        let workspace = "[workspace.package]\nversion = \"1\"\n";
        let table = api_table_with(
            r#"builder-packages = ["libssl-dev", "protobuf-compiler"]
build-env = { SQLX_OFFLINE = "true" }
build-context = [".sqlx", "migrations"]
runtime-files = [{ from = "configuration", to = "/app/configuration" }]
workdir = "/app"
runtime-env = { APP_ENVIRONMENT = "production" }
services.db = { kind = "postgres", database = "newsletter", migrations = "migrations" }
services.cache = { kind = "redis" }
test-env = { APP_DATABASE__HOST = "{db.host}", APP_REDIS_URI = "{cache.url}" }"#,
        );
        let metadata = Metadata::parse_with(workspace, &table).unwrap();
        assert_eq!(
            metadata.builder_packages,
            ["libssl-dev", "protobuf-compiler"]
        );
        assert_eq!(metadata.build_env["SQLX_OFFLINE"], "true");
        assert_eq!(metadata.runtime_files[0].to, "/app/configuration");
        assert_eq!(metadata.workdir.as_deref(), Some("/app"));
        assert_eq!(metadata.services["db"].kind, BackingKind::Postgres);
        assert_eq!(metadata.services["cache"].kind, BackingKind::Redis);
        assert_eq!(metadata.test_env["APP_REDIS_URI"], "{cache.url}");
    }

    #[test]
    fn secrets_are_never_baked_in() {
        for (lines, says) in [
            (r#"runtime-env = { DB_PASSWORD = "hunter2" }"#, "its name"),
            (r#"runtime-env = { API_TOKEN = "x" }"#, "its name"),
            (
                r#"runtime-env = { DATABASE_URL = "postgres://app:hunter2@db/app" }"#,
                "a URL with a password",
            ),
            (
                r#"build-env = { KEY = "-----BEGIN PRIVATE KEY-----" }"#,
                "a PEM key",
            ),
        ] {
            let error = refusal(lines);
            assert!(error.contains("looks like a secret"), "{lines}: {error}");
            assert!(error.contains(says), "{lines}: {error}");
            assert!(error.contains("pass it at run time"), "{lines}: {error}");
        }
    }

    #[test]
    fn bad_values_are_named_before_anything_runs() {
        for (lines, says) in [
            (r#"image = "Bad Name!""#, "not an image name"),
            (
                r#"health-path = "health""#,
                "health-path \"health\" must start with /",
            ),
            (
                r#"runtime-files = [{ from = "../etc", to = "/app" }]"#,
                "inside the workspace",
            ),
            (
                r#"runtime-files = [{ from = "conf", to = "app" }]"#,
                "absolute path",
            ),
            (r#"workdir = "/app dir""#, "letters, digits"),
            (r#"build-env = { "1X" = "y" }"#, "not a variable name"),
            (
                r#"builder-packages = ["libssl-dev; rm"]"#,
                "not a Debian package name",
            ),
            (r#"services.DB = { kind = "postgres" }"#, "host name"),
            (
                r#"services.cache = { kind = "redis", database = "x" }"#,
                "PostgreSQL's",
            ),
            (r#"test-env = { URL = "{db.url}" }"#, "{db.url}"),
        ] {
            let table = if lines.starts_with("image") || lines.starts_with("health-path") {
                let key = lines.split(' ').next().unwrap();
                let original = API_TABLE
                    .lines()
                    .find(|l| l.trim_start().starts_with(&format!("{key} ")))
                    .unwrap()
                    .trim()
                    .to_owned();
                API_TABLE.replace(&original, lines)
            } else {
                api_table_with(lines)
            };
            let workspace = "[workspace.package]\nversion = \"1\"\n";
            let error = format!(
                "{:#}",
                Metadata::parse_with(workspace, &table).expect_err(lines)
            );
            assert!(error.contains(says), "{lines}: {error}");
        }
    }

    #[test]
    fn a_table_without_a_drain_says_what_to_write() {
        let workspace = "[workspace.package]\nversion = \"1\"\n";
        let table = API_TABLE
            .lines()
            .filter(|l| !l.contains("drain"))
            .collect::<Vec<_>>()
            .join("\n");
        let error = format!("{:#}", Metadata::parse_with(workspace, &table).unwrap_err());
        assert!(error.contains("missing field `drain`"), "{error}");
        assert!(
            error.contains("add a [workspace.metadata.xtask.drain] table"),
            "{error}"
        );
        assert!(
            error.contains(r#"method = "GET", path = "/slow""#),
            "{error}"
        );
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
            drain = { method = "GET", path = "/slow" }
            prot = 1
        "#;
        let error = Metadata::parse(manifest).unwrap_err();
        assert!(format!("{error:#}").contains("prot"), "{error:#}");
    }
}

//! `cargo xtask init <path>`: adopts an existing repository. It writes a thin
//! `xtask` crate that depends on this one, the `cargo xtask` alias, the
//! table, a GitHub workflow and, when there is none, `deny.toml`.
//!
//! The xtask is a workspace of its own (`[workspace]` in its manifest), so
//! the repository's `Cargo.toml`, `Cargo.lock` and lints stay as they were,
//! and a single-crate repository needs no `[workspace]`. A file that is
//! there already is merged (the alias into `.cargo/config.toml`) or left
//! alone with a message, never overwritten: a second run changes nothing.

mod deny;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use crate::cargo_metadata::CargoMetadata;
use crate::checks::{Check, Verdict};
use crate::flags;
use crate::metadata::{self, TABLE_FILE};

/// The thin crate's `main`: this repository's own, which is the same.
const MAIN_RS: &str = include_str!("../assets/xtask-main.rs");
const TABLE: &str = include_str!("init/table.toml");
const WORKFLOW: &str = include_str!("init/workflow.yml");
/// Where the adopted repository's alias runs the xtask: a workspace of its
/// own, built into the repository's `target/`.
pub const ALIAS: &str = "run --manifest-path xtask/Cargo.toml --target-dir target/xtask-build --";
const WORKFLOW_PATH: &str = ".github/workflows/image.yml";

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Created,
    Merged,
    Unchanged,
    LeftAlone,
}

#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub path: String,
    pub outcome: Outcome,
    pub note: String,
    pub lines: usize,
}

impl flags::Init {
    pub(crate) fn run(self, sh: &Shell) -> anyhow::Result<Verdict> {
        let root = std::env::current_dir()
            .context("cannot read the current directory")?
            .join(&self.path);
        if !root.join("Cargo.toml").is_file() {
            bail!(
                "{} has no Cargo.toml: init adopts a Rust repository at its root",
                root.display()
            );
        }
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", root.display()))?;
        let (package, binary) = self.service(sh, &root)?;
        let settings = self.settings(&package, &binary);
        eprintln!("init: adopting {}", root.display());
        for (what, value, flag) in &settings {
            eprintln!("  {what:<13} {value:<28} {flag}");
        }
        let tooling = self.tooling()?;
        eprintln!("  {:<13} {tooling}", "tooling");
        // Read before anything is written: the repository as it was.
        let deny = deny::for_repository(sh, &root)?;

        let mut written = vec![
            place(&root, "xtask/Cargo.toml", &xtask_manifest(&tooling))?,
            place(&root, "xtask/src/main.rs", MAIN_RS)?,
            merge_alias(&root)?,
            if metadata::root_manifest_has(&root, &["workspace", "metadata", "xtask"]) {
                Written {
                    path: TABLE_FILE.into(),
                    outcome: Outcome::LeftAlone,
                    note: "not written: Cargo.toml has [workspace.metadata.xtask], which it would shadow".into(),
                    lines: 0,
                }
            } else {
                place(&root, TABLE_FILE, &self.table(&package, &binary))?
            },
            place(&root, WORKFLOW_PATH, WORKFLOW)?,
        ];
        // Written for the repository's own dependencies; one of its own is
        // left alone.
        written.push(place(&root, "deny.toml", &deny)?);
        let loads = match check_loads(sh, &root) {
            Ok(()) => Check::judge(
                "the repository and its xtask load",
                true,
                "cargo metadata reads both",
                "cargo metadata reads Cargo.toml and xtask/Cargo.toml",
            ),
            Err(error) => Check::broken(
                "the repository and its xtask load",
                "cargo metadata reads Cargo.toml and xtask/Cargo.toml",
                &error,
            ),
        };

        let mut text = String::new();
        for file in &written {
            let outcome = match file.outcome {
                Outcome::Created => "created",
                Outcome::Merged => "merged",
                Outcome::Unchanged => "unchanged",
                Outcome::LeftAlone => "left alone",
            };
            let _ = writeln!(text, "{outcome:<11} {:<28} {}", file.path, file.note);
        }
        if matches!(written[0].outcome, Outcome::Created | Outcome::Unchanged) {
            text.push_str(
                "unchanged   Cargo.toml, Cargo.lock       the xtask is a workspace of its own; it keeps xtask/Cargo.lock, written at its first build\n",
            );
        }
        text.push_str("\nnext: cargo xtask image --optimize, then cargo xtask shutdown-test (run from the repository's root)\n");
        let changed = written
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Created | Outcome::Merged))
            .count();
        Ok(Verdict {
            text,
            headline: format!("{changed} of {} files written", written.len()),
            checks: vec![loads],
            ..Verdict::new("init", root.display().to_string())
                .with_details(serde_json::json!({ "files": written }))
        })
    }

    /// The package and binary the image runs: given, or the only ones.
    fn service(&self, sh: &Shell, root: &Path) -> anyhow::Result<(String, String)> {
        let manifest = root.join("Cargo.toml");
        let json = crate::process::read(xshell::cmd!(
            sh,
            "cargo metadata --format-version 1 --no-deps --offline --manifest-path {manifest}"
        ))
        .context("cannot read the repository with `cargo metadata`")?;
        let metadata = CargoMetadata::parse(&json)?;
        if metadata.workspace_root != root {
            bail!(
                "{} is inside the workspace at {}: run init on the workspace's root",
                root.display(),
                metadata.workspace_root.display()
            );
        }
        let services: Vec<(&str, Vec<&str>)> = metadata
            .members()
            .filter(|p| p.name != "xtask")
            .map(|p| (p.name.as_str(), p.binaries().collect()))
            .filter(|(_, bins): &(&str, Vec<&str>)| !bins.is_empty())
            .collect();
        let names = || {
            services
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (package, bins) = match &self.package {
            Some(name) => services
                .iter()
                .find(|(package, _)| package == name)
                .with_context(|| {
                    format!(
                        "--package {name}: no such package with a binary; those with one: {}",
                        names()
                    )
                })?,
            None => match services.as_slice() {
                [only] => only,
                [] => bail!("no package of {} has a binary to run", root.display()),
                _ => bail!(
                    "several packages have a binary: {}; choose one with --package",
                    names()
                ),
            },
        };
        let binary = match (&self.bin, bins.as_slice()) {
            (Some(bin), _) if bins.contains(&bin.as_str()) => bin.clone(),
            (Some(bin), _) => bail!(
                "--bin {bin}: package {package} has no such binary; it has {}",
                bins.join(", ")
            ),
            (None, [only]) => (*only).to_owned(),
            (None, _) => bail!(
                "package {package} has several binaries: {}; choose one with --bin",
                bins.join(", ")
            ),
        };
        Ok(((*package).to_owned(), binary))
    }

    /// What the table says, with where each value came from, for the log.
    fn settings(&self, package: &str, binary: &str) -> Vec<(&'static str, String, &'static str)> {
        let given = |set: bool| if set { "(given)" } else { "(default)" };
        vec![
            ("package", package.to_owned(), given(self.package.is_some())),
            ("binary", binary.to_owned(), given(self.bin.is_some())),
            (
                "image",
                self.image(binary),
                "(--image; default: the binary)",
            ),
            ("port", self.port.to_string(), "(--port; default 8080)"),
            (
                "health-path",
                self.health_path.clone(),
                "(--health-path; default /health)",
            ),
            (
                "ready-path",
                self.ready_path().to_owned(),
                "(--ready-path; default: the health path)",
            ),
            (
                "drain",
                format!("{} {}", self.drain_method, self.drain_path()),
                "(--drain-method, --drain-path; default GET of the health path)",
            ),
        ]
    }

    fn image(&self, binary: &str) -> String {
        self.image.clone().unwrap_or_else(|| binary.to_owned())
    }

    fn ready_path(&self) -> &str {
        self.ready_path.as_deref().unwrap_or(&self.health_path)
    }

    fn drain_path(&self) -> &str {
        self.drain_path.as_deref().unwrap_or(&self.health_path)
    }

    fn table(&self, package: &str, binary: &str) -> String {
        let mut table = TABLE
            .replace("@package@", package)
            .replace("@binary@", binary)
            .replace("@image@", &self.image(binary))
            .replace("@port@", &self.port.to_string())
            .replace("@health-path@", &self.health_path)
            .replace("@ready-path@", self.ready_path())
            .replace("@drain-method@", &self.drain_method.to_string())
            .replace("@drain-path@", self.drain_path());
        if self.drain_method == flags::InitDrainMethod::Post {
            // A write needs a body that tells the writes apart.
            table = table.replacen("# body = ", "body = ", 1);
        }
        table
    }

    /// The dependency line's source: a path, a git repository, or this
    /// crate's own repository.
    fn tooling(&self) -> anyhow::Result<String> {
        if let Some(path) = &self.tooling_path {
            let path = std::env::current_dir()?.join(path);
            let path = path
                .canonicalize()
                .with_context(|| format!("--tooling-path: cannot resolve {}", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!("--tooling-path: {} has no Cargo.toml", path.display());
            }
            return Ok(format!("path = {:?}", path.display().to_string()));
        }
        let url = self
            .tooling_git
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_REPOSITORY").to_owned());
        let mut source = format!("git = {url:?}");
        if let Some(rev) = &self.tooling_rev {
            let _ = write!(source, ", rev = {rev:?}");
        }
        Ok(source)
    }
}

impl std::fmt::Display for flags::InitDrainMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            flags::InitDrainMethod::Get => "GET",
            flags::InitDrainMethod::Post => "POST",
        })
    }
}

fn xtask_manifest(tooling: &str) -> String {
    format!(
        r#"# `cargo xtask`: this repository's service as a container image, built,
# measured, scanned and proved by the `server-image` crate. Written by
# `cargo xtask init`; yours to edit.
#
# A workspace of its own (the empty [workspace] below): the repository's
# Cargo.lock, members and lints stay as they were. Update the tooling with
# `cargo update -p server-image --manifest-path xtask/Cargo.toml`.
[package]
name = "xtask"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
server-image = {{ {tooling} }}

[workspace]
"#
    )
}

/// Writes `text` at `relative` unless a file is there: the same text is
/// unchanged, another is left alone.
fn place(root: &Path, relative: &str, text: &str) -> anyhow::Result<Written> {
    let path = root.join(relative);
    let lines = text.lines().count();
    let (outcome, note) = match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => (Outcome::Unchanged, String::new()),
        Ok(_) => (
            Outcome::LeftAlone,
            "there already, with other content: compare it with what init writes".to_owned(),
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            (Outcome::Created, format!("{lines} lines"))
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    Ok(Written {
        path: relative.to_owned(),
        outcome,
        note,
        lines,
    })
}

/// The `xtask` alias, added to `.cargo/config.toml` beside what is there.
fn merge_alias(root: &Path) -> anyhow::Result<Written> {
    let relative = ".cargo/config.toml";
    let path = root.join(relative);
    let line = format!("xtask = {ALIAS:?}");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return place(root, relative, &format!("[alias]\n{line}\n"));
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let config: toml::Table = existing
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let written = |outcome, note: &str| Written {
        path: relative.to_owned(),
        outcome,
        note: note.to_owned(),
        lines: 0,
    };
    match config.get("alias").and_then(|alias| alias.get("xtask")) {
        Some(toml::Value::String(alias)) if alias == ALIAS => {
            return Ok(written(Outcome::Unchanged, ""));
        }
        Some(other) => {
            return Ok(written(
                Outcome::LeftAlone,
                &format!(
                    "its alias xtask is {}; the adopted xtask needs {ALIAS:?}",
                    other.as_str().unwrap_or("not a string")
                ),
            ));
        }
        None => {}
    }
    // After a `[alias]` header when there is one, else a table of its own.
    let merged = if let Some(at) = existing.lines().position(|l| l.trim() == "[alias]") {
        let mut lines: Vec<&str> = existing.lines().collect();
        lines.insert(at + 1, &line);
        lines.join("\n") + "\n"
    } else {
        let separator = if existing.ends_with('\n') || existing.is_empty() {
            ""
        } else {
            "\n"
        };
        format!("{existing}{separator}\n[alias]\n{line}\n")
    };
    if merged.parse::<toml::Table>().is_err() {
        return Ok(written(
            Outcome::LeftAlone,
            &format!("cannot add the alias beside its own settings; add `{line}` under [alias]"),
        ));
    }
    std::fs::write(&path, merged).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written(
        Outcome::Merged,
        "[alias] xtask added, its own settings kept",
    ))
}

/// The repository must still load, and the xtask as a workspace of its
/// own: a `[workspace] members` glob that takes in `xtask/` or `.cargo/`
/// breaks both, and says so here, with the fix.
fn check_loads(sh: &Shell, root: &Path) -> anyhow::Result<()> {
    for manifest in [root.join("Cargo.toml"), root.join("xtask/Cargo.toml")] {
        crate::process::read(xshell::cmd!(
            sh,
            "cargo metadata --format-version 1 --no-deps --offline --manifest-path {manifest}"
        ))
        .with_context(|| {
            format!(
                "{} does not load now; if the repository's [workspace] members glob takes in xtask/ or .cargo/, add them to its `exclude`",
                manifest.display()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Metadata;

    fn init() -> flags::Init {
        flags::Init {
            path: ".".into(),
            package: None,
            bin: None,
            image: None,
            port: 3000,
            health_path: "/livez".into(),
            ready_path: None,
            drain_method: flags::InitDrainMethod::Get,
            drain_path: Some("/slow?ms=3000".into()),
            tooling_path: None,
            tooling_git: None,
            tooling_rev: None,
        }
    }

    fn load(manifest: &str, table: &str) -> anyhow::Result<Metadata> {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        std::fs::write(dir.join(TABLE_FILE), table).unwrap();
        Metadata::load(&dir)
    }

    const SINGLE_CRATE: &str =
        "[package]\nname = \"svc\"\nversion = \"1.2.3\"\nedition = \"2024\"\n";

    #[test]
    fn the_table_loads_as_written_for_a_single_crate() {
        let metadata = load(SINGLE_CRATE, &init().table("svc", "svc")).unwrap();
        assert_eq!(metadata.package, "svc");
        assert_eq!(metadata.port, 3000);
        assert_eq!(metadata.ready_path, "/livez", "the health path by default");
        assert_eq!(metadata.drain.path, "/slow?ms=3000");
        assert_eq!(metadata.version, "1.2.3");
    }

    /// Every commented key is a real one: uncommented, the table still
    /// loads, and the schema refuses unknown keys.
    #[test]
    fn every_commented_key_is_one_the_table_takes() {
        let mut args = init();
        args.drain_method = flags::InitDrainMethod::Post;
        let table = args.table("svc", "svc");
        let uncommented: String = table
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(key, _)| {
                            key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                        }) =>
                {
                    rest.to_owned()
                }
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            uncommented.contains("\nworkdir = \"/app\""),
            "{uncommented}"
        );
        let metadata = load(SINGLE_CRATE, &uncommented).unwrap();
        assert_eq!(metadata.dockerfile.as_deref(), Some("Dockerfile"));
        assert_eq!(metadata.services.len(), 1);
        assert!(metadata.drain.durable());
    }

    #[test]
    fn the_alias_joins_a_config_of_the_repositorys_own_and_a_second_run_keeps_it() {
        let scratch = crate::testing::scratch();
        let root = scratch.path().to_path_buf();
        std::fs::create_dir_all(root.join(".cargo")).unwrap();
        let own = "[build]\nrustflags = [\"--cfg\", \"mine\"]\n\n[alias]\nb = \"build\"\n";
        std::fs::write(root.join(".cargo/config.toml"), own).unwrap();
        assert_eq!(merge_alias(&root).unwrap().outcome, Outcome::Merged);
        let merged = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
        let config: toml::Table = merged.parse().unwrap();
        assert_eq!(config["alias"]["xtask"].as_str(), Some(ALIAS));
        assert_eq!(config["alias"]["b"].as_str(), Some("build"));
        assert_eq!(config["build"]["rustflags"][1].as_str(), Some("mine"));
        assert_eq!(merge_alias(&root).unwrap().outcome, Outcome::Unchanged);
        assert_eq!(
            std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap(),
            merged
        );
        std::fs::write(
            root.join(".cargo/config.toml"),
            "[alias]\nxtask = \"run -p xtask --\"\n",
        )
        .unwrap();
        assert_eq!(merge_alias(&root).unwrap().outcome, Outcome::LeftAlone);
    }

    /// A workspace of two services: init names both and takes the one
    /// asked for; a package of two binaries, the same with `--bin`.
    #[test]
    fn several_services_are_listed_and_chosen_with_flags() {
        let scratch = crate::testing::scratch();
        let root = scratch.path().to_path_buf();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"api\", \"worker\", \"model\"]\nresolver = \"3\"\n",
        );
        for name in ["api", "worker", "model"] {
            write(
                &format!("{name}/Cargo.toml"),
                &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n"),
            );
        }
        write("api/src/main.rs", "fn main() {}");
        write("worker/src/main.rs", "fn main() {}");
        write("worker/src/bin/cleanup.rs", "fn main() {}");
        write("model/src/lib.rs", "");
        let sh = Shell::new().unwrap();
        let root = root.canonicalize().unwrap();
        let mut args = init();
        let error = args.service(&sh, &root).unwrap_err().to_string();
        assert!(
            error.contains("several packages have a binary: api, worker"),
            "{error}"
        );
        args.package = Some("api".into());
        assert_eq!(
            args.service(&sh, &root).unwrap(),
            ("api".into(), "api".into())
        );
        args.package = Some("model".into());
        let error = args.service(&sh, &root).unwrap_err().to_string();
        assert!(error.contains("those with one: api, worker"), "{error}");
        args.package = Some("worker".into());
        let error = args.service(&sh, &root).unwrap_err().to_string();
        assert!(error.contains("several binaries"), "{error}");
        args.bin = Some("cleanup".into());
        assert_eq!(
            args.service(&sh, &root).unwrap(),
            ("worker".into(), "cleanup".into())
        );
    }

    #[test]
    fn a_file_with_other_content_is_left_alone() {
        let scratch = crate::testing::scratch();
        let root = scratch.path().to_path_buf();
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(
            place(&root, "a.txt", "one\n").unwrap().outcome,
            Outcome::Created
        );
        assert_eq!(
            place(&root, "a.txt", "one\n").unwrap().outcome,
            Outcome::Unchanged
        );
        assert_eq!(
            place(&root, "a.txt", "two\n").unwrap().outcome,
            Outcome::LeftAlone
        );
        assert_eq!(
            std::fs::read_to_string(root.join("a.txt")).unwrap(),
            "one\n"
        );
    }
}

//! The build context, worked out from `cargo metadata` rather than kept by
//! hand: the workspace's manifests and lock file, and the sources of the
//! service's package and its path dependencies, plus the image's own tools
//! ([`bundled`]). Nothing else (not the xtask, not tests, not `target/`), so
//! a change elsewhere never rebuilds the service.
//!
//! BuildKit reads `<Dockerfile>.dockerignore` beside the Dockerfile it is
//! given, so the Dockerfile is written to `target/xtask/image/`, named for
//! the package, with its ignore file beside it: the built-in one, or the
//! repository's own when the manifest names one (`dockerfile`), which must
//! keep [`CONTRACT`].

pub mod bundled;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use xshell::Shell;

use crate::cargo_metadata::{CargoMetadata, Package};
use crate::metadata::Metadata;

/// The Dockerfile every image is built with unless the manifest names the
/// repository's own.
pub const BUILT_IN_DOCKERFILE: &str = include_str!("../assets/Dockerfile");

/// How the built-in Dockerfile's build stage reports the service binary's
/// size, `<prefix><bytes> bytes as built|stripped|packed with UPX`: the
/// bench reads it from the build's log.
pub const BINARY_SIZE_LINE: &str = "service binary: ";

/// What a repository's own Dockerfile must declare, as the built-in one
/// does: the build arguments `cargo xtask image` passes, and the stage that
/// builds the bundled tools from their directory.
pub const CONTRACT: [&str; 8] = [
    "ARG BUILDER_IMAGE",
    "ARG RUNTIME_IMAGE",
    "ARG VENDOR_IMAGE",
    "ARG PACKAGE",
    "ARG BINARY",
    "ARG PROFILE",
    "AS tools",
    "COPY target/xtask/image/tools/",
];

/// The build's context, written out.
pub struct Prepared {
    pub dockerfile: PathBuf,
    /// The service package's `repository`, for the image's `source` label.
    pub repository: Option<String>,
    /// What the crates in the image follow from, for its label:
    /// [`crates_digest`].
    pub crates_digest: String,
}

/// The label an image records [`crates_digest`] in, so that `sbom` can tell
/// whether the work tree's crates are still the image's, committed or not.
pub const CRATES_DIGEST_LABEL: &str = "dev.xtask.crates-digest";

/// A digest of Cargo.lock and every member's manifest under `root`: the
/// crates a build resolves change only when one of them does.
pub fn crates_digest(sh: &Shell, root: &Path) -> anyhow::Result<String> {
    let json = read_metadata(sh, root)?;
    digest_of_inputs(root, &json)
}

fn read_metadata(sh: &Shell, root: &Path) -> anyhow::Result<String> {
    crate::process::read(xshell::cmd!(
        sh,
        "cargo metadata --format-version 1 --no-deps --offline --manifest-path {root}/Cargo.toml"
    ))
    .context("cannot read the workspace with `cargo metadata`")
}

fn digest_of_inputs(root: &Path, metadata_json: &str) -> anyhow::Result<String> {
    let metadata = CargoMetadata::parse(metadata_json)?;
    let mut files: Vec<PathBuf> = metadata
        .packages
        .iter()
        .filter(|p| metadata.workspace_members.contains(&p.id))
        .map(|p| p.manifest_path.clone())
        .collect();
    files.push(root.join("Cargo.toml"));
    files.push(root.join("Cargo.lock"));
    files.sort();
    files.dedup();
    let mut hasher = sha1_smol::Sha1::new();
    for file in &files {
        let relative = file.strip_prefix(root).unwrap_or(file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(&[0]);
        // A missing lock file is part of the state too.
        hasher.update(&std::fs::read(file).unwrap_or_default());
        hasher.update(&[0]);
    }
    Ok(format!("sha1:{}", hasher.digest()))
}

/// Where the Dockerfile takes the manifest's run-time settings, which have
/// no build-argument form (`ENV` cannot take a list): a comment that
/// `prepare` follows with `WORKDIR` and `ENV` lines.
const RUN_TIME_MARKER: &str = "# xtask: the manifest's `workdir` and `runtime-env` go here";

/// Writes the Dockerfile and its ignore file for building the manifest's
/// package from the workspace at `root` into `out`.
pub fn prepare(
    sh: &Shell,
    root: &Path,
    metadata: &Metadata,
    dockerfile: &Dockerfile,
    out: &Path,
) -> anyhow::Result<Prepared> {
    let package = metadata.package.as_str();
    let json = read_metadata(sh, root)?;
    let crates_digest = digest_of_inputs(root, &json)?;
    let repository = CargoMetadata::parse(&json)
        .ok()
        .and_then(|metadata| {
            metadata
                .packages
                .into_iter()
                .find(|p| p.name == package && metadata.workspace_members.contains(&p.id))
        })
        .and_then(|p| p.repository);
    let mut ignore = dockerignore(&json, package, |manifest| {
        std::fs::read_to_string(manifest)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .is_some_and(|table| table.contains_key("bin") || table.contains_key("lib"))
    })?;
    ignore.push_str(&manifest_paths(root, metadata)?);
    bundled::write(root)?;
    let written = written_dockerfile(out, package);
    crate::files::write_if_changed(
        &written,
        with_run_time_settings(&dockerfile.text, metadata)?.as_bytes(),
        None,
    )?;
    // BuildKit reads `<Dockerfile>.dockerignore`.
    let ignore_path = out.join(format!("{package}.Dockerfile.dockerignore"));
    crate::files::write_if_changed(&ignore_path, ignore.as_bytes(), None)?;
    Ok(Prepared {
        dockerfile: written,
        repository,
        crates_digest,
    })
}

/// Where `prepare` writes the Dockerfile that builds `package`: named for
/// the package, since another manifest's build (adopt-test's) may be reading
/// its own in `out` meanwhile.
pub fn written_dockerfile(out: &Path, package: &str) -> PathBuf {
    out.join(format!("{package}.Dockerfile"))
}

/// The Dockerfile the manifest's builds use, read and held to [`CONTRACT`]
/// once, for the linters, the base images' defaults and the build alike.
pub struct Dockerfile {
    pub text: String,
    /// A file the linters can read: the repository's own, or the built-in
    /// one written out under `target/xtask/built-in/`.
    pub path: PathBuf,
}

impl Dockerfile {
    pub fn read(root: &Path, metadata: &Metadata) -> anyhow::Result<Dockerfile> {
        let text = dockerfile_text(root, metadata)?;
        if let Some(own) = &metadata.dockerfile {
            return Ok(Dockerfile {
                text,
                path: root.join(own),
            });
        }
        let path = root.join("target/xtask/built-in/Dockerfile");
        crate::files::write_if_changed(&path, text.as_bytes(), None)?;
        Ok(Dockerfile { text, path })
    }
}

/// The built-in Dockerfile, or the repository's own that the manifest names,
/// held to [`CONTRACT`]. A Dockerfile that is merely present is not read.
fn dockerfile_text(root: &Path, metadata: &Metadata) -> anyhow::Result<String> {
    let Some(own) = &metadata.dockerfile else {
        return Ok(BUILT_IN_DOCKERFILE.to_owned());
    };
    let path = root.join(own);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("dockerfile: cannot read {}", path.display()))?;
    let missing: Vec<&str> = CONTRACT
        .into_iter()
        .filter(|needed| {
            !text.lines().any(|line| {
                let line = line.trim();
                line.starts_with(needed) || line.ends_with(needed)
            })
        })
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "dockerfile: {} does not keep the contract of the built-in Dockerfile; it lacks {}; see docs/adopting.md",
            path.display(),
            missing.join(", ")
        );
    }
    Ok(text)
}

/// The ignore file's lines for the toolchain file and the paths the
/// manifest names (`build-context`, `runtime-files`), each of which must
/// exist: a missing one is a typo, found now rather than inside BuildKit.
fn manifest_paths(root: &Path, metadata: &Metadata) -> anyhow::Result<String> {
    let mut lines = vec![
        "# The toolchain file, as the repository pins it.".to_owned(),
        "!rust-toolchain.toml".to_owned(),
        "!rust-toolchain".to_owned(),
    ];
    let named = metadata
        .build_context
        .iter()
        .map(|path| ("build-context", path))
        .chain(
            metadata
                .runtime_files
                .iter()
                .map(|file| ("runtime-files", &file.from)),
        );
    let mut first = true;
    for (key, path) in named {
        if !root.join(path).exists() {
            anyhow::bail!(
                "{key}: {path:?} does not exist in the workspace {}",
                root.display()
            );
        }
        if first {
            lines.push("# What the manifest names: build-context, runtime-files.".to_owned());
            first = false;
        }
        lines.push(format!("!{}", path.trim_end_matches('/')));
    }
    lines.push(String::new());
    Ok(lines.join("\n"))
}

/// The Dockerfile with the manifest's `workdir` and `runtime-env` after
/// its marker; unchanged when the manifest sets neither.
fn with_run_time_settings(dockerfile: &str, metadata: &Metadata) -> anyhow::Result<String> {
    let mut lines = Vec::new();
    if let Some(workdir) = &metadata.workdir {
        lines.push(format!("WORKDIR {workdir}"));
    }
    if !metadata.runtime_env.is_empty() {
        let pairs: Vec<String> = metadata
            .runtime_env
            .iter()
            .map(|(name, value)| format!("{name}=\"{}\"", dockerfile_quoted(value)))
            .collect();
        lines.push(format!("ENV {}", pairs.join(" \\\n    ")));
    }
    if lines.is_empty() {
        return Ok(dockerfile.to_owned());
    }
    let Some(at) = dockerfile.find(RUN_TIME_MARKER) else {
        anyhow::bail!(
            "the Dockerfile has no line `{RUN_TIME_MARKER}`, where the manifest's workdir and runtime-env go"
        );
    };
    // After the marker's comment, which may run over several lines.
    let rest = &dockerfile[at..];
    let end = rest
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.len() + 1)
        .sum::<usize>();
    let (head, tail) = dockerfile.split_at((at + end).min(dockerfile.len()));
    Ok(format!("{head}{}\n{tail}", lines.join("\n")))
}

/// A value inside an `ENV` instruction's double quotes, where `\`, `"` and
/// `$` would otherwise be read.
fn dockerfile_quoted(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted
}

/// The ignore file: everything out, then the manifests, then the sources
/// of `package` and its path dependencies, less their tests, then the
/// bundled tools.
/// `declares_targets` says whether a manifest names its targets: cargo
/// loads every member, and one whose targets it must discover needs its
/// entry files (`src/main.rs`, `src/lib.rs`) present, though they are not
/// built.
fn dockerignore(
    metadata_json: &str,
    package: &str,
    declares_targets: impl Fn(&Path) -> bool,
) -> anyhow::Result<String> {
    let metadata = CargoMetadata::parse(metadata_json)?;
    let root = &metadata.workspace_root;
    let relative = |path: &Path| -> anyhow::Result<String> {
        let path = path.strip_prefix(root).with_context(|| {
            format!(
                "{} is outside the workspace {}: the image cannot build it",
                path.display(),
                root.display()
            )
        })?;
        Ok(path.to_string_lossy().replace('\\', "/"))
    };
    let members: HashMap<&str, &Package> = metadata
        .packages
        .iter()
        .filter(|p| metadata.workspace_members.contains(&p.id))
        .map(|p| (p.name.as_str(), p))
        .collect();
    let Some(service) = members.get(package) else {
        anyhow::bail!(
            "package {package:?} (the manifest table's `package`) is not a member of the workspace; members: {}",
            sorted(members.keys().copied()).join(", ")
        );
    };
    let built = built_dirs(&members, service);

    let mut lines = vec![
        "# Written by `cargo xtask image` from `cargo metadata`: do not edit.".to_owned(),
        "*".to_owned(),
        "!Cargo.toml".to_owned(),
        "!Cargo.lock".to_owned(),
        "!.cargo/config.toml".to_owned(),
        "# Every member's manifest: cargo loads the whole workspace.".to_owned(),
    ];
    for member in sorted(members.values().map(|p| p.manifest_path.as_path())) {
        lines.push(format!("!{}", relative(member)?));
    }
    let mut entry_files = Vec::new();
    for member in members.values() {
        if built.contains(&crate_dir(&member.manifest_path))
            || declares_targets(&member.manifest_path)
        {
            continue;
        }
        for target in &member.targets {
            if target.kind.iter().any(|k| k == "bin" || k == "lib") {
                entry_files.push(relative(&target.src_path)?);
            }
        }
    }
    if !entry_files.is_empty() {
        lines.push("# Entry files of the other members, so cargo can load them.".to_owned());
        for file in sorted(entry_files.into_iter()) {
            lines.push(format!("!{file}"));
        }
    }
    lines.push("# What the service's build reads.".to_owned());
    for dir in &built {
        let dir = relative(dir)?;
        // A package at the workspace root (a single-crate repository) is
        // the whole tree: `!/` is no pattern BuildKit takes.
        let prefix = if dir.is_empty() {
            lines.push("!**".to_owned());
            lines.push(".git/".to_owned());
            String::new()
        } else {
            lines.push(format!("!{dir}/"));
            format!("{dir}/")
        };
        for left_out in ["tests/", "benches/", "data/"] {
            lines.push(format!("{prefix}{left_out}"));
        }
    }
    lines.extend(
        [
            "# Local output and data inside an allowed directory.",
            "**/target/",
            "**/*.db",
            "**/*.db-shm",
            "**/*.db-wal",
            "**/.env",
            "# The image's own tools, written by `cargo xtask image`.",
        ]
        .map(str::to_owned),
    );
    lines.push(format!("!{}/", bundled::DIR));
    lines.push(String::new());
    Ok(lines.join("\n"))
}

/// The directories of the package and its path dependencies (and theirs):
/// what the image's build compiles. A path dependency outside
/// the workspace is taken whole; its own are not followed.
fn built_dirs(members: &HashMap<&str, &Package>, service: &Package) -> BTreeSet<PathBuf> {
    let mut built: BTreeSet<PathBuf> = BTreeSet::new();
    let mut todo: Vec<&Package> = vec![service];
    while let Some(package) = todo.pop() {
        if !built.insert(crate_dir(&package.manifest_path)) {
            continue;
        }
        for dependency in &package.dependencies {
            let Some(path) = &dependency.path else {
                continue;
            };
            if dependency.kind.as_deref() == Some("dev") {
                continue;
            }
            match members.get(dependency.name.as_str()) {
                Some(member) => todo.push(member),
                None => {
                    built.insert(path.clone());
                }
            }
        }
    }
    built
}

fn crate_dir(manifest_path: &Path) -> PathBuf {
    manifest_path
        .parent()
        .map_or_else(PathBuf::new, Path::to_path_buf)
}

fn sorted<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort();
    items
}

/// The base images of one build.
#[derive(Debug, Clone)]
pub struct Bases {
    pub builder: String,
    pub runtime: String,
    pub vendor: Option<String>,
    /// Time spent making offline stand-ins; `None` for online builds.
    pub prepare_secs: Option<f64>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_built_in_dockerfile_reports_the_binarys_sizes_as_the_bench_reads_them() {
        for stage in ["bytes as built", "bytes stripped", "bytes packed with UPX"] {
            let start = format!("echo \"{BINARY_SIZE_LINE}$(wc -c <");
            let end = format!(") {stage}\"");
            assert!(
                BUILT_IN_DOCKERFILE
                    .lines()
                    .any(|line| line.contains(&start) && line.contains(&end)),
                "no {start}…{end}"
            );
        }
    }

    /// `cargo metadata`'s shape, cut to the fields read: `api` depends on
    /// the path crate `model` (which depends on `util`), and has a dev
    /// dependency on `testkit`.
    const METADATA: &str = r#"{
      "workspace_root": "/w",
      "workspace_members": ["path+file:///w/api#0.1.0", "path+file:///w/crates/model#0.1.0",
        "path+file:///w/crates/util#0.1.0", "path+file:///w/testkit#0.1.0",
        "path+file:///w/healthcheck#0.1.0", "path+file:///w/rootfs#0.1.0",
        "path+file:///w/xtask#0.1.0"],
      "packages": [
        {"name": "api", "id": "path+file:///w/api#0.1.0", "manifest_path": "/w/api/Cargo.toml",
         "targets": [{"kind": ["bin"], "src_path": "/w/api/src/main.rs"}],
         "dependencies": [
           {"name": "model", "path": "/w/crates/model", "kind": null},
           {"name": "serde", "kind": null},
           {"name": "testkit", "path": "/w/testkit", "kind": "dev"}]},
        {"name": "model", "id": "path+file:///w/crates/model#0.1.0",
         "manifest_path": "/w/crates/model/Cargo.toml", "targets": [{"kind": ["lib"], "src_path": "/w/crates/model/src/lib.rs"}],
         "dependencies": [{"name": "util", "path": "/w/crates/util", "kind": null}]},
        {"name": "util", "id": "path+file:///w/crates/util#0.1.0",
         "manifest_path": "/w/crates/util/Cargo.toml", "targets": [{"kind": ["lib"], "src_path": "/w/crates/util/src/lib.rs"}], "dependencies": []},
        {"name": "testkit", "id": "path+file:///w/testkit#0.1.0",
         "manifest_path": "/w/testkit/Cargo.toml", "targets": [{"kind": ["lib"], "src_path": "/w/testkit/src/lib.rs"}], "dependencies": []},
        {"name": "healthcheck", "id": "path+file:///w/healthcheck#0.1.0",
         "manifest_path": "/w/healthcheck/Cargo.toml", "targets": [{"kind": ["bin"], "src_path": "/w/healthcheck/src/main.rs"}], "dependencies": []},
        {"name": "rootfs", "id": "path+file:///w/rootfs#0.1.0",
         "manifest_path": "/w/rootfs/Cargo.toml", "targets": [{"kind": ["bin"], "src_path": "/w/rootfs/src/main.rs"}], "dependencies": []},
        {"name": "xtask", "id": "path+file:///w/xtask#0.1.0",
         "manifest_path": "/w/xtask/Cargo.toml", "targets": [{"kind": ["bin"], "src_path": "/w/xtask/src/main.rs"}], "dependencies": []}
      ]
    }"#;

    fn allowed(ignore: &str) -> Vec<&str> {
        ignore.lines().filter_map(|l| l.strip_prefix('!')).collect()
    }

    #[test]
    fn the_package_its_path_dependencies_and_the_bundled_tools_are_in() {
        let ignore = dockerignore(METADATA, "api", |m| m.ends_with("xtask/Cargo.toml")).unwrap();
        let allowed = allowed(&ignore);
        for dir in [
            "api/",
            "crates/model/",
            "crates/util/",
            "target/xtask/image/tools/",
        ] {
            assert!(allowed.contains(&dir), "{dir} missing from {allowed:?}");
        }
        assert!(ignore.lines().any(|l| l == "api/tests/"));
    }

    /// What a build reads beside `src/` inside the package (sqlx's `.sqlx/`
    /// and `migrations/`, `build.rs` and its inputs, `include_str!`
    /// targets) comes with the package's folder: only its tests, benches and
    /// local data are left out, and nothing after re-excludes the rest.
    #[test]
    fn the_files_a_build_reads_beside_the_sources_are_in() {
        let ignore = dockerignore(METADATA, "api", |m| m.ends_with("xtask/Cargo.toml")).unwrap();
        assert!(ignore.lines().any(|l| l == "!api/"));
        let excluded: Vec<&str> = ignore.lines().filter(|l| l.starts_with("api/")).collect();
        assert_eq!(excluded, ["api/tests/", "api/benches/", "api/data/"]);
        for kept in [
            "api/.sqlx/",
            "api/migrations/",
            "api/build.rs",
            "api/templates/",
        ] {
            assert!(
                !ignore.lines().any(|l| !l.starts_with('!')
                    && !l.starts_with('#')
                    && !l.contains('*')
                    && kept.starts_with(l)),
                "{kept} is excluded by {ignore}"
            );
        }
    }

    #[test]
    fn dev_dependencies_and_other_members_give_only_their_manifests() {
        let ignore = dockerignore(METADATA, "api", |m| m.ends_with("xtask/Cargo.toml")).unwrap();
        let allowed = allowed(&ignore);
        assert!(!allowed.contains(&"testkit/"));
        assert!(!allowed.contains(&"xtask/"));
        assert!(allowed.contains(&"testkit/Cargo.toml"));
        assert!(allowed.contains(&"xtask/Cargo.toml"));
        assert_eq!(ignore.lines().nth(1), Some("*"), "everything out first");
    }

    #[test]
    fn other_members_give_their_entry_files_unless_they_declare_targets() {
        let ignore = dockerignore(METADATA, "api", |m| m.ends_with("xtask/Cargo.toml")).unwrap();
        let allowed = allowed(&ignore);
        assert!(allowed.contains(&"testkit/src/lib.rs"), "{allowed:?}");
        assert!(
            !allowed.iter().any(|a| a.starts_with("xtask/src")),
            "{allowed:?}"
        );
        assert!(
            !allowed.contains(&"crates/model/src/lib.rs"),
            "built whole: {allowed:?}"
        );
    }

    #[test]
    fn a_package_at_the_workspace_root_takes_the_tree_less_its_tests() {
        let metadata = METADATA
            .replace("\"/w/api/Cargo.toml\"", "\"/w/Cargo.toml\"")
            .replace("\"/w/api/src/main.rs\"", "\"/w/src/main.rs\"");
        let ignore = dockerignore(&metadata, "api", |m| m.ends_with("xtask/Cargo.toml")).unwrap();
        assert!(ignore.lines().any(|l| l == "!**"), "{ignore}");
        for left_out in ["tests/", "benches/", "data/", ".git/", "**/target/"] {
            assert!(
                ignore.lines().any(|l| l == left_out),
                "{left_out}: {ignore}"
            );
        }
        assert!(
            !ignore
                .lines()
                .any(|l| l.starts_with("!/") || l.starts_with('/')),
            "{ignore}"
        );
    }

    #[test]
    fn a_package_that_is_not_a_member_is_named_with_the_members() {
        let error = dockerignore(METADATA, "notes", |_| false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"notes\""), "{error}");
        assert!(error.contains("api, healthcheck, model, rootfs"), "{error}");
    }

    fn workspace_metadata() -> Metadata {
        Metadata::load(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()).unwrap()
    }

    #[test]
    fn the_manifests_workdir_and_variables_follow_the_marker() {
        let dockerfile =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"))
                .unwrap();
        let mut metadata = workspace_metadata();
        assert_eq!(
            with_run_time_settings(&dockerfile, &metadata).unwrap(),
            dockerfile,
            "unchanged when the manifest sets neither"
        );
        metadata.workdir = Some("/app".into());
        metadata.runtime_env = BTreeMap::from([
            ("APP_ENVIRONMENT".into(), "production".into()),
            ("GREETING".into(), r#"say "hi" to $USER"#.into()),
        ]);
        let written = with_run_time_settings(&dockerfile, &metadata).unwrap();
        let at = written
            .find("WORKDIR /app\nENV APP_ENVIRONMENT=\"production\"")
            .unwrap();
        assert!(at > written.find(RUN_TIME_MARKER).unwrap());
        assert!(
            written.contains(r#"GREETING="say \"hi\" to \$USER""#),
            "{written}"
        );
        assert!(with_run_time_settings("FROM x\n", &metadata).is_err());
    }

    #[test]
    fn the_toolchain_file_and_the_manifests_paths_are_in_the_context() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut metadata = workspace_metadata();
        metadata.build_context = vec!["deploy".into()];
        metadata.runtime_files = vec![crate::metadata::RuntimeFile {
            from: "docs/".into(),
            to: "/app/docs".into(),
        }];
        let lines = manifest_paths(root, &metadata).unwrap();
        for line in ["!rust-toolchain.toml", "!deploy", "!docs"] {
            assert!(
                lines.lines().any(|l| l == line),
                "{line} missing from {lines}"
            );
        }
        metadata.build_context = vec!["no-such-dir".into()];
        let error = manifest_paths(root, &metadata).unwrap_err().to_string();
        assert!(
            error.contains("build-context: \"no-such-dir\" does not exist"),
            "{error}"
        );
    }

    #[test]
    fn the_crates_digest_follows_the_lock_file_and_the_manifests_only() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(dir.join("api/src")).unwrap();
        let metadata = METADATA.replace("/w/", &format!("{}/", dir.display()));
        let write = |path: &str, text: &str| std::fs::write(dir.join(path), text).unwrap();
        write("Cargo.toml", "[workspace]");
        write("Cargo.lock", "# lock 1");
        write("api/Cargo.toml", "[package]");
        write("api/src/main.rs", "fn main() {}");
        let first = digest_of_inputs(&dir, &metadata).unwrap();
        write("api/src/main.rs", "fn main() { changed() }");
        assert_eq!(
            digest_of_inputs(&dir, &metadata).unwrap(),
            first,
            "sources do not count"
        );
        write("Cargo.lock", "# lock 2");
        let relocked = digest_of_inputs(&dir, &metadata).unwrap();
        assert_ne!(relocked, first);
        write("api/Cargo.toml", "[package]\nversion = \"2\"");
        assert_ne!(digest_of_inputs(&dir, &metadata).unwrap(), relocked);
    }

    #[test]
    fn this_workspace_leaves_the_toolings_sources_out() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let metadata = crate::metadata::Metadata::load(root).unwrap();
        let scratch = crate::testing::scratch();
        let out = scratch.path().to_path_buf();
        let sh = Shell::new().unwrap();
        let dockerfile = Dockerfile::read(root, &metadata).unwrap();
        let prepared = prepare(&sh, root, &metadata, &dockerfile, &out).unwrap();
        let dockerfile = prepared.dockerfile;
        let ignore = std::fs::read_to_string(out.join("server.Dockerfile.dockerignore")).unwrap();
        assert_eq!(
            dockerfile,
            out.join("server.Dockerfile"),
            "named for the package"
        );
        let allowed = allowed(&ignore);
        assert!(allowed.contains(&"tooling/Cargo.toml"));
        assert!(!allowed.iter().any(|a| a.starts_with("tooling/src")));
        assert!(allowed.contains(&"target/xtask/image/tools/"));
        assert!(
            allowed.contains(&"healthcheck/"),
            "the probe's crate, which the server uses"
        );
        assert!(
            !allowed.contains(&"rootfs/"),
            "a member the service does not use: the tools stage has its own copy"
        );
    }

    #[test]
    fn a_dockerfile_the_manifest_names_must_keep_the_contract() {
        let scratch = crate::testing::scratch();
        let root = scratch.path().to_path_buf();
        std::fs::create_dir_all(&root).unwrap();
        let mut metadata = crate::metadata::Metadata::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap(),
        )
        .unwrap();
        metadata.dockerfile = Some("ops/Dockerfile".into());
        std::fs::create_dir_all(root.join("ops")).unwrap();
        std::fs::write(root.join("ops/Dockerfile"), "FROM scratch\nARG PACKAGE\n").unwrap();
        let error = dockerfile_text(&root, &metadata).unwrap_err().to_string();
        assert!(error.contains("lacks ARG BUILDER_IMAGE"), "{error}");
        assert!(!error.contains("ARG PACKAGE,"), "{error}");
        std::fs::write(root.join("ops/Dockerfile"), BUILT_IN_DOCKERFILE).unwrap();
        assert_eq!(
            dockerfile_text(&root, &metadata).unwrap(),
            BUILT_IN_DOCKERFILE
        );
        metadata.dockerfile = None;
        std::fs::write(root.join("ops/Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(
            dockerfile_text(&root, &metadata).unwrap(),
            BUILT_IN_DOCKERFILE,
            "present, not named: not read"
        );
    }
}

//! The Rust crates compiled into the binary: `cargo tree` resolves them for
//! the package alone (its own features, not the workspace's union), the
//! image's target, and normal edges only. Proc-macros run in the compiler and
//! leave no code in the binary, so they are left out with their subtrees.
//! Checksums come from Cargo.lock.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use xshell::{Shell, cmd};

use crate::process;

/// One crate in the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// The manifest's `license`, as a valid SPDX expression; `None` when the
    /// crate declares none (or only a license file).
    pub license: Option<String>,
    /// The manifest's `license` as written, when it had to be rewritten or
    /// could not be read.
    pub license_as_written: Option<String>,
    /// The SHA-256 of the `.crate` file, from Cargo.lock (registry crates only).
    pub checksum: Option<String>,
    /// A crate of the repository itself or of a git checkout, which
    /// Cargo.lock gives no checksum for (its entry has no registry source).
    pub local: bool,
    /// Indices into [`CrateGraph::crates`] of the crates this one uses.
    pub dependencies: Vec<usize>,
}

/// The crates of one binary and the edges between them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrateGraph {
    /// Sorted by name, then version, so output is stable.
    pub crates: Vec<Crate>,
    /// The crates the package depends on directly.
    pub direct: Vec<usize>,
    /// The package's own license, as an SPDX expression.
    pub root_license: Option<String>,
}

/// Resolves the crates of `package` built for `target`.
pub fn read(sh: &Shell, root: &Path, package: &str, target: &str) -> anyhow::Result<CrateGraph> {
    let format = "{p}|{l}";
    let tree = process::read(cmd!(
        sh,
        "cargo tree --locked --package {package} --target {target} --edges normal,no-proc-macro --prefix depth --format {format} --charset ascii"
    ))
    .with_context(|| format!("cannot resolve the crates of {package} for {target}"))?;
    let lock_path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("cannot read {}", lock_path.display()))?;
    let mut graph = parse_tree(&tree)?;
    let locked = locked(&lock).context("Cargo.lock is not a lock file cargo wrote")?;
    for krate in &mut graph.crates {
        let entry = locked.get(&(krate.name.clone(), krate.version.clone()));
        krate.checksum = entry.and_then(|p| p.checksum.clone());
        krate.local = entry.is_some_and(|p| {
            !p.source.as_deref().is_some_and(|source| {
                source.starts_with("registry+") || source.starts_with("sparse+")
            })
        });
    }
    Ok(graph)
}

/// One line of `cargo tree --prefix depth --format '{p}|{l}'`.
struct TreeLine<'a> {
    depth: usize,
    name: &'a str,
    version: &'a str,
    license: &'a str,
}

fn parse_line(line: &str) -> anyhow::Result<TreeLine<'_>> {
    let digits = line.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    let depth = line[..digits]
        .parse()
        .with_context(|| format!("no depth in the cargo tree line {line:?}"))?;
    let (package, license) = line[digits..]
        .split_once('|')
        .with_context(|| format!("no license column in the cargo tree line {line:?}"))?;
    // `(*)` marks a crate whose dependencies were listed above.
    let license = license.trim_end().trim_end_matches("(*)").trim();
    let mut words = package.split_whitespace();
    let (Some(name), Some(version)) = (words.next(), words.next()) else {
        bail!("no name and version in the cargo tree line {line:?}");
    };
    let Some(version) = version.strip_prefix('v') else {
        bail!("no version in the cargo tree line {line:?}");
    };
    Ok(TreeLine {
        depth,
        name,
        version,
        license,
    })
}

/// Reads the tree into a graph. The line at depth 0 is the package itself.
pub fn parse_tree(text: &str) -> anyhow::Result<CrateGraph> {
    let mut index: BTreeMap<(String, String), (Option<String>, Option<String>)> = BTreeMap::new();
    let mut edges: Vec<((String, String), (String, String))> = Vec::new();
    let mut path: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let root = parse_line(lines.next().context("cargo tree printed nothing")?)?;
    if root.depth != 0 {
        bail!("cargo tree's first line is not the package");
    }
    path.push((root.name.to_owned(), root.version.to_owned()));
    for line in lines {
        let line = parse_line(line)?;
        if line.depth == 0 || line.depth > path.len() {
            bail!(
                "cargo tree line for {} at depth {} has no parent",
                line.name,
                line.depth
            );
        }
        path.truncate(line.depth);
        let key = (line.name.to_owned(), line.version.to_owned());
        index
            .entry(key.clone())
            .or_insert_with(|| spdx_license(line.license));
        edges.push((path[line.depth - 1].clone(), key.clone()));
        path.push(key);
    }
    let position: HashMap<(String, String), usize> = index
        .keys()
        .enumerate()
        .map(|(i, key)| (key.clone(), i))
        .collect();
    let mut crates: Vec<Crate> = index
        .into_iter()
        .map(|((name, version), (license, license_as_written))| Crate {
            name,
            version,
            license,
            license_as_written,
            checksum: None,
            local: false,
            dependencies: Vec::new(),
        })
        .collect();
    let root_key = &path[0];
    let mut direct = Vec::new();
    for (from, to) in edges {
        let to = position[&to];
        let list = if &from == root_key {
            &mut direct
        } else {
            &mut crates[position[&from]].dependencies
        };
        if !list.contains(&to) {
            list.push(to);
        }
    }
    direct.sort_unstable();
    for krate in &mut crates {
        krate.dependencies.sort_unstable();
    }
    Ok(CrateGraph {
        crates,
        direct,
        root_license: spdx_license(root.license).0,
    })
}

/// A crate's `license` field as a valid SPDX expression, and the field as
/// written when it differed. The legacy `MIT/Apache-2.0` means `OR`.
pub fn spdx_license(field: &str) -> (Option<String>, Option<String>) {
    let field = field.trim();
    if field.is_empty() {
        return (None, None);
    }
    let rewritten = field
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ");
    let as_written = (rewritten != field).then(|| field.to_owned());
    if is_spdx_expression(&rewritten) {
        (Some(rewritten), as_written)
    } else {
        (None, Some(field.to_owned()))
    }
}

/// Checks the shape of an SPDX license expression: license ids (letters,
/// digits, `.`, `-`, an optional `+`), `AND`, `OR`, `WITH`, and balanced
/// parentheses, alternating as the grammar wants.
fn is_spdx_expression(text: &str) -> bool {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    let mut depth = 0usize;
    let mut expect_operand = true;
    for word in spaced.split_whitespace() {
        match word {
            "(" if expect_operand => depth += 1,
            ")" if !expect_operand && depth > 0 => depth -= 1,
            "AND" | "OR" | "WITH" if !expect_operand => expect_operand = true,
            id if expect_operand && is_license_id(id) => expect_operand = false,
            _ => return false,
        }
    }
    depth == 0 && !expect_operand
}

fn is_license_id(word: &str) -> bool {
    let id = word.strip_suffix('+').unwrap_or(word);
    !id.is_empty()
        && !matches!(id, "AND" | "OR" | "WITH")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    /// `registry+…` or `sparse+…` for a registry's, `git+…`; none for a path.
    source: Option<String>,
    checksum: Option<String>,
}

/// Every package of the workspace's Cargo.lock, as `(name, version)`.
pub fn locked_packages(
    root: &Path,
) -> anyhow::Result<std::collections::BTreeSet<(String, String)>> {
    let path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(locked(&lock)
        .with_context(|| format!("{} is not a lock file cargo wrote", path.display()))?
        .into_keys()
        .collect())
}

/// Cargo.lock's packages by `(name, version)`.
fn locked(lock: &str) -> anyhow::Result<HashMap<(String, String), LockedPackage>> {
    let lock: Lock = toml::from_str(lock)?;
    Ok(lock
        .package
        .into_iter()
        .map(|p| ((p.name.clone(), p.version.clone()), p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "\
0server v0.1.0 (/work/server)|MIT OR Apache-2.0
1axum v0.8.9|MIT
2bytes v1.12.2|MIT
2http v1.5.0|MIT OR Apache-2.0
3bytes v1.12.2|MIT
1tokio v1.54.1|MIT
2bytes v1.12.2|MIT
1unicode-ident v1.0.27|(MIT OR Apache-2.0) AND Unicode-3.0
1http v1.5.0|MIT OR Apache-2.0 (*)
";

    #[test]
    fn reads_crates_and_edges_from_the_tree() {
        let graph = parse_tree(TREE).unwrap();
        let names: Vec<String> = graph
            .crates
            .iter()
            .map(|c| format!("{}@{}", c.name, c.version))
            .collect();
        assert_eq!(
            names,
            [
                "axum@0.8.9",
                "bytes@1.12.2",
                "http@1.5.0",
                "tokio@1.54.1",
                "unicode-ident@1.0.27"
            ]
        );
        assert_eq!(graph.direct, [0, 2, 3, 4]);
        assert_eq!(graph.crates[0].dependencies, [1, 2]);
        assert_eq!(graph.crates[2].dependencies, [1]);
        assert_eq!(
            graph.crates[4].license.as_deref(),
            Some("(MIT OR Apache-2.0) AND Unicode-3.0")
        );
    }

    #[test]
    fn legacy_slashes_become_or_and_the_original_is_kept() {
        assert_eq!(
            spdx_license("MIT/Apache-2.0"),
            (
                Some("MIT OR Apache-2.0".to_owned()),
                Some("MIT/Apache-2.0".to_owned())
            )
        );
        assert_eq!(
            spdx_license("Apache-2.0 WITH LLVM-exception OR MIT"),
            (
                Some("Apache-2.0 WITH LLVM-exception OR MIT".to_owned()),
                None
            )
        );
        assert_eq!(spdx_license(""), (None, None));
        assert_eq!(
            spdx_license("MIT or Apache"),
            (None, Some("MIT or Apache".to_owned()))
        );
        assert_eq!(spdx_license("(MIT"), (None, Some("(MIT".to_owned())));
    }

    #[test]
    fn a_line_without_depth_is_an_error_not_a_panic() {
        let error = parse_tree("server v0.1.0|MIT").unwrap_err();
        assert!(error.to_string().contains("depth"), "{error}");
        let error = parse_tree("0server v0.1.0|MIT\n3orphan v1.0.0|MIT").unwrap_err();
        assert!(error.to_string().contains("no parent"), "{error}");
    }

    #[test]
    fn reads_checksums_and_sources_from_the_lock_file() {
        let lock = r#"
version = 4

[[package]]
name = "bytes"
version = "1.12.2"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "abc123"

[[package]]
name = "server"
version = "0.1.0"
"#;
        let locked = locked(lock).unwrap();
        let bytes = &locked[&("bytes".into(), "1.12.2".into())];
        assert_eq!(bytes.checksum.as_deref(), Some("abc123"));
        assert!(bytes.source.as_deref().unwrap().starts_with("registry+"));
        let server = &locked[&("server".into(), "0.1.0".into())];
        assert_eq!(
            (server.checksum.as_ref(), server.source.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn the_servers_crates_leave_out_the_xtasks_and_proc_macros() {
        let sh = Shell::new().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        sh.change_dir(root);
        let graph = read(&sh, root, "server", "x86_64-unknown-linux-gnu").unwrap();
        let has = |name: &str| graph.crates.iter().any(|c| c.name == name);
        assert!(has("tokio") && has("axum") && has("sqlx-core"));
        assert!(!has("xshell") && !has("clap"), "the xtask's crates");
        assert!(!has("tokio-macros") && !has("serde_derive"), "proc-macros");
        assert!(!has("windows-sys"), "other targets' crates");
        // `healthcheck` is a path dependency: a member of this workspace.
        let (members, registry): (Vec<&Crate>, Vec<&Crate>) =
            graph.crates.iter().partition(|c| c.name == "healthcheck");
        assert_eq!(members.len(), 1, "the probe the server shares");
        assert_eq!(members[0].checksum, None, "a path crate has no checksum");
        assert!(members[0].local && registry.iter().all(|c| !c.local));
        assert!(
            registry
                .iter()
                .all(|c| c.checksum.as_ref().is_some_and(|sum| sum.len() == 64)),
            "every crate from crates.io has its checksum"
        );
    }
}

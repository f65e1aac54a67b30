//! Changes made to a copy of the sources, to measure or prove what a
//! rebuild does with them: one dependency moved one patch release in
//! `Cargo.lock`, and a one-line change to a file (`bench`, `diff-test`).

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

/// One dependency's version in `Cargo.lock` moved by one patch release:
/// down, or up when it is a `.0`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DependencyChange {
    pub name: String,
    pub from: String,
    pub to: String,
}

impl DependencyChange {
    /// The change for the registry crate `name` of the lock file `lock`.
    pub fn choose(lock: &str, name: &str) -> anyhow::Result<DependencyChange> {
        let lock: toml::Table = toml::from_str(lock).context("Cargo.lock is not TOML")?;
        let versions: Vec<&str> = lock
            .get("package")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p.get("name").and_then(toml::Value::as_str) == Some(name))
            .filter(|p| {
                p.get("source")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|s| s.starts_with("registry+"))
            })
            .filter_map(|p| p.get("version").and_then(toml::Value::as_str))
            .collect();
        let [from] = versions.as_slice() else {
            anyhow::bail!(
                "--dependency {name}: Cargo.lock holds {} versions of it from a registry; name a crate it holds once",
                versions.len()
            );
        };
        let (release, patch) = from
            .rsplit_once('.')
            .and_then(|(release, patch)| Some((release, patch.parse::<u64>().ok()?)))
            .with_context(|| {
                format!("--dependency {name}: its version {from} is not major.minor.patch")
            })?;
        let to = match patch.checked_sub(1) {
            Some(down) => format!("{release}.{down}"),
            None => format!("{release}.{}", patch + 1),
        };
        Ok(DependencyChange {
            name: name.to_owned(),
            from: (*from).to_owned(),
            to,
        })
    }

    /// `cargo update --precise` in the copy `dir`.
    pub fn apply(&self, sh: &Shell, dir: &Path) -> anyhow::Result<()> {
        let _in_dir = sh.push_dir(dir);
        let cargo = crate::process::cargo();
        let spec = format!("{}@{}", self.name, self.from);
        let to = &self.to;
        crate::process::run(xshell::cmd!(
            sh,
            "{cargo} update --quiet -p {spec} --precise {to}"
        ))
        .with_context(|| format!("cannot change {} from {} to {to}", self.name, self.from))
    }
}

/// Appends a comment line, `// {mark} at {time}`, to `file` in the copy
/// `dir`: a one-line change. The line carries the time, so that no earlier
/// run's build of the same change is in the engine's cache to be reused.
pub fn add_line(dir: &Path, file: &str, mark: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let text = format!("{text}// {mark} at {now}\n");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_moves_one_patch_release() {
        let lock = "version = 4\n\
            [[package]]\nname = \"itoa\"\nversion = \"1.0.15\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\
            [[package]]\nname = \"zero\"\nversion = \"0.3.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\
            [[package]]\nname = \"server\"\nversion = \"0.1.0\"\n";
        let change = DependencyChange::choose(lock, "itoa").unwrap();
        assert_eq!(
            (change.from.as_str(), change.to.as_str()),
            ("1.0.15", "1.0.14")
        );
        let change = DependencyChange::choose(lock, "zero").unwrap();
        assert_eq!(change.to, "0.3.1");
        let error = DependencyChange::choose(lock, "server")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("holds 0 versions of it from a registry"),
            "{error}"
        );
    }

    #[test]
    fn a_one_line_change_adds_one_line() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
        add_line(&dir, "src/main.rs", "bench: 1").unwrap();
        let once = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        let added = once.strip_prefix("fn main() {}\n").unwrap();
        assert!(
            added.starts_with("// bench: 1 at ") && added.lines().count() == 1,
            "{added}"
        );
        // Another run's change differs, so no cached build of it is reused.
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
        add_line(&dir, "src/main.rs", "bench: 1").unwrap();
        let twice = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert_ne!(once, twice);
    }
}

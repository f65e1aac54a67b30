//! `deny.toml` for a repository that has none, written for its own
//! dependencies: the licenses they declare today are listed for the team
//! to keep or drop, and every advisory denies until an entry says why not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use xshell::Shell;

use crate::cargo_metadata::{CargoMetadata, Package};

/// The file's text, from `cargo metadata` of the repository under `root`.
pub fn for_repository(sh: &Shell, root: &Path) -> anyhow::Result<String> {
    let manifest = root.join("Cargo.toml");
    let json = crate::process::read(xshell::cmd!(
        sh,
        "cargo metadata --format-version 1 --offline --manifest-path {manifest}"
    ))
    .or_else(|_| {
        crate::process::read(xshell::cmd!(
            sh,
            "cargo metadata --format-version 1 --manifest-path {manifest}"
        ))
    })
    .context("cannot read the repository's dependencies with `cargo metadata`")?;
    let metadata = CargoMetadata::parse(&json)?;
    Ok(text(&licenses(&metadata.packages)))
}

/// Each SPDX license id the packages name, with the packages naming it.
fn licenses(packages: &[Package]) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in packages {
        let Some(expression) = &package.license else {
            continue;
        };
        let mut words = expression
            .split(|c: char| c == '(' || c == ')' || c == '/' || c.is_whitespace())
            .filter(|word| !word.is_empty());
        while let Some(id) = words.next() {
            match id {
                "OR" | "AND" => continue,
                // An exception is no license of its own.
                "WITH" => {
                    words.next();
                    continue;
                }
                _ => {}
            }
            let users = found.entry(id.to_owned()).or_default();
            if !users.contains(&package.name) {
                users.push(package.name.clone());
            }
        }
    }
    found
}

fn text(licenses: &BTreeMap<String, Vec<String>>) -> String {
    let mut allow = String::new();
    for (id, users) in licenses {
        let named: Vec<&str> = users.iter().take(3).map(String::as_str).collect();
        let more = users.len().saturating_sub(named.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let _ = writeln!(allow, "    # {}{more}\n    {id:?},", named.join(", "));
    }
    format!(
        r#"# cargo-deny: what the Rust dependencies may be. Written by
# `cargo xtask init` from the dependencies the repository had then;
# `cargo xtask scan` runs every section.

[graph]
# The image's target only: crates for other platforms never ship.
targets = ["x86_64-unknown-linux-gnu"]

[advisories]
# Every advisory denies. An exception is an entry with its reason:
# {{ id = "RUSTSEC-…", reason = "…" }}.
ignore = []

[licenses]
# The licenses the dependencies declared when this file was written, each
# with the crates that use it. Keep those your policy accepts; a crate under
# a license left out fails `scan`, naming it.
allow = [
{allow}]
confidence-threshold = 0.93

[licenses.private]
# The repository's own unpublished crates.
ignore = true

[bans]
multiple-versions = "warn"
wildcards = "deny"
allow-wildcard-paths = true

[sources]
unknown-registry = "deny"
unknown-git = "deny"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_license_of_an_expression_is_listed_with_its_crates() {
        let package = |name: &str, license: Option<&str>| Package {
            name: name.into(),
            id: name.into(),
            manifest_path: "Cargo.toml".into(),
            dependencies: Vec::new(),
            targets: Vec::new(),
            repository: None,
            license: license.map(Into::into),
        };
        let packages = [
            package("a", Some("MIT OR Apache-2.0")),
            package("b", Some("(MIT AND BSD-3-Clause)")),
            package("c", Some("Apache-2.0 WITH LLVM-exception")),
            package("own", None),
        ];
        let found = licenses(&packages);
        assert_eq!(found["MIT"], ["a", "b"]);
        assert_eq!(found["BSD-3-Clause"], ["b"]);
        assert!(!found.contains_key("LLVM-exception"));
        assert_eq!(found["Apache-2.0"], ["a", "c"]);
        let text = text(&found);
        let parsed: toml::Table = text.parse().unwrap();
        let allow = parsed["licenses"]["allow"].as_array().unwrap();
        assert!(allow.iter().any(|id| id.as_str() == Some("Apache-2.0")));
    }
}

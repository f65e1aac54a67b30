//! `cargo metadata`'s answer, as the commands read it: the workspace's
//! packages with their targets, dependencies, repository and license.

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct CargoMetadata {
    pub packages: Vec<Package>,
    pub workspace_members: Vec<String>,
    pub workspace_root: PathBuf,
}

#[derive(Debug, Deserialize)]
pub struct Package {
    pub name: String,
    pub id: String,
    pub manifest_path: PathBuf,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    pub targets: Vec<Target>,
    /// The package's `repository`, inherited from the workspace or its own.
    #[serde(default)]
    pub repository: Option<String>,
    /// Its `license` expression as written.
    #[serde(default)]
    pub license: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Target {
    #[serde(default)]
    pub name: String,
    pub kind: Vec<String>,
    pub src_path: PathBuf,
}

#[derive(Debug, Deserialize)]
pub struct Dependency {
    pub name: String,
    /// Set for path dependencies.
    pub path: Option<PathBuf>,
    /// `null` for normal dependencies, `"dev"` or `"build"`.
    pub kind: Option<String>,
}

impl CargoMetadata {
    pub fn parse(json: &str) -> anyhow::Result<CargoMetadata> {
        serde_json::from_str(json).context("cannot parse `cargo metadata`'s output")
    }

    /// The workspace's own packages.
    pub fn members(&self) -> impl Iterator<Item = &Package> {
        self.packages
            .iter()
            .filter(|p| self.workspace_members.contains(&p.id))
    }
}

impl Package {
    /// The names of its binaries.
    pub fn binaries(&self) -> impl Iterator<Item = &str> {
        self.targets
            .iter()
            .filter(|t| t.kind.iter().any(|k| k == "bin"))
            .map(|t| t.name.as_str())
    }
}

//! SLSA v1 provenance of an image build: an in-toto statement whose subject
//! is the image's manifest digest, and whose predicate says what was built
//! from what, by what.
//!
//! BuildKit's own provenance records the build's times and ids, so builds
//! run with `--provenance=false` to keep their digests reproducible; this
//! one is made beside the image instead. It holds no wall-clock time and no
//! invocation id: two builds of one commit give the same bytes. `image`
//! records each build's [`Recipe`], `publish` attests
//! the statement for the digest it pushed, and `reproducible` writes one
//! for each of its two builds and compares them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xshell::Shell;

use crate::docker::Docker;

/// in-toto's statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// SLSA provenance v1's predicate type, as `cosign attest --type
/// slsaprovenance1` writes it.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// What the build type means is in docs/supply-chain.md ("Provenance").
pub const BUILD_TYPE: &str = "urn:cargo-xtask:image-build:v1";

/// What one build was made from and by: everything but the image's digest,
/// which only the export or the push knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    /// The repository's URL, as the image's source label has it (may be
    /// empty when the repository has no remote).
    pub source: String,
    /// The full commit id of HEAD.
    pub commit: String,
    /// Whether the work tree had no changes.
    pub clean: bool,
    /// SHA-256 of Cargo.lock, hex.
    pub cargo_lock_sha256: String,
    /// The base images by role (`builder`, `runtime`, `vendor`).
    pub bases: Vec<Base>,
    /// The Dockerfile's build arguments, as passed.
    pub build_args: BTreeMap<String, String>,
    pub xtask_version: String,
    /// The engine's version, and BuildKit's when the builder reports it.
    pub engine: String,
    pub buildkit: Option<String>,
    /// `buildx (docker driver)` and the like.
    pub builder: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub role: String,
    pub reference: String,
    /// `sha256:…`: the registry digest when the engine has one, else the
    /// image id (the stand-ins of `--offline`, whose tags carry their
    /// content keys). None for a stage of the Dockerfile (`minimal`).
    pub digest: Option<String>,
}

impl Base {
    /// A base as the engine knows it.
    pub fn resolve(sh: &Shell, docker: &Docker, role: &str, reference: &str) -> Base {
        let digest = docker.inspect_image(sh, reference).ok().map(|image| {
            image
                .repo_digests
                .as_ref()
                .and_then(|digests| digests.first())
                .and_then(|d| d.split_once('@').map(|(_, digest)| digest.to_owned()))
                .unwrap_or(image.id)
        });
        Base {
            role: role.to_owned(),
            reference: reference.to_owned(),
            digest,
        }
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// `sha256:abc…` as in-toto's digest set, `{"sha256": "abc…"}`.
fn digest_set(digest: &str) -> Value {
    match digest.split_once(':') {
        Some((algorithm, hex)) => json!({ algorithm: hex }),
        None => json!({ "sha256": digest }),
    }
}

/// The SLSA v1 predicate.
pub fn predicate(recipe: &Recipe) -> Value {
    let mut dependencies = vec![json!({
        "uri": format!("git+{}@{}", recipe.source, recipe.commit),
        "digest": {"gitCommit": recipe.commit},
        "annotations": {"clean": recipe.clean},
    })];
    dependencies.push(json!({
        "name": "Cargo.lock",
        "digest": {"sha256": recipe.cargo_lock_sha256},
    }));
    for base in &recipe.bases {
        let mut entry = json!({"name": base.role, "uri": base.reference});
        if let Some(digest) = &base.digest {
            entry["digest"] = digest_set(digest);
        }
        dependencies.push(entry);
    }
    let mut version = json!({"engine": recipe.engine});
    if let Some(buildkit) = &recipe.buildkit {
        version["buildkit"] = json!(buildkit);
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "source": {"uri": recipe.source, "revision": recipe.commit},
                "buildArgs": recipe.build_args,
            },
            "internalParameters": {"xtask": recipe.xtask_version},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {
                "id": format!("urn:cargo-xtask:builder:{}", recipe.builder),
                "version": version,
            },
            "metadata": {},
        },
    })
}

/// The in-toto statement about the image `name` at `digest`.
pub fn statement(name: &str, digest: &str, recipe: &Recipe) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": digest_set(digest)}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate(recipe),
    })
}

/// Writes pretty JSON with a final newline: the same value, the same bytes.
pub fn write(path: &Path, value: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Recipe {
        Recipe {
            source: "https://github.com/example/server-image".into(),
            commit: "cd8af26aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            clean: true,
            cargo_lock_sha256: "ab".repeat(32),
            bases: vec![
                Base {
                    role: "builder".into(),
                    reference: "xtask-offline/builder:c109717842467165".into(),
                    digest: Some(format!("sha256:{}", "01".repeat(32))),
                },
                Base {
                    role: "runtime".into(),
                    reference: "minimal".into(),
                    digest: None,
                },
            ],
            build_args: [("PACKAGE", "server"), ("PROFILE", "release")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            xtask_version: "0.1.0".into(),
            engine: "26.1.5+dfsg1".into(),
            buildkit: Some("v0.13.1".into()),
            builder: "buildx/docker".into(),
        }
    }

    #[test]
    fn the_statement_names_the_digest_and_holds_no_clock() {
        let statement = statement("server", &format!("sha256:{}", "9f".repeat(32)), &example());
        insta::assert_snapshot!(serde_json::to_string_pretty(&statement).unwrap());
        let text = statement.to_string();
        for clock in ["startedOn", "finishedOn", "invocationId"] {
            assert!(!text.contains(clock), "{clock} in {text}");
        }
    }

    #[test]
    fn digests_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.lock");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_of(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

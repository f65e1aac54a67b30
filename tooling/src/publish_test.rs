//! `cargo xtask publish-test`: `publish` against a registry started on
//! loopback, with a key pair made for the run, and what it claims proved
//! from outside:
//!
//! 1. `registry.rs`: Debian's `docker-registry` on a free loopback port;
//! 2. `cosign generate-key-pair` twice: the signing pair and a stranger;
//! 3. `publish` with the first key: push, sign, attest, verify;
//! 4. the registry's tag list holds the version and `sha-` tags, not
//!    `latest`;
//! 5. verification by tag passes with the key, and fails with the
//!    stranger's: a check that cannot fail proves nothing.
//!
//! The registry, its storage and the local tags are removed after, also
//! on failure.

mod registry;

use std::path::{Path, PathBuf};

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::checks::{Check, Verdict};
use crate::cosign::{self, Cosign, Signer};
use crate::docker::Docker;
use crate::flags;
use crate::metadata::Metadata;
use crate::output;
use crate::process;
use crate::tools::{self, Tool};
use registry::Registry;

impl flags::PublishTest {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let registry_program = tools::require(sh, Tool::Registry)?.path;
        let cosign = tools::require(sh, Tool::Cosign)?.path;
        let docker = Docker::connect(sh)?;
        let dir = root.join("target/xtask/publish-test");
        sh.remove_path(&dir)
            .with_context(|| format!("cannot clear {}", dir.display()))?;
        sh.create_dir(&dir)?;

        let registry = Registry::start(&registry_program, &dir.join("registry"))?;
        eprintln!("publish-test: registry on {}", registry.addr);
        let keys = dir.join("keys");
        let signing = key_pair(sh, &cosign, &keys, "signing")?;
        let stranger = key_pair(sh, &cosign, &keys, "stranger")?;
        let repository = format!("{}/{}", registry.addr, metadata.image);
        // The key pairs have no password; cosign reads it from here.
        sh.set_var("COSIGN_PASSWORD", "");

        let published = flags::Publish {
            registry: registry.addr.to_string(),
            image: self.image.clone(),
            latest: false,
            key: Some(signing.display().to_string()),
            public_key: None,
            keyless: false,
            platform: None,
        }
        .run(sh, metadata);
        let outcome = published.and_then(|verdict| {
            let mut proofs = prove(
                sh,
                &cosign,
                &registry,
                metadata,
                &verdict,
                (&signing, &stranger),
            )?;
            proofs.extend(multi_platform(
                sh,
                metadata,
                &registry,
                &signing,
                self.image.as_deref(),
            )?);
            Ok((verdict, proofs))
        });
        remove_local_tags(sh, &docker, &repository);
        drop(registry);
        let (published, proofs) = outcome?;

        let mut checks = published.checks.clone();
        checks.extend(proofs);
        Ok(Verdict {
            text: published.text.clone(),
            headline: published.headline.clone(),
            checks,
            ..Verdict::new("publish-test", repository)
        })
    }
}

/// A cosign key pair with an empty password; returns the private key's path.
fn key_pair(sh: &Shell, cosign: &Path, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    sh.create_dir(dir)?;
    let _dir = sh.push_dir(dir);
    process::run(
        cmd!(sh, "{cosign} generate-key-pair --output-key-prefix {name}")
            .env("COSIGN_PASSWORD", ""),
    )
    .with_context(|| format!("cosign could not make the {name} key pair"))?;
    Ok(dir.join(format!("{name}.key")))
}

/// What the registry holds, judged from outside `publish`.
fn prove(
    sh: &Shell,
    cosign: &Path,
    registry: &Registry,
    metadata: &Metadata,
    published: &Verdict,
    (signing, stranger): (&Path, &Path),
) -> anyhow::Result<Vec<Check>> {
    let details = &published.details;
    let digest = details["digest"].as_str().unwrap_or_default().to_owned();
    let pushed: Vec<String> = details["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    let held = registry.tags(&metadata.image)?;
    // cosign stores signatures and attestations as `sha256-<hex>.sig|.att`.
    let (cosign_tags, ours): (Vec<&String>, Vec<&String>) =
        held.iter().partition(|tag| tag.starts_with("sha256-"));
    let mut checks = vec![Check::judge(
        "registry holds the tags",
        pushed.iter().all(|tag| held.contains(tag)) && !held.iter().any(|t| t == "latest"),
        format!(
            "{}, and {} cosign tags",
            ours.iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            cosign_tags.len()
        ),
        format!("{} and no latest", pushed.join(" ")),
    )];
    let by_tag = format!(
        "{}/{}:{}",
        registry.addr,
        metadata.image,
        pushed.first().map_or("", String::as_str)
    );
    let signer = Signer::key(&signing.display().to_string(), None)?;
    let with_key = Cosign {
        program: cosign,
        signer: &signer,
        insecure: true,
        recursive: false,
    };
    checks.push(cosign::signature_check(
        "verified by tag",
        sh,
        &with_key,
        &by_tag,
        &digest,
    ));
    let stranger_signer = Signer::key(&stranger.display().to_string(), None)?;
    let with_stranger = Cosign {
        program: cosign,
        signer: &stranger_signer,
        insecure: true,
        recursive: false,
    };
    let refused = with_stranger.verify(sh, &by_tag);
    checks.push(Check::judge(
        "another key is refused",
        refused.is_err(),
        match &refused {
            Ok(digests) => format!("verified {}", digests.join(", ")),
            Err(_) => "refused".to_owned(),
        },
        format!(
            "the signature of {} fails with a stranger's key",
            output::digest(&digest)
        ),
    ));
    Ok(checks)
}

/// `publish --platform` of this host's platform and its `v2` variant, both
/// of which run here: the image published above (`--image`, else the last
/// build) made again for each, one index pushed, signed and verified.
/// Skipped, with the reason, where no builder can export an OCI archive.
fn multi_platform(
    sh: &Shell,
    metadata: &Metadata,
    registry: &Registry,
    signing: &Path,
    image: Option<&str>,
) -> anyhow::Result<Vec<Check>> {
    const NAME: &str = "multi-platform index";
    let platforms = format!("{0},{0}/v2", crate::docker::host_platform());
    let expected = format!("one signed index of {platforms}");
    if let Err(reason) = crate::docker::build::choose_engine(&sh.clone()) {
        return Ok(vec![Check::skipped(NAME, expected, format!("{reason:#}"))]);
    }
    let verdict = flags::Publish {
        registry: registry.addr.to_string(),
        image: image.map(str::to_owned),
        latest: false,
        key: Some(signing.display().to_string()),
        public_key: None,
        keyless: false,
        platform: Some(platforms.clone()),
    }
    .run(sh, metadata)?;
    let skopeo = tools::require(sh, Tool::Skopeo)?.path;
    let version = verdict.details["tags"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reference = format!("docker://{}/{}:{version}", registry.addr, metadata.image);
    let raw = process::read(cmd!(
        sh,
        "{skopeo} inspect --raw --tls-verify=false {reference}"
    ))
    .with_context(|| format!("cannot read the manifest of {reference}"))?;
    let served: serde_json::Value =
        serde_json::from_str(&raw).context("the registry served a manifest that is not JSON")?;
    let served_platforms: Vec<String> = served["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let p = &m["platform"];
            let variant = p["variant"]
                .as_str()
                .map(|v| format!("/{v}"))
                .unwrap_or_default();
            format!(
                "{}/{}{variant}",
                p["os"].as_str().unwrap_or("?"),
                p["architecture"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let mut checks: Vec<Check> = verdict
        .checks
        .into_iter()
        .map(|check| Check {
            name: format!("{NAME}: {}", check.name),
            ..check
        })
        .collect();
    checks.push(Check::judge(
        format!("{NAME}: served"),
        served_platforms.join(",") == platforms,
        served_platforms.join(", "),
        expected,
    ));
    Ok(checks)
}

/// The tags `publish` made in the local engine point at the registry,
/// which is gone after the test.
fn remove_local_tags(sh: &Shell, docker: &Docker, repository: &str) {
    if let Ok(tags) = docker.tags_of(sh, repository) {
        // Each is `repository:tag`.
        for tag in tags {
            let _ = docker.remove_image(sh, &tag);
        }
    }
}

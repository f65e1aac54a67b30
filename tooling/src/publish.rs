//! `cargo xtask publish`: the last built image pushed to a registry under
//! its tags, signed with cosign, its SBOM attached as a signed SPDX
//! attestation and its ignores as a signed `OpenVEX` one, and all three
//! verified after the push.
//!
//! 0. the build's SLSA provenance recipe, which `image` recorded in
//!    target/xtask/image.json for the image it built (`provenance.rs`);
//! 1. tags: `<registry>/<image>:<version>` and `:sha-<short revision>`,
//!    `:latest` only with `--latest`; a build from a work tree with changes
//!    is refused, since its revision names no commit;
//! 2. `docker push` of each tag; every tag must land on one digest;
//! 3. `cosign sign`, `cosign attest --type spdxjson`, `--type openvex` and
//!    `--type slsaprovenance1` by digest, never by tag (`cosign.rs`). The
//!    `OpenVEX` document and the provenance statement are made here, since
//!    their subject is the digest just pushed;
//! 4. `cosign verify` and `cosign verify-attestation`: the signature and
//!    each statement must name the digest pushed.
//!
//! With `--platform A,B`, 2 is a build for each platform into one index,
//! pushed with skopeo (`publish/multi_platform.rs`), and 3 signs the index
//! and each platform's manifest.

pub mod multi_platform;

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

use crate::checks::{Check, Verdict};
use crate::cosign::{self, Cosign, Signer};
use crate::docker::Docker;
use crate::flags;
use crate::last_build::{self, ImageReport};
use crate::metadata::Metadata;
use crate::output;
use crate::provenance::{self, Recipe};
use crate::sbom;
use crate::tools::{self, Tool};
use crate::vex;

const VERSION_LABEL: &str = "org.opencontainers.image.version";
const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// SPDX's in-toto predicate type, as `cosign attest --type spdxjson` writes it.
const SPDX_PREDICATE: &str = "https://spdx.dev/Document";

#[derive(Debug, Serialize)]
struct Report {
    repository: String,
    tags: Vec<String>,
    digest: String,
    signer: String,
    sbom: String,
    openvex: String,
    provenance: String,
}

impl flags::Publish {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let signer = self.signer(sh)?;
        let program = tools::require(sh, Tool::Cosign)?.path;
        let docker = Docker::connect(sh)?;
        let image = last_build::resolve(&root, self.image.as_deref())?;
        let inspect = docker.inspect_image(sh, &image.reference)?;
        // What `image` recorded of this image's build: its provenance
        // recipe, and the options `--platform` builds it again with.
        let build = ImageReport::load_of(&root, &inspect.id, &image.reference)?;
        let label = |name: &str| {
            inspect
                .label(name)
                .map(str::to_owned)
                .with_context(|| format!("{} has no {name} label to tag it by", image.name))
        };
        let tags = tags(&label(VERSION_LABEL)?, &label(REVISION_LABEL)?, self.latest)?;
        let recipe = build.recipe.clone().with_context(|| {
            format!(
                "no provenance is recorded for {}: it was built by an older xtask; build it again with `cargo xtask image`",
                image.reference
            )
        })?;
        // Registries take lower-case repository names only.
        let repository = format!("{}/{}", self.registry.trim_end_matches('/'), metadata.image)
            .to_ascii_lowercase();

        let insecure = is_loopback(&self.registry);
        let (digest, pushed) = if let Some(platforms) = &self.platform {
            let pushed = multi_platform::push(
                sh,
                metadata,
                &build,
                platforms,
                (&repository, &tags),
                insecure,
            )?;
            (pushed.digest, pushed.check)
        } else {
            eprintln!("publish: pushing {} tags to {repository}", tags.len());
            let digests = push(sh, &docker, &image.reference, &repository, &tags)?;
            let digest = digests[0].clone();
            let check = Check::judge(
                "pushed",
                digests.iter().all(|d| *d == digest),
                format!("{} tags at {}", tags.len(), output::digest(&digest)),
                "every tag at one digest",
            );
            (digest, check)
        };
        let mut checks = vec![pushed];
        if checks[0].failed() {
            return Ok(verdict(
                checks,
                &repository,
                &tags,
                &digest,
                &signer,
                ("", "", ""),
            ));
        }
        let subject = format!("{repository}@{digest}");
        let cosign = Cosign {
            program: &program,
            signer: &signer,
            insecure,
            // An index is signed with each platform's manifest.
            recursive: self.platform.is_some(),
        };

        eprintln!("publish: signing {subject}");
        // A failure here is an error; what proves the signing is the
        // verification below, against what the registry serves.
        cosign.sign(sh, &subject)?;
        let attested = attest(
            sh,
            &cosign,
            metadata,
            &image,
            (&repository, &digest),
            &recipe,
        )?;
        github_output(sh, &repository, &digest)?;

        eprintln!("publish: verifying what the registry serves");
        checks.extend(verify(sh, &cosign, &subject, &digest));
        checks.push(provenance_check(
            sh,
            &cosign,
            &subject,
            &digest,
            &provenance::predicate(&recipe),
        ));
        Ok(verdict(
            checks,
            &repository,
            &tags,
            &digest,
            &signer,
            (
                &output::relative(&root, &attested.sbom),
                &output::relative(&root, &attested.openvex),
                &output::relative(&root, &attested.provenance),
            ),
        ))
    }
}

/// The files attested, each kept under target/xtask/.
struct Attested {
    sbom: std::path::PathBuf,
    openvex: std::path::PathBuf,
    provenance: std::path::PathBuf,
}

/// The SPDX SBOM, the `OpenVEX` document and the SLSA provenance, each
/// attested to the digest pushed.
fn attest(
    sh: &Shell,
    cosign: &Cosign<'_>,
    metadata: &Metadata,
    image: &last_build::ImageRef,
    (repository, digest): (&str, &str),
    recipe: &Recipe,
) -> anyhow::Result<Attested> {
    let root = sh.current_dir();
    let subject = format!("{repository}@{digest}");
    let sbom = sbom::make(sh, &root, metadata, image)?.spdx;
    eprintln!("publish: attesting {}", output::relative(&root, &sbom));
    cosign.attest(sh, &subject, &sbom, "spdxjson")?;

    let openvex = openvex(sh, &root, metadata, repository, digest)?;
    eprintln!("publish: attesting {}", output::relative(&root, &openvex));
    cosign.attest(sh, &subject, &openvex, "openvex")?;

    let (provenance, predicate) = provenance_files(&root, repository, digest, recipe)?;
    eprintln!(
        "publish: attesting {}",
        output::relative(&root, &provenance)
    );
    cosign.attest(sh, &subject, &predicate, "slsaprovenance1")?;
    Ok(Attested {
        sbom,
        openvex,
        provenance,
    })
}

/// In a GitHub workflow step, the outputs `repository` and `digest`, for
/// the steps after it (actions/attest-build-provenance).
fn github_output(sh: &Shell, repository: &str, digest: &str) -> anyhow::Result<()> {
    let Some(path) = sh.var_os("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("cannot open GITHUB_OUTPUT ({})", path.display()))?;
    std::io::Write::write_all(
        &mut file,
        format!("repository={repository}\ndigest={digest}\n").as_bytes(),
    )
    .with_context(|| format!("cannot write GITHUB_OUTPUT ({})", path.display()))
}

impl flags::Publish {
    fn signer(&self, sh: &Shell) -> anyhow::Result<Signer> {
        let signer = match (&self.key, self.keyless) {
            (Some(key), false) => Signer::key(key, self.public_key.as_deref())?,
            (None, true) => Signer::github_keyless()?,
            (Some(_), true) => anyhow::bail!("give --key or --keyless, not both"),
            (None, false) => anyhow::bail!(
                "publishing signs the image: give --key FILE (a cosign key pair) or --keyless (in a GitHub workflow with `id-token: write`)"
            ),
        };
        if matches!(signer, Signer::Key { .. }) && sh.var_os("COSIGN_PASSWORD").is_none() {
            // cosign would prompt for it, and fail without a terminal.
            anyhow::bail!(
                "set COSIGN_PASSWORD to the key's password (empty for a key without one)"
            );
        }
        Ok(signer)
    }
}

/// The provenance statement about the digest pushed, and its predicate
/// alone, which is what cosign attests, under target/xtask/publish/.
fn provenance_files(
    root: &std::path::Path,
    repository: &str,
    digest: &str,
    recipe: &Recipe,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    // Not `with_extension`: a registry's address has dots of its own.
    let dir = root.join("target/xtask/publish");
    let stem = repository.replace(['/', ':'], "-");
    let statement = dir.join(format!("{stem}.provenance.json"));
    let predicate = dir.join(format!("{stem}.provenance-predicate.json"));
    provenance::write(
        &statement,
        &provenance::statement(repository, digest, recipe),
    )?;
    provenance::write(&predicate, &provenance::predicate(recipe))?;
    Ok((statement, predicate))
}

/// The provenance the registry serves: signed, about the digest pushed,
/// and the predicate written here, field for field.
fn provenance_check(
    sh: &Shell,
    cosign: &Cosign<'_>,
    subject: &str,
    digest: &str,
    predicate: &serde_json::Value,
) -> Check {
    let name = "provenance verified";
    let expected = format!(
        "a valid SLSA v1 provenance statement about {}, the one written here",
        output::digest(digest)
    );
    match cosign.verify_attestation(sh, subject, "slsaprovenance1") {
        Ok(statements) => {
            let about: Vec<_> = statements
                .iter()
                .filter(|s| {
                    s.predicate_type == provenance::PREDICATE_TYPE
                        && s.subject_digests.iter().any(|d| d == digest)
                })
                .collect();
            let same = about.iter().any(|s| s.predicate == *predicate);
            Check::judge(
                name,
                same,
                format!("{} statement(s) about the digest", about.len()),
                expected,
            )
            .because(if about.is_empty() {
                format!(
                    "none of the {} statement(s) is about {digest}",
                    statements.len()
                )
            } else {
                "the verified predicate is not the one written here".to_owned()
            })
        }
        Err(error) => Check::judge(name, false, "no", expected).because(format!("{error:#}")),
    }
}

/// The ignore file (`[workspace.metadata.xtask.scan] ignore-file`; absent:
/// no statements) as an `OpenVEX` document about the digest pushed, under
/// target/xtask/publish/.
fn openvex(
    sh: &Shell,
    root: &std::path::Path,
    metadata: &Metadata,
    repository: &str,
    digest: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let ignore_file = root.join(&metadata.scan.ignore_file);
    let path = root.join("target/xtask/publish").join(format!(
        "{}.openvex.json",
        repository.replace(['/', ':'], "-")
    ));
    vex::write(
        sh,
        ignore_file.is_file().then_some(ignore_file.as_path()),
        &vex::image_purl(repository, digest),
        &format!("the maintainers of {}", metadata.image),
        &path,
    )?;
    Ok(path)
}

/// Tags and pushes each tag; the digests the registry reported, in order.
fn push(
    sh: &Shell,
    docker: &Docker,
    image: &str,
    repository: &str,
    tags: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut digests = Vec::new();
    for tag in tags {
        let reference = format!("{repository}:{tag}");
        docker.output(sh, ["tag", image, reference.as_str()])?;
        let pushed = docker
            .output(sh, ["push", reference.as_str()])
            .with_context(|| format!("cannot push {reference}"))?;
        digests.push(
            pushed_digest(&pushed)
                .with_context(|| format!("`docker push {reference}` reported no digest"))?,
        );
    }
    Ok(digests)
}

/// The signature and the SBOM and `OpenVEX` attestations, verified against
/// what the registry serves: each must name the digest pushed.
fn verify(sh: &Shell, cosign: &Cosign<'_>, subject: &str, digest: &str) -> Vec<Check> {
    let signature = cosign::signature_check("signature verified", sh, cosign, subject, digest);
    let attested = |name: &str, kind: &str, what: &str, predicate: &str| match cosign
        .verify_attestation(sh, subject, kind)
    {
        Ok(statements) => {
            let matching = statements.iter().any(|statement| {
                statement.predicate_type == predicate
                    && statement.subject_digests.iter().any(|d| d == digest)
            });
            Check::judge(
                name,
                matching,
                format!("{} {what} statement(s)", statements.len()),
                format!("a valid {what} statement about {}", output::digest(digest)),
            )
        }
        Err(error) => Check::judge(name, false, "no", format!("a valid {what} statement"))
            .because(format!("{error:#}")),
    };
    vec![
        signature,
        attested("attestation verified", "spdxjson", "SPDX", SPDX_PREDICATE),
        attested(
            "OpenVEX attestation verified",
            "openvex",
            "OpenVEX",
            vex::PREDICATE,
        ),
    ]
}

fn verdict(
    checks: Vec<Check>,
    repository: &str,
    tags: &[String],
    digest: &str,
    signer: &Signer,
    (sbom, openvex, provenance): (&str, &str, &str),
) -> Verdict {
    let report = Report {
        repository: repository.to_owned(),
        tags: tags.to_vec(),
        digest: digest.to_owned(),
        signer: signer_name(signer),
        sbom: sbom.to_owned(),
        openvex: openvex.to_owned(),
        provenance: provenance.to_owned(),
    };
    Verdict {
        text: format!(
            "published {repository}\n  tags     {}\n  digest   {digest}\n  signer   {}\n",
            tags.join(" "),
            report.signer
        ),
        headline: format!("{} tags, signed, {}", tags.len(), output::digest(digest)),
        checks,
        ..Verdict::new("publish", repository.to_owned()).with_details(report)
    }
}

/// Version and commit tags; `latest` only when asked, since it moves.
fn tags(version: &str, revision: &str, latest: bool) -> anyhow::Result<Vec<String>> {
    if revision.ends_with("-dirty") {
        anyhow::bail!(
            "the image was built from a work tree with changes ({revision}): commit, rebuild, then publish"
        );
    }
    let short: String = revision.chars().take(7).collect();
    let mut tags = vec![version.to_owned(), format!("sha-{short}")];
    if latest {
        tags.push("latest".to_owned());
    }
    Ok(tags)
}

/// `docker push` ends with `<tag>: digest: sha256:… size: N`.
fn pushed_digest(output: &str) -> Option<String> {
    output.lines().rev().find_map(|line| {
        let rest = line.split_once("digest: ")?.1;
        let digest = rest.split_whitespace().next()?;
        digest.starts_with("sha256:").then(|| digest.to_owned())
    })
}

/// A registry on this machine speaks plain HTTP, as docker allows for
/// loopback.
fn is_loopback(registry: &str) -> bool {
    let host = registry.split('/').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(host, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            host
        } else {
            registry
        }
    });
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

fn signer_name(signer: &Signer) -> String {
    match signer {
        Signer::Key { public, .. } => format!("key, verified with {}", public.display()),
        Signer::Keyless { identity, .. } => format!("keyless, {identity}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_the_version_and_the_commit_and_latest_only_when_asked() {
        assert_eq!(
            tags("1.2.0", "cd8af26aaaa", false).unwrap(),
            ["1.2.0", "sha-cd8af26"]
        );
        assert_eq!(
            tags("1.2.0", "cd8af26aaaa", true).unwrap(),
            ["1.2.0", "sha-cd8af26", "latest"]
        );
        let error = tags("1.2.0", "cd8af26aaaa-dirty", false).unwrap_err();
        assert!(error.to_string().contains("changes"), "{error}");
    }

    #[test]
    fn reads_the_digest_docker_push_reports() {
        let output = "The push refers to repository [127.0.0.1:5055/server]\n73a56e90fff6: Pushed\n0.1.0: digest: sha256:a6a8b0b3 size: 946\n";
        assert_eq!(pushed_digest(output).as_deref(), Some("sha256:a6a8b0b3"));
        assert_eq!(pushed_digest("denied: requested access"), None);
    }

    #[test]
    fn only_loopback_registries_are_spoken_to_over_http() {
        assert!(is_loopback("127.0.0.1:5055"));
        assert!(is_loopback("localhost:5000/team"));
        assert!(!is_loopback("ghcr.io/acme"));
        assert!(!is_loopback("registry.example:5000"));
    }
}

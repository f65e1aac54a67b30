//! The ignore file's vulnerabilities as an `OpenVEX` v0.2.0 document: `scan`
//! writes it beside its reports, `publish` attests it to the digest it
//! pushed, and a downstream `trivy image --vex` applies it without our
//! ignore file.
//!
//! Each entry is one statement about the image:
//! - in force: `not_affected`, its statement as the `impact_statement`,
//!   and its `justification` when it gives one;
//! - expired (on or before the document's date): `affected`, with an
//!   `action_statement`, since the ignore no longer holds.
//!
//! The product is `pkg:oci/<name>@<manifest digest>` with no qualifiers:
//! trivy gives a scanned image the purl
//! `pkg:oci/<name>@<digest>?arch=…&repository_url=…` from its registry
//! digest, and a product without qualifiers matches it from any registry.
//! An entry's `purls` become the product's subcomponents, which match the
//! packages trivy finds (`pkg:deb/debian/libc6` matches every version and
//! architecture of it); an entry without purls covers the whole image.
//!
//! No clock: the timestamp is the commit's (or `SOURCE_DATE_EPOCH`), and
//! the `@id` a UUID derived from the rest, so one commit gives the same
//! bytes.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

use crate::git;
use crate::ignores::{self, Ignore};

pub const CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

/// The in-toto predicate type `cosign attest --type openvex` writes.
pub const PREDICATE: &str = "https://openvex.dev/ns";

#[derive(Debug, Serialize)]
pub struct Document {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "@id")]
    id: String,
    author: String,
    timestamp: String,
    version: u32,
    tooling: &'static str,
    statements: Vec<Claim>,
}

#[derive(Debug, Serialize)]
struct Claim {
    vulnerability: Vulnerability,
    products: Vec<Product>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impact_statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_statement: Option<String>,
}

#[derive(Debug, Serialize)]
struct Vulnerability {
    name: String,
}

#[derive(Debug, Serialize)]
struct Product {
    #[serde(rename = "@id")]
    id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subcomponents: Vec<Component>,
}

#[derive(Debug, Serialize)]
struct Component {
    #[serde(rename = "@id")]
    id: String,
}

/// The image as trivy names it: the repository's last path segment, lower
/// case, at the manifest digest.
pub fn image_purl(repository: &str, digest: &str) -> String {
    let repository = repository.split('@').next().unwrap_or(repository);
    // A `:` after the last `/` starts a tag; before it, a registry's port.
    let last = repository.rsplit('/').next().unwrap_or(repository);
    let name = last.split(':').next().unwrap_or(last);
    format!("pkg:oci/{}@{digest}", name.to_ascii_lowercase())
}

/// The document for `product` (an image purl) from the ignores'
/// vulnerabilities, dated `epoch` (seconds since the Unix epoch).
pub fn document(ignores: &[Ignore], product: &str, author: &str, epoch: i64) -> Document {
    let timestamp = git::rfc3339_utc(epoch);
    let today = &timestamp[..10];
    let statements = ignores
        .iter()
        .filter(|ignore| ignore.section == "vulnerabilities")
        .map(|ignore| statement(ignore, product, today))
        .collect();
    let mut document = Document {
        context: CONTEXT,
        id: String::new(),
        author: author.to_owned(),
        timestamp,
        version: 1,
        tooling: "cargo xtask",
        statements,
    };
    // Serialising a document of ours cannot fail; the id is of its content.
    let content = serde_json::to_string(&document).unwrap_or_default();
    document.id = format!(
        "urn:uuid:{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, content.as_bytes())
    );
    document
}

fn statement(ignore: &Ignore, product: &str, today: &str) -> Claim {
    let expired = ignore.expired(today);
    Claim {
        vulnerability: Vulnerability {
            name: ignore.id.clone(),
        },
        products: vec![Product {
            id: product.to_owned(),
            subcomponents: ignore
                .purls
                .iter()
                .map(|purl| Component { id: purl.clone() })
                .collect(),
        }],
        status: if expired { "affected" } else { "not_affected" },
        justification: if expired {
            None
        } else {
            ignore.justification.clone()
        },
        impact_statement: (!expired).then(|| ignore.statement.clone()),
        action_statement: expired.then(|| {
            format!(
                "the ignore expired on {}: fix it, or review it and renew the ignore (it said: {})",
                ignore.expired_at.as_deref().unwrap_or_default(),
                ignore.statement
            )
        }),
    }
}

/// Writes the document for `product` from the ignore file (none: no
/// statements) to `path`, dated by the commit.
pub fn write(
    sh: &Shell,
    ignore_file: Option<&Path>,
    product: &str,
    author: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let ignores = match ignore_file {
        Some(file) => ignores::load(file)?,
        None => Vec::new(),
    };
    let epoch = git::source_date_epoch(sh).context("cannot date the OpenVEX document")?;
    let document = document(&ignores, product, author, epoch);
    let text = serde_json::to_string_pretty(&document)? + "\n";
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:3abc56f6b18310c8819aa8190f7ed619813426179ac59c078751df68d7978d5f";

    fn example() -> Vec<Ignore> {
        ignores::parse(
            "vulnerabilities:
  - id: CVE-2099-1001
    purls: [pkg:deb/debian/libc6]
    expired_at: 2099-12-31
    justification: vulnerable_code_not_in_execute_path
    statement: the server never calls the flawed function
  - id: CVE-2099-1002
    purls: [pkg:deb/debian/libssl3t64, pkg:deb/debian/openssl-provider-legacy]
    expired_at: 2026-01-31
    statement: the server does not link OpenSSL
  - id: GHSA-2099-aaaa-0002
    statement: no HTTP/2 server is started
misconfigurations:
  - id: DS-0002
    statement: runs as nonroot by USER 65532:65532
",
        )
        .unwrap()
    }

    #[test]
    fn the_document_maps_each_vulnerability_ignore_to_a_statement() {
        let document = document(
            &example(),
            &image_purl("ghcr.io/acme/server", DIGEST),
            "the maintainers of server",
            1_785_000_000,
        );
        insta::assert_snapshot!(
            "openvex_document",
            serde_json::to_string_pretty(&document).unwrap()
        );
    }

    #[test]
    fn one_commit_gives_the_same_bytes_and_another_date_another_id() {
        let product = image_purl("server", DIGEST);
        let one = serde_json::to_string(&document(&example(), &product, "a", 1_785_000_000));
        let again = serde_json::to_string(&document(&example(), &product, "a", 1_785_000_000));
        assert_eq!(one.unwrap(), again.unwrap());
        let other = document(&example(), &product, "a", 1_785_000_001);
        let first = document(&example(), &product, "a", 1_785_000_000);
        assert_ne!(other.id, first.id);
    }

    #[test]
    fn an_ignore_expires_by_the_documents_date_not_the_clock() {
        let product = image_purl("server", DIGEST);
        let status = |epoch| {
            let document = document(&example(), &product, "a", epoch);
            document.statements[1].status
        };
        // 2026-01-30 and 2026-01-31, UTC.
        assert_eq!(status(1_769_731_200), "not_affected");
        assert_eq!(status(1_769_817_600), "affected");
    }

    #[test]
    fn the_image_purl_is_the_repositorys_last_segment_at_the_digest() {
        for repository in [
            "ghcr.io/Acme/Server",
            "127.0.0.1:5000/team/server",
            "server:0.1.0",
            "127.0.0.1:5000/server@sha256:0000",
            "server",
        ] {
            assert_eq!(
                image_purl(repository, "sha256:ab"),
                "pkg:oci/server@sha256:ab",
                "{repository}"
            );
        }
    }
}

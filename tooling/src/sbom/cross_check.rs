//! The SBOM against the scanners' own. syft and trivy read the image's
//! Debian packages as well: every package either lists must be in ours with
//! the same version. They read the service's crates from the list `cargo
//! auditable` put in the binary: three readings of one set (theirs, ours,
//! and the binary's own closure of Cargo.lock) that must agree exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use xshell::{Shell, cmd};

use super::audit::{AuditData, CrateId};
use super::debian::Deb;
use crate::checks::Check;
use crate::process;
use crate::tools::{self, Tool};
use crate::trivy::Trivy;

#[derive(Deserialize)]
struct Bom {
    #[serde(default)]
    components: Vec<Component>,
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(default, rename = "bom-ref")]
    bom_ref: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    properties: Vec<Property>,
}

#[derive(Deserialize)]
struct Property {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct Dependency {
    #[serde(rename = "ref")]
    of: String,
    #[serde(default, rename = "dependsOn")]
    depends_on: Vec<String>,
}

impl Component {
    fn is_crate(&self) -> bool {
        self.purl
            .as_deref()
            .is_some_and(|p| p.starts_with("pkg:cargo/"))
    }
}

/// The Debian packages a CycloneDX document lists: name → version.
pub fn debian_packages(cyclonedx: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let bom: Bom = serde_json::from_str(cyclonedx).context("not a CycloneDX JSON document")?;
    Ok(bom
        .components
        .into_iter()
        .filter(|c| c.purl.as_deref().is_some_and(|p| p.starts_with("pkg:deb/")))
        .map(|c| (c.name, c.version))
        .collect())
}

/// Compares another tool's packages with ours.
pub fn compare(
    tool: &str,
    theirs: &BTreeMap<String, String>,
    ours: &[Deb],
    crates: usize,
) -> Check {
    let differences: Vec<String> = theirs
        .iter()
        .filter_map(
            |(name, version)| match ours.iter().find(|deb| &deb.name == name) {
                Some(deb) if &deb.version == version => None,
                Some(deb) => Some(format!(
                    "{name}: {tool} says {version}, ours {}",
                    deb.version
                )),
                None => Some(format!("{name} {version} is missing from ours")),
            },
        )
        .collect();
    Check::judge(
        format!("agrees with {tool}"),
        differences.is_empty() && !theirs.is_empty(),
        format!(
            "{tool}: {} Debian packages, {} in ours; ours adds {crates} crates",
            theirs.len(),
            theirs.len() - differences.len()
        ),
        format!("every package {tool} lists, same version"),
    )
    .because(if theirs.is_empty() {
        format!("{tool} listed no Debian package")
    } else {
        differences.join("; ")
    })
}

/// syft's CycloneDX of the image, read from the engine.
pub fn syft(sh: &Shell, reference: &str) -> anyhow::Result<String> {
    let syft = tools::require(sh, Tool::Syft)?.path;
    let source = format!("docker:{reference}");
    process::read(cmd!(sh, "{syft} {source} --output cyclonedx-json --quiet"))
        .context("syft cannot read the image")
}

/// trivy's CycloneDX of the image; listing packages needs no database.
pub fn trivy(sh: &Shell, root: &Path, reference: &str) -> anyhow::Result<String> {
    let trivy = Trivy::find(sh, root)?;
    let args: Vec<OsString> = [
        "--skip-db-update",
        "--image-src",
        "docker",
        "--format",
        "cyclonedx",
        reference,
    ]
    .map(OsString::from)
    .to_vec();
    trivy.run(sh, "image", None, &args)
}

/// Runs one scanner and compares; a scanner that fails fails the check.
pub fn check(tool: &str, listed: anyhow::Result<String>, ours: &[Deb], crates: usize) -> Check {
    match listed.and_then(|text| debian_packages(&text)) {
        Ok(theirs) => compare(tool, &theirs, ours, crates),
        Err(error) => Check::broken(
            format!("agrees with {tool}"),
            format!("every package {tool} lists, same version"),
            &error,
        ),
    }
}

/// Why no reading of the image can list the crates of a packed binary.
const PACKED: &str = "the service binary is packed with UPX, which hides its audit data from every scanner: the SBOM, attested with the image, is what carries its crates";

/// The crates a scanner's CycloneDX document reads from the binary at
/// `path`: syft records the file on each crate (`syft:location:N:path`),
/// trivy makes the file an application component whose dependencies, and
/// theirs, are its crates.
pub fn service_crates(
    tool: &str,
    cyclonedx: &str,
    path: &str,
) -> anyhow::Result<BTreeSet<CrateId>> {
    let bom: Bom = serde_json::from_str(cyclonedx)
        .with_context(|| format!("{tool} printed no CycloneDX JSON document"))?;
    let located = |c: &Component| {
        c.properties.iter().any(|p| {
            p.name.starts_with("syft:location:") && p.name.ends_with(":path") && p.value == path
        })
    };
    let mut refs: BTreeSet<&str> = BTreeSet::new();
    let edges: BTreeMap<&str, &[String]> = bom
        .dependencies
        .iter()
        .map(|d| (d.of.as_str(), d.depends_on.as_slice()))
        .collect();
    let mut stack: Vec<&str> = bom
        .components
        .iter()
        .filter(|c| c.kind == "application" && c.name == path.trim_start_matches('/'))
        .map(|c| c.bom_ref.as_str())
        .collect();
    while let Some(reference) = stack.pop() {
        for next in edges.get(reference).copied().unwrap_or_default() {
            if refs.insert(next) {
                stack.push(next);
            }
        }
    }
    Ok(bom
        .components
        .iter()
        .filter(|c| c.is_crate() && (located(c) || refs.contains(c.bom_ref.as_str())))
        .map(|c| (c.name.clone(), c.version.clone()))
        .collect())
}

/// The crates a CycloneDX document lists (`pkg:cargo` components).
pub fn cargo_components(cyclonedx: &str) -> anyhow::Result<BTreeSet<CrateId>> {
    let bom: Bom = serde_json::from_str(cyclonedx).context("not a CycloneDX JSON document")?;
    Ok(bom
        .components
        .into_iter()
        .filter(Component::is_crate)
        .map(|c| (c.name, c.version))
        .collect())
}

/// `name@version, …`, the first five and a count of the rest.
fn crate_list(crates: &[&CrateId]) -> String {
    let mut text: Vec<String> = crates
        .iter()
        .take(5)
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    if crates.len() > 5 {
        text.push(format!("and {} more", crates.len() - 5));
    }
    text.join(", ")
}

/// What one set has that the other lacks, in words.
fn differences(theirs: &str, a: &BTreeSet<CrateId>, other: &str, b: &BTreeSet<CrateId>) -> String {
    let only_a: Vec<&CrateId> = a.difference(b).collect();
    let only_b: Vec<&CrateId> = b.difference(a).collect();
    let mut parts = Vec::new();
    if !only_a.is_empty() {
        parts.push(format!(
            "{theirs} lists {} that {other} does not: {}",
            only_a.len(),
            crate_list(&only_a)
        ));
    }
    if !only_b.is_empty() {
        parts.push(format!(
            "{theirs} misses {} of {other}: {}",
            only_b.len(),
            crate_list(&only_b)
        ));
    }
    parts.join("; ")
}

/// The service's crates three ways:
///
/// - the binary's own list, which cargo auditable resolved from Cargo.lock
///   at the build: every crate of the SBOM must be in it at the same
///   version, and every crate in it must be in Cargo.lock. It may list more
///   than the build links, since it comes from `cargo metadata`, which
///   resolves features for the whole workspace and knows nothing of
///   resolver 2 (rust-secure-code/cargo-auditable#66), and it counts some
///   proc-macros as runtime crates: for a PostgreSQL service on sqlx,
///   `sqlx-mysql` and `rsa` show up. Those are named, never hidden;
/// - trivy's and syft's reading of the image, which must be that list
///   exactly, since it is what they read.
pub fn crate_checks(
    binary: anyhow::Result<AuditData>,
    ours: &BTreeSet<CrateId>,
    locked: &BTreeSet<CrateId>,
    trivy: anyhow::Result<BTreeSet<CrateId>>,
    syft: anyhow::Result<BTreeSet<CrateId>>,
) -> Vec<Check> {
    const IN_BINARY: &str = "crates in the binary";
    let expected = "every crate of the SBOM in the binary's own list (cargo auditable), and every crate of that list in Cargo.lock";
    let (root, listed) = match binary {
        Ok(AuditData::Crates { root, crates }) => (root, crates),
        Ok(AuditData::PackedByUpx) => {
            return vec![
                Check::skipped(IN_BINARY, expected, PACKED),
                Check::skipped("crates seen by trivy", scanner_expected("trivy"), PACKED),
                Check::skipped("crates seen by syft", scanner_expected("syft"), PACKED),
            ];
        }
        Ok(AuditData::Missing) => {
            let cause = "the service binary has no .dep-v0 section: build it with `cargo auditable build`, as the built-in Dockerfile does";
            return vec![
                Check::judge(IN_BINARY, false, "no crate list", expected).because(cause),
                scanner_skipped("trivy"),
                scanner_skipped("syft"),
            ];
        }
        Err(error) => {
            return vec![
                Check::broken(IN_BINARY, expected, &error),
                scanner_skipped("trivy"),
                scanner_skipped("syft"),
            ];
        }
    };
    let hidden: Vec<&CrateId> = ours.difference(&listed).collect();
    let unlocked: Vec<&CrateId> = listed.difference(locked).collect();
    let extra: Vec<&CrateId> = listed.difference(ours).collect();
    let mut causes = Vec::new();
    if !hidden.is_empty() {
        causes.push(format!(
            "{} crates of the SBOM are not in the binary's list: {}",
            hidden.len(),
            crate_list(&hidden)
        ));
    }
    if !unlocked.is_empty() {
        causes.push(format!(
            "{} crates of the binary's list are not in Cargo.lock: {}",
            unlocked.len(),
            crate_list(&unlocked)
        ));
    }
    let mut measured = format!("{} listed: the SBOM's {}", listed.len(), ours.len());
    if !extra.is_empty() {
        let _ = write!(
            measured,
            ", and {} the build does not link ({})",
            extra.len(),
            crate_list(&extra)
        );
    }
    let mut checks = vec![
        Check::judge(IN_BINARY, causes.is_empty(), measured, expected).because(causes.join("; ")),
    ];
    for (tool, read) in [("trivy", trivy), ("syft", syft)] {
        checks.push(scanner_agrees(tool, read, &listed, root.as_ref()));
    }
    checks
}

fn scanner_expected(tool: &str) -> String {
    format!("{tool} reads from the image exactly the crates the service binary lists")
}

fn scanner_skipped(tool: &str) -> Check {
    Check::skipped(
        format!("crates seen by {tool}"),
        scanner_expected(tool),
        "the binary's own list could not be read (see crates in the binary)",
    )
}

/// A scanner's reading of the service binary against the binary's list.
fn scanner_agrees(
    tool: &str,
    read: anyhow::Result<BTreeSet<CrateId>>,
    listed: &BTreeSet<CrateId>,
    root: Option<&CrateId>,
) -> Check {
    let name = format!("crates seen by {tool}");
    match read {
        Ok(mut theirs) => {
            if let Some(root) = root {
                theirs.remove(root);
            }
            Check::judge(
                name,
                theirs == *listed && !theirs.is_empty(),
                format!("{} crates", theirs.len()),
                scanner_expected(tool),
            )
            .because(if theirs.is_empty() {
                format!("{tool} read no crate from the service binary")
            } else {
                differences(tool, &theirs, "the binary", listed)
            })
        }
        Err(error) => Check::broken(name, scanner_expected(tool), &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(name: &str, version: &str) -> Deb {
        Deb {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            source: None,
            source_version: None,
        }
    }

    #[test]
    fn a_package_missing_or_at_another_version_fails() {
        let theirs = debian_packages(
            r#"{"components":[
                {"type":"library","name":"libc6","version":"2.41-12","purl":"pkg:deb/debian/libc6@2.41-12"},
                {"type":"library","name":"tzdata","version":"2026f","purl":"pkg:deb/debian/tzdata@2026f"},
                {"type":"operating-system","name":"debian","version":"13"}]}"#,
        )
        .unwrap();
        assert_eq!(theirs.len(), 2);
        let ours = [deb("libc6", "2.41-12"), deb("tzdata", "2026f")];
        assert!(!compare("syft", &theirs, &ours, 3).failed());
        let check = compare("syft", &theirs, &ours[..1], 3);
        assert_eq!(
            check.actual.as_deref(),
            Some("tzdata 2026f is missing from ours")
        );
        let check = compare(
            "syft",
            &theirs,
            &[deb("libc6", "2.41-13"), deb("tzdata", "2026f")],
            3,
        );
        assert_eq!(
            check.actual.as_deref(),
            Some("libc6: syft says 2.41-12, ours 2.41-13")
        );
    }

    fn set(crates: &[(&str, &str)]) -> BTreeSet<CrateId> {
        crates
            .iter()
            .map(|(name, version)| ((*name).to_owned(), (*version).to_owned()))
            .collect()
    }

    /// The shapes trivy 0.76 and syft 1.18 give a `cargo auditable` binary:
    /// trivy's crates hang from an application component named by the
    /// file, syft's carry the file as a location.
    #[test]
    fn reads_the_crates_of_one_file_as_each_scanner_writes_them() {
        let trivy = r#"{"components":[
            {"bom-ref":"app-1","type":"application","name":"usr/local/bin/service"},
            {"bom-ref":"app-2","type":"application","name":"usr/local/bin/healthcheck"},
            {"bom-ref":"pkg:cargo/server@0.1.0","type":"library","name":"server","version":"0.1.0","purl":"pkg:cargo/server@0.1.0"},
            {"bom-ref":"pkg:cargo/tokio@1.48.0","type":"library","name":"tokio","version":"1.48.0","purl":"pkg:cargo/tokio@1.48.0"},
            {"bom-ref":"pkg:cargo/healthcheck@0.0.0","type":"library","name":"healthcheck","version":"0.0.0","purl":"pkg:cargo/healthcheck@0.0.0"}],
          "dependencies":[
            {"ref":"app-1","dependsOn":["pkg:cargo/server@0.1.0"]},
            {"ref":"app-2","dependsOn":["pkg:cargo/healthcheck@0.0.0"]},
            {"ref":"pkg:cargo/server@0.1.0","dependsOn":["pkg:cargo/tokio@1.48.0"]}]}"#;
        assert_eq!(
            service_crates("trivy", trivy, "/usr/local/bin/service").unwrap(),
            set(&[("server", "0.1.0"), ("tokio", "1.48.0")])
        );
        let syft = r#"{"components":[
            {"bom-ref":"a","type":"library","name":"tokio","version":"1.48.0","purl":"pkg:cargo/tokio@1.48.0",
             "properties":[{"name":"syft:location:0:path","value":"/usr/local/bin/service"}]},
            {"bom-ref":"b","type":"library","name":"healthcheck","version":"0.0.0","purl":"pkg:cargo/healthcheck@0.0.0",
             "properties":[{"name":"syft:location:0:path","value":"/usr/local/bin/healthcheck"}]}]}"#;
        assert_eq!(
            service_crates("syft", syft, "/usr/local/bin/service").unwrap(),
            set(&[("tokio", "1.48.0")])
        );
        assert!(service_crates("syft", "{", "/x").is_err());
    }

    #[test]
    fn the_three_readings_of_the_crates_must_agree() {
        let ours = set(&[("tokio", "1.48.0"), ("bytes", "1.10.0")]);
        let locked = set(&[
            ("tokio", "1.48.0"),
            ("bytes", "1.10.0"),
            ("rsa", "0.9.10"),
            ("server", "0.1.0"),
        ]);
        let listed = set(&[("tokio", "1.48.0"), ("bytes", "1.10.0"), ("rsa", "0.9.10")]);
        let binary = || {
            Ok(AuditData::Crates {
                root: Some(("server".to_owned(), "0.1.0".to_owned())),
                crates: listed.clone(),
            })
        };
        let mut with_root = listed.clone();
        with_root.insert(("server".to_owned(), "0.1.0".to_owned()));
        let checks = crate_checks(
            binary(),
            &ours,
            &locked,
            Ok(with_root.clone()),
            Ok(listed.clone()),
        );
        assert!(checks.iter().all(|c| !c.failed()), "{checks:?}");
        assert!(
            checks[0]
                .measured
                .contains("1 the build does not link (rsa@0.9.10)"),
            "{}",
            checks[0].measured
        );

        // A crate of ours the binary does not list, a scanner that misses one.
        let more = set(&[("tokio", "1.48.0"), ("bytes", "1.10.0"), ("itoa", "1.0.0")]);
        let checks = crate_checks(
            binary(),
            &more,
            &locked,
            Ok(set(&[("tokio", "1.48.0")])),
            Ok(listed.clone()),
        );
        assert!(checks[0].failed());
        assert!(checks[0].actual.as_deref().unwrap().contains("itoa@1.0.0"));
        assert!(checks[1].failed());
        assert!(
            checks[1]
                .actual
                .as_deref()
                .unwrap()
                .contains("trivy misses 2 of the binary")
        );
        assert!(!checks[2].failed());

        // A crate that is not in Cargo.lock.
        let checks = crate_checks(
            binary(),
            &ours,
            &set(&[("tokio", "1.48.0")]),
            Ok(listed.clone()),
            Ok(listed.clone()),
        );
        assert!(
            checks[0]
                .actual
                .as_deref()
                .unwrap()
                .contains("not in Cargo.lock")
        );
    }

    #[test]
    fn a_packed_or_plain_binary_never_reads_as_a_pass() {
        let ours = set(&[("tokio", "1.48.0")]);
        let checks = crate_checks(
            Ok(AuditData::PackedByUpx),
            &ours,
            &ours,
            Ok(ours.clone()),
            Ok(ours.clone()),
        );
        assert!(
            checks
                .iter()
                .all(|c| c.status == crate::checks::Status::Skipped)
        );
        assert!(checks[0].actual.as_deref().unwrap().contains("UPX"));
        let checks = crate_checks(
            Ok(AuditData::Missing),
            &ours,
            &ours,
            Ok(ours.clone()),
            Ok(ours.clone()),
        );
        assert!(checks[0].failed());
        assert!(
            checks[0]
                .actual
                .as_deref()
                .unwrap()
                .contains("cargo auditable build")
        );
        assert_eq!(checks[1].status, crate::checks::Status::Skipped);
    }

    #[test]
    fn a_scanner_that_lists_nothing_proves_nothing() {
        let check = compare("trivy", &BTreeMap::new(), &[deb("libc6", "1")], 0);
        assert!(check.failed());
    }

    #[test]
    fn a_truncated_document_is_an_error() {
        let check = check("syft", Ok(r#"{"components":[{"name""#.to_owned()), &[], 0);
        assert!(check.failed());
        assert!(check.actual.unwrap().contains("CycloneDX"));
    }
}

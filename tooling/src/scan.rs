//! `cargo xtask scan`: every scanner on the image and the workspace, gated
//! by the xtask from the reports, never from exit codes (trivy exits 1 both
//! for findings and for its own failures). A scanner that cannot run fails
//! its step; only `--skip` leaves one out, and says why.
//!
//! 1. trivy on the image: vulnerabilities of its OS packages, and secrets;
//! 2. trivy on the Dockerfile and deploy/: misconfigurations;
//! 3. trivy on the SBOM: the crates compiled into the binary, which the
//!    binary's own list over-counts and UPX hides (`sbom.rs` makes it);
//! 4. cargo-deny on the workspace (`scan/deny.rs`);
//! 5. hadolint on the Dockerfile.
//!
//! trivy's reports are read in `scan/trivy_report.rs`, gated by the policy
//! (`scan/policy.rs`) after the ignores (`ignores.rs`); every report, one
//! SARIF log (`scan/sarif.rs`) and the ignores as an `OpenVEX` document
//! (`vex.rs`) are kept under target/xtask/scan/.

mod deny;
mod findings;
pub mod kept;
mod policy;
mod report;
mod sarif;
mod trivy_report;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;
use xshell::Shell;

use crate::checks::Verdict;
use crate::flags;
use crate::git;
use crate::hadolint;
use crate::ignores::{self, Ignore};
use crate::last_build::{self, ImageRef};
use crate::metadata::Metadata;
use crate::sbom;
use crate::trivy::{Database, Trivy};
use crate::vex;
use findings::{Finding, Findings};
use policy::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Vuln,
    Secret,
    Config,
    Crates,
    Deny,
    Hadolint,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Vuln,
        Step::Secret,
        Step::Config,
        Step::Crates,
        Step::Deny,
        Step::Hadolint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Vuln => "vuln",
            Step::Secret => "secret",
            Step::Config => "config",
            Step::Crates => "crates",
            Step::Deny => "deny",
            Step::Hadolint => "hadolint",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Step::Vuln => "vuln: image packages (trivy)",
            Step::Secret => "secret: image files (trivy)",
            Step::Config => "config: Dockerfile, deploy/ (trivy)",
            Step::Crates => "crates: the binary's SBOM (trivy)",
            Step::Deny => "deny: Rust dependencies (cargo-deny)",
            Step::Hadolint => "hadolint: Dockerfile",
        }
    }

    fn needs_image(self) -> bool {
        matches!(self, Step::Vuln | Step::Secret | Step::Crates)
    }
}

/// What became of one step.
pub enum Outcome {
    Ran {
        findings: Findings,
        /// The database the step used, and its date.
        database: Option<String>,
    },
    Failed(String),
    Skipped(String),
}

/// What a scanner gave: its findings, the database it read, its SARIF.
struct Scanned {
    findings: Findings,
    database: Option<String>,
    sarif: Value,
}

/// The outcomes so far, and each scanner's SARIF.
#[derive(Default)]
struct Results {
    outcomes: BTreeMap<&'static str, Outcome>,
    sarif: Vec<(&'static str, Value)>,
}

impl Results {
    fn record(&mut self, step: Step, result: anyhow::Result<Scanned>) {
        let outcome = match result {
            Ok(scanned) => {
                self.sarif.push((step.name(), scanned.sarif));
                Outcome::Ran {
                    findings: scanned.findings,
                    database: scanned.database,
                }
            }
            Err(error) => Outcome::Failed(format!("{error:#}")),
        };
        self.outcomes.insert(step.name(), outcome);
    }

    fn write_sarif(&self, out: &Path, subject: &str) -> anyhow::Result<PathBuf> {
        let logs: Vec<(&str, &Value)> = self.sarif.iter().map(|(s, v)| (*s, v)).collect();
        let path = out.join("scan.sarif");
        let log = sarif::merge(subject, &logs)?;
        std::fs::write(&path, serde_json::to_string_pretty(&log)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// Every report and the SARIF log go here, in a folder per subject.
pub fn output_dir(root: &Path) -> PathBuf {
    root.join("target/xtask/scan")
}

impl flags::Scan {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let policy = Policy::resolve(
            &metadata.scan,
            &self.severity,
            self.gate_unfixed,
            self.ignore_file.as_deref(),
        )?;
        let mut skips = skips(&self.skip)?;
        if self.offline {
            offline_skips(
                &mut skips,
                self.trivy_db.is_some(),
                self.advisory_db.is_some(),
            );
        }
        let only = only(&self.only)?;
        let ignore_path = root.join(&policy.ignore_file);
        let ignores = if ignore_path.is_file() {
            ignores::load(&ignore_path)?
        } else if policy.ignore_file_given {
            bail!("the ignore file {} does not exist", ignore_path.display());
        } else {
            Vec::new()
        };
        let chosen = |step: &Step| only.is_empty() || only.contains(step);
        let runs = |step: Step| chosen(&step) && !skips.contains_key(&step);
        let image = if Step::ALL.iter().any(|&s| s.needs_image() && runs(s)) {
            Some(last_build::resolve(&root, self.image.as_deref())?)
        } else {
            None
        };
        // Each subject keeps its own reports, so that scanning both images
        // leaves both.
        let subject = image.as_ref().map_or("workspace", |i| i.name.as_str());
        let stem = subject.replace(['/', ':'], "-");
        let out = output_dir(&root).join(&stem);
        if out.exists() {
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("cannot clear {}", out.display()))?;
        }
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let dockerfile = crate::build_context::Dockerfile::read(&root, metadata)?.path;
        let scan = Scan {
            sh,
            root: &root,
            dockerfile: &dockerfile,
            out: &out,
            policy: &policy,
            ignore_file: ignore_path.is_file().then_some(ignore_path.as_path()),
            trivy_db: self.trivy_db.as_deref(),
        };
        let mut results = Results::default();
        for (step, reason) in skips.iter().filter(|(step, _)| chosen(step)) {
            results
                .outcomes
                .insert(step.name(), Outcome::Skipped(reason.clone()));
        }
        if let Some(image) = &image {
            let scanners: Vec<Step> = [Step::Vuln, Step::Secret]
                .into_iter()
                .filter(|&s| runs(s))
                .collect();
            if !scanners.is_empty() {
                eprintln!("scan: trivy on the image {}", image.name);
                scan.image(&mut results, image, &scanners);
            }
            if runs(Step::Crates) {
                eprintln!("scan: trivy on the SBOM of the binary's crates");
                results.record(Step::Crates, scan.crates(metadata, image));
            }
        }
        if runs(Step::Config) {
            eprintln!("scan: trivy on the Dockerfile and deployment manifests");
            results.record(Step::Config, scan.config());
        }
        if runs(Step::Deny) {
            eprintln!("scan: cargo-deny on the workspace");
            results.record(Step::Deny, scan.deny(self.advisory_db.as_deref()));
        }
        if runs(Step::Hadolint) {
            eprintln!("scan: hadolint on the Dockerfile");
            results.record(Step::Hadolint, scan.hadolint());
        }
        let sarif_path = results.write_sarif(&out, &stem)?;
        let today = git::now_rfc3339_utc();
        let expired: Vec<&Ignore> = ignores.iter().filter(|i| i.expired(&today[..10])).collect();
        let mut verdict = report::verdict(&report::Scanned {
            subject: subject.to_owned(),
            policy: &policy,
            outcomes: &results.outcomes,
            expired: &expired,
            sarif: &sarif_path,
        });
        if let Some(image) = &image {
            scan.openvex_into(&mut verdict, metadata, image);
        }
        Ok(verdict)
    }
}

impl Step {
    /// The step a name on the command line means.
    pub fn named(name: &str) -> anyhow::Result<Step> {
        Step::ALL
            .iter()
            .copied()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
                anyhow::anyhow!("no scan step {name:?}; the steps are: {}", names.join(", "))
            })
    }
}

/// `--skip STEP[=REASON]`, each naming a step.
fn skips(flags: &[String]) -> anyhow::Result<BTreeMap<Step, String>> {
    let mut skips = BTreeMap::new();
    for text in flags {
        let (name, reason) = flags::skip(text).map_err(anyhow::Error::msg)?;
        skips.insert(Step::named(&name)?, reason);
    }
    Ok(skips)
}

/// `--offline`: the steps whose database would come from the network,
/// skipped with why, unless a local one is given (or a skip already says).
fn offline_skips(skips: &mut BTreeMap<Step, String>, trivy_db: bool, advisory_db: bool) {
    if !trivy_db {
        for step in [Step::Vuln, Step::Crates] {
            skips.entry(step).or_insert_with(|| {
                "--offline, and no local trivy database (--trivy-db DIR or XTASK_TRIVY_DB)"
                    .to_owned()
            });
        }
    }
    if !advisory_db {
        skips.entry(Step::Deny).or_insert_with(|| {
            "--offline, and no local RustSec advisory database (--advisory-db or XTASK_ADVISORY_DB)"
                .to_owned()
        });
    }
}

fn only(names: &[String]) -> anyhow::Result<Vec<Step>> {
    names.iter().map(|name| Step::named(name)).collect()
}

/// What every step needs to run.
struct Scan<'a> {
    sh: &'a Shell,
    root: &'a Path,
    /// The Dockerfile the image is built with: the built-in one, or the
    /// repository's own that the manifest names.
    dockerfile: &'a Path,
    out: &'a Path,
    policy: &'a Policy,
    ignore_file: Option<&'a Path>,
    trivy_db: Option<&'a Path>,
}

impl Scan<'_> {
    /// Writes the `OpenVEX` document and says where in the verdict. The
    /// steps already fail for what stops it (no engine), so the scan's
    /// verdict stands either way.
    fn openvex_into(&self, verdict: &mut Verdict, metadata: &Metadata, image: &ImageRef) {
        let path = self.out.join("openvex.json");
        let note = match self.openvex(metadata, image, &path) {
            Ok(product) => {
                verdict
                    .details
                    .insert("openvex".into(), path.display().to_string().into());
                format!("OpenVEX: {} (product {product})", path.display())
            }
            Err(error) => format!("OpenVEX: not written: {error:#}"),
        };
        verdict.text.push_str(&note);
        verdict.text.push('\n');
    }

    /// The ignores as an `OpenVEX` document about the image; the product's
    /// purl. The image's registry digest is what trivy matches, so an image
    /// never pushed is named by its id, which only `publish` replaces.
    fn openvex(
        &self,
        metadata: &Metadata,
        image: &ImageRef,
        path: &Path,
    ) -> anyhow::Result<String> {
        let docker = crate::docker::Docker::connect(self.sh)?;
        let inspect = docker.inspect_image(self.sh, &image.reference)?;
        let product = match inspect.repo_digests.as_deref().unwrap_or_default().first() {
            Some(pinned) => {
                let (repository, digest) = pinned
                    .split_once('@')
                    .with_context(|| format!("unexpected repository digest {pinned:?}"))?;
                vex::image_purl(repository, digest)
            }
            None => vex::image_purl(&image.name, &inspect.id),
        };
        vex::write(
            self.sh,
            self.ignore_file,
            &product,
            &format!("the maintainers of {}", metadata.image),
            path,
        )?;
        Ok(product)
    }

    /// `--ignorefile`, and `--show-suppressed` where trivy has it (not
    /// `config`), when there is an ignore file.
    fn ignore_args(&self, subcommand: &str) -> Vec<OsString> {
        let Some(file) = self.ignore_file else {
            return Vec::new();
        };
        let mut args = vec!["--ignorefile".into(), file.into()];
        if subcommand != "config" {
            args.push("--show-suppressed".into());
        }
        args
    }

    /// Runs trivy for JSON, keeps the report, and converts it to SARIF.
    fn trivy_json(
        &self,
        trivy: &Trivy,
        subcommand: &str,
        database: Option<&Database>,
        args: Vec<OsString>,
        report: &str,
    ) -> anyhow::Result<(String, Value)> {
        let mut all: Vec<OsString> = vec!["--format".into(), "json".into()];
        all.extend(self.ignore_args(subcommand));
        all.extend(args);
        let json = trivy.run(self.sh, subcommand, database, &all)?;
        let path = self.out.join(report);
        std::fs::write(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
        let sarif = trivy.run(
            self.sh,
            "convert",
            None,
            &["--format".into(), "sarif".into(), path.into()],
        )?;
        let sarif = serde_json::from_str(&sarif).context("trivy's SARIF is not JSON")?;
        Ok((json, sarif))
    }

    fn database(&self, trivy: &Trivy) -> anyhow::Result<(Database, String)> {
        let database = trivy.database(self.trivy_db)?;
        let described = match &database.updated_at {
            Some(date) => format!("trivy-db from {}, updated {date}", database.source),
            None => format!("trivy-db from {}", database.source),
        };
        Ok((database, described))
    }

    /// One trivy run for vulnerabilities and secrets, recorded as two steps.
    fn image(&self, results: &mut Results, image: &ImageRef, scanners: &[Step]) {
        match self.image_report(image, scanners) {
            Ok((read, database, sarif)) => {
                results.sarif.push(("image", sarif));
                let mut read = Some(read);
                for &step in scanners {
                    let Some(read) = read.as_mut() else { break };
                    let (findings, database) = match step {
                        Step::Vuln => (std::mem::take(&mut read.vulnerabilities), database.clone()),
                        _ => (std::mem::take(&mut read.secrets), None),
                    };
                    results
                        .outcomes
                        .insert(step.name(), Outcome::Ran { findings, database });
                }
            }
            Err(error) => {
                for step in scanners {
                    results
                        .outcomes
                        .insert(step.name(), Outcome::Failed(format!("{error:#}")));
                }
            }
        }
    }

    fn image_report(
        &self,
        image: &ImageRef,
        scanners: &[Step],
    ) -> anyhow::Result<(trivy_report::Read, Option<String>, Value)> {
        let trivy = Trivy::find(self.sh, self.root)?;
        let (database, described) = if scanners.contains(&Step::Vuln) {
            let (database, described) = self.database(&trivy)?;
            (Some(database), Some(described))
        } else {
            (None, None)
        };
        let names: Vec<&str> = scanners.iter().map(|s| s.name()).collect();
        let args: Vec<OsString> = vec![
            "--scanners".into(),
            names.join(",").into(),
            // The crates are the `crates` step's, from the SBOM: the binary's
            // own list (cargo auditable) names crates the build never links,
            // and UPX hides it.
            "--pkg-types".into(),
            "os".into(),
            "--image-src".into(),
            "docker".into(),
            image.reference.clone().into(),
        ];
        let (json, sarif) =
            self.trivy_json(&trivy, "image", database.as_ref(), args, "trivy-image.json")?;
        Ok((trivy_report::parse(&json, self.policy)?, described, sarif))
    }

    fn config(&self) -> anyhow::Result<Scanned> {
        let trivy = Trivy::find(self.sh, self.root)?;
        let mut targets = vec![("dockerfile", self.dockerfile.to_path_buf())];
        let deploy = self.root.join("deploy");
        if deploy.is_dir() {
            targets.push(("deploy", deploy));
        }
        let mut findings = Findings::default();
        let mut runs = Vec::new();
        for (name, target) in targets {
            let args = vec!["--skip-check-update".into(), target.into()];
            let (json, sarif) = self.trivy_json(
                &trivy,
                "config",
                None,
                args,
                &format!("trivy-config-{name}.json"),
            )?;
            let read = trivy_report::parse(&json, self.policy)?;
            findings.findings.extend(read.misconfigurations.findings);
            findings
                .suppressed
                .extend(read.misconfigurations.suppressed);
            runs.extend(sarif["runs"].as_array().cloned().unwrap_or_default());
        }
        Ok(Scanned {
            findings,
            database: None,
            sarif: serde_json::json!({"version": "2.1.0", "runs": runs}),
        })
    }

    fn crates(&self, metadata: &Metadata, image: &ImageRef) -> anyhow::Result<Scanned> {
        let made = sbom::make(self.sh, self.root, metadata, image)?;
        let trivy = Trivy::find(self.sh, self.root)?;
        let (database, described) = self.database(&trivy)?;
        let args = vec![made.cyclonedx.clone().into()];
        let (json, sarif) =
            self.trivy_json(&trivy, "sbom", Some(&database), args, "trivy-sbom.json")?;
        let mut findings = trivy_report::parse(&json, self.policy)?.vulnerabilities;
        for finding in findings
            .findings
            .iter_mut()
            .filter(|f| f.location.is_empty())
        {
            finding.location = format!("{} (crate in the binary)", metadata.binary);
        }
        Ok(Scanned {
            findings,
            database: Some(described),
            sarif,
        })
    }

    fn deny(&self, mirror: Option<&str>) -> anyhow::Result<Scanned> {
        let deny = deny::run(self.sh, &self.root.join("Cargo.toml"), mirror)?;
        Ok(Scanned {
            findings: deny.findings,
            database: Some(format!("{} ({})", deny.database, deny.summary)),
            sarif: deny.sarif,
        })
    }

    fn hadolint(&self) -> anyhow::Result<Scanned> {
        let lint = hadolint::lint(self.sh, self.dockerfile)?;
        let findings = lint
            .into_iter()
            .map(|f| Finding {
                gating: hadolint::gates(&f.level),
                id: f.code,
                severity: f.level,
                package: String::new(),
                installed: String::new(),
                fixed: None,
                title: f.message,
                location: format!("Dockerfile:{}", f.line),
            })
            .collect();
        Ok(Scanned {
            findings: Findings {
                findings,
                suppressed: Vec::new(),
            },
            database: None,
            sarif: hadolint::sarif(self.sh, self.dockerfile)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_skips_what_needs_a_database_it_was_not_given() {
        let mut skips = BTreeMap::from([(Step::Crates, "--skip: mine".to_owned())]);
        offline_skips(&mut skips, false, true);
        assert!(skips[&Step::Vuln].contains("--trivy-db"));
        assert_eq!(skips[&Step::Crates], "--skip: mine", "a given reason stays");
        assert!(!skips.contains_key(&Step::Deny), "a mirror was given");
        assert!(!skips.contains_key(&Step::Secret));
        assert!(!skips.contains_key(&Step::Config));
        let mut skips = BTreeMap::new();
        offline_skips(&mut skips, true, false);
        assert_eq!(skips.keys().copied().collect::<Vec<_>>(), [Step::Deny]);
    }
    use crate::testing;

    // The scans of a real image with the test databases are the xtask's
    // integration tests (xtask/tests/scanners.rs): they need the engine.

    #[test]
    fn cargo_deny_fails_a_crate_pinned_to_a_vulnerable_version() {
        let _trivy = testing::trivy_lock();
        let Some(data) = testing::shared_data("cargo_deny_fails_a_vulnerable_crate") else {
            return;
        };
        let sh = Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[package]\nname = \"throwaway\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\n\n[dependencies]\ntime = \"=0.1.43\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
        let bundle = data.join("advisory-db.bundle").display().to_string();
        let outcome = deny::run(&sh, &manifest, Some(&bundle)).unwrap();
        let gating: Vec<&str> = outcome.findings.gating().map(|f| f.id.as_str()).collect();
        assert!(gating.contains(&"RUSTSEC-2020-0071"), "{gating:?}");
        assert!(
            outcome.summary.contains("advisories FAILED"),
            "{}",
            outcome.summary
        );
    }

    #[test]
    fn an_unknown_step_is_an_error_that_lists_the_steps() {
        let error = skips(&["vulns=typo".into()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no scan step \"vulns\"; the steps are: vuln, secret, config, crates, deny, hadolint"
        );
    }
}

//! The scanners on a real image, through the command line: `scan` with the
//! test databases of the shared data, and `sbom` against syft and trivy.
//! The image is the offline runtime base (real Debian 13 packages), made by
//! `cargo xtask stand-ins` when missing.
//!
//! They need a docker engine, mmdebstrap, trivy, syft and the validators
//! (`cargo xtask setup` installs them): what is missing fails the test,
//! naming it. Only the shared data has an opt-out
//! (`XTASK_ALLOW_MISSING_DATA=1`), and its skip is printed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::Value;

// The same lookup as the unit tests'.
#[path = "../../tooling/src/testing/shared_data.rs"]
mod shared_data;
use shared_data::shared_data;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// The scans share trivy's cache and the report folders of one image.
static SCANNER: Mutex<()> = Mutex::new(());

fn one_scan_at_a_time() -> MutexGuard<'static, ()> {
    SCANNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Runs `cargo xtask --json <args>`; its verdict, and how it exited.
fn xtask(args: &[&str]) -> (Value, Output) {
    let output = Command::new(XTASK)
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the xtask runs");
    let verdict = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "`xtask {}` printed no verdict ({error}): {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (verdict, output)
}

/// The offline runtime base, made once per run of these tests.
fn runtime_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let (verdict, output) = xtask(&["stand-ins", "--only", "runtime"]);
        assert!(
            output.status.success(),
            "cannot make the runtime base: {verdict}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        verdict["runtime"].as_str().unwrap().to_owned()
    })
}

/// `scan` of the runtime base with one of the test databases, the image's
/// steps only.
fn scan(data: &Path, db: &str, extra: &[&str]) -> Value {
    let db = data.join("trivy-db").join(db).display().to_string();
    let mut args = vec![
        "scan",
        "--image",
        runtime_image(),
        "--trivy-db",
        &db,
        "--only",
        "vuln",
        "--only",
        "crates",
        // With a local database, --offline leaves both steps to run.
        "--offline",
    ];
    args.extend(extra);
    xtask(&args).0
}

fn check<'a>(verdict: &'a Value, name: &str) -> &'a Value {
    verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {verdict}"))
}

const VULN: &str = "vuln: image packages (trivy)";
const CRATES: &str = "crates: the binary's SBOM (trivy)";

/// Every finding of the step, as `(id, package, gating)`.
fn findings(verdict: &Value, step: &str) -> Vec<(String, String, bool)> {
    let step = verdict["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step:?} in {verdict}"));
    step["findings"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["package"].as_str().unwrap().to_owned(),
                f["gating"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_vulnerable_database_fails_the_gate_and_names_the_findings() {
    let Some(data) = shared_data("the_vulnerable_database_fails_the_gate") else {
        return;
    };
    let _scanner = one_scan_at_a_time();
    let verdict = scan(&data, "vulnerable", &[]);
    let vuln = check(&verdict, VULN);
    assert_eq!(vuln["status"], "fail");
    let actual = vuln["actual"].as_str().unwrap();
    assert!(actual.contains("CVE-2099-1001 libc6"), "{actual}");
    assert!(actual.contains("CVE-2099-1002"), "{actual}");
    assert!(
        !actual.contains("CVE-2099-1005"),
        "unfixed: shown, not gating: {actual}"
    );
    let listed = findings(&verdict, "vuln");
    assert!(
        listed.contains(&("CVE-2099-1005".into(), "tzdata".into(), false)),
        "the unfixed finding is listed, not gating: {listed:?}"
    );

    let crates = check(&verdict, CRATES);
    let actual = crates["actual"].as_str().unwrap();
    assert!(actual.contains("GHSA-2099-aaaa-0001 tokio"), "{actual}");
    let json = verdict.to_string();
    assert!(
        !json.contains("GHSA-2099-aaaa-0003"),
        "xshell is the xtask's, not the server's"
    );
    assert!(json.contains("trivy-db from"), "the database is named");
    assert_eq!(
        verdict["checks"].as_array().unwrap().len(),
        2,
        "--only leaves the other steps out: {verdict}"
    );

    let verdict = scan(&data, "vulnerable", &["--gate-unfixed"]);
    let actual = check(&verdict, VULN)["actual"].as_str().unwrap();
    assert!(actual.contains("CVE-2099-1005 tzdata"), "{actual}");
}

#[test]
fn the_clean_database_passes() {
    let Some(data) = shared_data("the_clean_database_passes") else {
        return;
    };
    let _scanner = one_scan_at_a_time();
    let verdict = scan(&data, "clean", &["--gate-unfixed"]);
    assert_eq!(verdict["passed"], true, "{verdict}");
    assert_eq!(check(&verdict, VULN)["status"], "pass");
}

#[test]
fn an_ignore_holds_until_it_expires() {
    let Some(data) = shared_data("an_ignore_holds_until_it_expires") else {
        return;
    };
    let _scanner = one_scan_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let ignore = |name: &str, date: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "vulnerabilities:\n  - id: CVE-2099-1001\n    expired_at: {date}\n    statement: test\n  - id: CVE-2099-1002\n    expired_at: {date}\n    statement: test\n  - id: GHSA-2099-aaaa-0001\n    statement: test\n  - id: GHSA-2099-aaaa-0002\n    statement: test\n"
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let future = ignore("ignore-future.yaml", "2099-12-31");
    let verdict = scan(&data, "vulnerable", &["--ignore-file", &future]);
    assert_eq!(verdict["passed"], true, "{verdict}");
    let measured = check(&verdict, VULN)["measured"].as_str().unwrap();
    assert!(measured.contains("3 ignored"), "{measured}");

    let past = ignore("ignore-past.yaml", "2020-01-01");
    let verdict = scan(&data, "vulnerable", &["--ignore-file", &past]);
    assert_eq!(check(&verdict, VULN)["status"], "fail");
    let expired = verdict["expired_ignores"].to_string();
    assert!(expired.contains("CVE-2099-1001"), "{expired}");
}

#[test]
fn the_workspaces_own_checks_pass_and_write_valid_sarif() {
    let Some(data) = shared_data("the_workspaces_own_checks_pass") else {
        return;
    };
    let _scanner = one_scan_at_a_time();
    let bundle = data.join("advisory-db.bundle").display().to_string();
    let (verdict, _) = xtask(&[
        "scan",
        "--advisory-db",
        &bundle,
        "--skip",
        "vuln",
        "--skip",
        "secret",
        "--skip",
        "crates",
        "--offline",
    ]);
    assert_eq!(verdict["passed"], true, "{verdict}");
    for name in [
        "config: Dockerfile, deploy/ (trivy)",
        "deny: Rust dependencies (cargo-deny)",
        "hadolint: Dockerfile",
    ] {
        assert_eq!(check(&verdict, name)["status"], "pass", "{name}");
    }
    let sarif = root().join("target/xtask/scan/workspace/scan.sarif");
    // OASIS' SARIF 2.1.0 (errata 01) schema, as published with the standard.
    let schema = root().join("tooling/src/scan/sarif-schema-2.1.0.json");
    let validated = Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(&schema)
        .arg(&sarif)
        .output()
        .expect("check-jsonschema runs (cargo xtask setup installs it)");
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stdout)
    );
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let tools: Vec<&str> = log["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["tool"]["driver"]["name"].as_str().unwrap())
        .collect();
    // trivy's config step runs once on the Dockerfile, once on deploy/.
    assert_eq!(tools, ["Trivy", "Trivy", "cargo-deny", "Hadolint"]);
}

#[test]
fn a_real_images_sbom_validates_agrees_with_syft_and_trivy_and_is_reproducible() {
    let _scanner = one_scan_at_a_time();
    let image = runtime_image();
    let (verdict, _) = xtask(&["sbom", "--image", image]);
    // A base image was built from no revision of this repository: the one
    // check that matches the crates to the image's revision says so, and
    // every other check passes.
    for check in verdict["checks"].as_array().unwrap() {
        let expected = if check["name"] == "crates of the image's revision" {
            "fail"
        } else {
            "pass"
        };
        assert_eq!(check["status"], expected, "{check}");
    }
    let revision = check(&verdict, "crates of the image's revision");
    assert!(
        revision
            .to_string()
            .contains("no org.opencontainers.image.revision label"),
        "{revision}"
    );
    let read = |key: &str| std::fs::read_to_string(verdict[key].as_str().unwrap()).unwrap();
    let (spdx, cyclonedx) = (read("spdx"), read("cyclonedx"));
    assert!(
        spdx.contains("pkg:deb/debian/libc6@"),
        "the Debian packages"
    );
    assert!(
        spdx.contains("&upstream=glibc"),
        "with their source package"
    );
    assert!(cyclonedx.contains("\"pkg:cargo/tokio@"), "the crates");
    assert!(!cyclonedx.contains("pkg:cargo/xshell@"), "not the xtask's");
    assert!(
        !spdx.contains("SPDXRef-deb-libc6-2.41-12+"),
        "ids keep to SPDX's alphabet"
    );

    let (again, _) = xtask(&["sbom", "--image", image]);
    let reread = |key: &str| std::fs::read_to_string(again[key].as_str().unwrap()).unwrap();
    assert_eq!(spdx, reread("spdx"));
    assert_eq!(cyclonedx, reread("cyclonedx"));
}

//! The scanners on a real image, through the command line: `scan` with the
//! test databases of the shared data, and `sbom` against syft and trivy.
//! The image is the offline runtime base (real Debian 13 packages), made by
//! `cargo xtask stand-ins` when missing.
//!
//! They need a docker engine, mmdebstrap, trivy, syft and the validators
//! (`cargo xtask setup` installs them): what is missing fails the test,
//! naming it. Only the shared data has an opt-out
//! (`XTASK_ALLOW_MISSING_DATA=1`), and its skip is printed.

use std::io::Write as _;
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
    // A base image was built from no revision of this repository and holds
    // no service: the check that matches the crates to the image's revision
    // says so, the one that reads the binary's own crate list names the
    // missing binary (so the scanners' readings of it are skipped), and
    // every other check passes.
    for check in verdict["checks"].as_array().unwrap() {
        let expected = match check["name"].as_str().unwrap() {
            "crates of the image's revision" | "crates in the binary" => "fail",
            "crates seen by trivy" | "crates seen by syft" => "skipped",
            _ => "pass",
        };
        assert_eq!(check["status"], expected, "{check}");
    }
    let binary = check(&verdict, "crates in the binary");
    assert!(
        binary.to_string().contains("no /usr/local/bin/service"),
        "{binary}"
    );
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

/// Debian's `docker-registry` on a free loopback port, killed when dropped.
struct Registry {
    addr: String,
    process: std::process::Child,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .to_string();
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let process = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (cargo xtask setup installs it)");
        let registry = Registry { addr, process };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry did not listen on {}",
                registry.addr
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A local tag, removed when dropped.
struct Tag(String);

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

fn run_ok(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{program} runs: {error}"));
    assert!(
        output.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The OpenVEX document `scan` writes, given to trivy alone (no ignore
/// file), hides exactly the ignore in force; the expired one and every
/// other finding stay. trivy names an image by its registry digest (an
/// archive or an image never pushed has none, and no statement about it
/// can match), so the image is pushed to a loopback registry first, as a
/// user's image would come from one.
#[test]
fn trivys_vex_alone_hides_exactly_the_ignores_in_force() {
    let Some(data) = shared_data("trivys_vex_alone_hides_exactly_the_ignores_in_force") else {
        return;
    };
    let _scanner = one_scan_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path());
    let tag = Tag(format!("{}/vex-test:1", registry.addr));
    run_ok("docker", &["tag", runtime_image(), &tag.0]);
    run_ok("docker", &["push", &tag.0]);

    let ignore = dir.path().join("ignore.yaml");
    std::fs::write(
        &ignore,
        "vulnerabilities:\n  - id: CVE-2099-1001\n    purls: [pkg:deb/debian/libc6]\n    expired_at: 2099-12-31\n    justification: vulnerable_code_not_in_execute_path\n    statement: in force\n  - id: CVE-2099-1003\n    purls: [pkg:deb/debian/zlib1g]\n    expired_at: 2020-01-01\n    statement: expired\n",
    )
    .unwrap();
    let db = data.join("trivy-db/vulnerable").display().to_string();
    let ignore = ignore.display().to_string();
    let (verdict, _) = xtask(&[
        "scan",
        "--image",
        &tag.0,
        "--trivy-db",
        &db,
        "--only",
        "vuln",
        "--offline",
        "--ignore-file",
        &ignore,
    ]);
    let vex = verdict["openvex"]
        .as_str()
        .unwrap_or_else(|| panic!("scan wrote no OpenVEX document: {verdict}"))
        .to_owned();
    let document = std::fs::read_to_string(&vex).unwrap();
    assert!(document.contains("\"status\": \"affected\""), "{document}");

    // trivy itself, on a copy of the database, with no ignore file.
    let cache = dir.path().join("trivy-cache");
    std::fs::create_dir(&cache).unwrap();
    run_ok(
        "cp",
        &[
            "-r",
            &data.join("trivy-db/vulnerable/db").display().to_string(),
            &cache.display().to_string(),
        ],
    );
    let cache = cache.display().to_string();
    let findings = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "image",
            "--quiet",
            "--cache-dir",
            &cache,
            "--skip-db-update",
            "--skip-java-db-update",
            "--scanners",
            "vuln",
            "--image-src",
            "docker",
            "--format",
            "json",
        ];
        args.extend(extra);
        args.push(&tag.0);
        let report: Value = serde_json::from_slice(&run_ok("trivy", &args).stdout).unwrap();
        let mut ids: Vec<String> = report["Results"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|result| result["Vulnerabilities"].as_array().into_iter().flatten())
            .map(|v| {
                format!(
                    "{} {}",
                    v["VulnerabilityID"].as_str().unwrap(),
                    v["PkgName"].as_str().unwrap()
                )
            })
            .collect();
        ids.sort();
        ids
    };
    let without = findings(&[]);
    let with = findings(&["--vex", &vex]);
    let _ = writeln!(
        std::io::stderr(),
        "without --vex: {without:?}\nwith --vex:    {with:?}"
    );
    assert!(
        without.contains(&"CVE-2099-1001 libc6".to_owned()),
        "{without:?}"
    );
    assert!(
        without.contains(&"CVE-2099-1003 zlib1g".to_owned()),
        "{without:?}"
    );
    let expected: Vec<String> = without
        .iter()
        .filter(|id| !id.starts_with("CVE-2099-1001 "))
        .cloned()
        .collect();
    assert_eq!(with, expected);
}

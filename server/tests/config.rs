//! Bad configuration stops the process before it starts: exit status 2 and
//! one line naming the setting, the value and what was expected.

mod common;

use std::time::Duration;

use common::{Launch, TempDir, expect_exit};

struct Outcome {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

fn run(dir: &TempDir, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    // A panic would print a backtrace with this set: prove none happens.
    let mut launch = Launch::new(dir.path()).env("RUST_BACKTRACE", "1");
    for (name, value) in env {
        launch = launch.env(name, value);
    }
    let mut server = launch.args(args).spawn();
    let status = expect_exit(&mut server, Duration::from_secs(5));
    Outcome {
        code: status.code(),
        stdout: server.stdout_lines(),
        stderr: server.stderr_lines(),
    }
}

fn assert_rejected(outcome: &Outcome, name: &str, value: &str, code: i32) {
    assert_eq!(
        outcome.code,
        Some(code),
        "{name}={value}: {:?}",
        outcome.stderr
    );
    assert_eq!(
        outcome.stderr.len(),
        1,
        "one line, got {:?}",
        outcome.stderr
    );
    let line = &outcome.stderr[0];
    assert!(
        line.contains(&format!("{name}={value:?}")) && line.contains("expected"),
        "{line}"
    );
    assert!(
        !line.contains("panicked") && !line.contains("backtrace"),
        "{line}"
    );
    assert!(outcome.stdout.is_empty(), "{:?}", outcome.stdout);
}

#[test]
fn each_kind_of_bad_value_exits_2_with_one_line_naming_it() {
    let cases = [
        ("LISTEN_ADDR", "localhost:8080"),
        ("LISTEN_ADDR", "127.0.0.1:99999"),
        ("DATABASE_URL", "mysql://db/app"),
        ("DATABASE_URL", "postgres://app@db/app?sslmode=require"),
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_SIZE", "lots"),
        ("BODY_LIMIT", "64KiB"),
        ("BODY_LIMIT", "-1"),
        ("SHUTDOWN_TIMEOUT", "30"),
        ("SHUTDOWN_TIMEOUT", "soon"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_FORMAT", "xml"),
    ];
    for (name, value) in cases {
        let dir = TempDir::new("config-env");
        let outcome = run(&dir, &[(name, value)], &[]);
        assert_rejected(&outcome, name, value, 2);
        assert!(
            !dir.path().join("data").exists(),
            "{name}={value}: nothing may be created before the configuration is valid"
        );
    }
}

#[test]
fn a_bad_flag_value_names_the_flag() {
    let dir = TempDir::new("config-flag");
    let outcome = run(&dir, &[], &["serve", "--shutdown-timeout=never"]);
    assert_rejected(&outcome, "--shutdown-timeout", "never", 2);
}

#[test]
fn an_unknown_argument_exits_2() {
    let dir = TempDir::new("config-unknown");
    let outcome = run(&dir, &[], &["--verbose"]);
    assert_rejected(&outcome, "argument", "--verbose", 2);
}

#[test]
fn health_check_with_a_bad_listen_address_exits_1_not_2() {
    // Docker reserves exit status 2 of a health check.
    let dir = TempDir::new("config-probe");
    let outcome = run(&dir, &[("LISTEN_ADDR", "nowhere")], &["--health-check"]);
    assert_rejected(&outcome, "LISTEN_ADDR", "nowhere", 1);
}

#[test]
fn help_and_version_exit_0() {
    let dir = TempDir::new("config-help");
    let help = run(&dir, &[], &["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(
        help.stdout
            .iter()
            .any(|line| line.contains("SHUTDOWN_TIMEOUT"))
    );
    let version = run(&dir, &[], &["--version"]);
    assert_eq!(version.code, Some(0));
    assert_eq!(
        version.stdout,
        [format!("server {}", env!("CARGO_PKG_VERSION"))]
    );
}

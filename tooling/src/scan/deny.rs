//! cargo-deny on the workspace: advisories, bans, licenses and sources, as
//! deny.toml sets them. Its JSON diagnostics come one per line on stderr and
//! end with a `summary` line; a run without that line did not finish (most
//! often: the advisory database could not be fetched), and is an error.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::findings::{Finding, Findings};
use crate::process;
use crate::tools::{self, Tool};

/// Where cargo-deny fetches `RustSec`'s database from; a mirror replaces it
/// through git's `insteadOf`, as a site with a mirror would.
pub const ADVISORY_DB_URL: &str = "https://github.com/RustSec/advisory-db";

pub struct Outcome {
    pub findings: Findings,
    /// `advisories ok, bans ok, licenses ok, sources ok`.
    pub summary: String,
    /// The advisory database and its date.
    pub database: String,
    pub sarif: Value,
}

/// Runs cargo-deny on the workspace whose manifest is `manifest`.
pub fn run(sh: &Shell, manifest: &Path, mirror: Option<&str>) -> anyhow::Result<Outcome> {
    let cargo_deny = tools::require(sh, Tool::CargoDeny)?.path;
    let mirror_env = mirror.map(mirror_config).transpose()?;
    let deny = |format: &str| {
        let mut command = cmd!(
            sh,
            "{cargo_deny} --format {format} --color never --manifest-path {manifest} check"
        )
        .quiet()
        .ignore_status();
        for (key, value) in mirror_env.iter().flatten() {
            command = command.env(key, value);
        }
        command.output().context("cannot run cargo-deny")
    };
    let output = deny("json")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let (findings, summary) = parse(&stderr).map_err(|error| {
        let db = mirror.unwrap_or(ADVISORY_DB_URL);
        anyhow::anyhow!(
            "{error:#}; if the advisory database could not be fetched, give a mirror with --advisory-db (now {db}) or skip with --skip deny"
        )
    })?;
    let sarif_output = deny("sarif")?;
    let sarif =
        serde_json::from_slice(&sarif_output.stdout).context("cargo-deny's SARIF is not JSON")?;
    Ok(Outcome {
        findings,
        summary,
        database: database(sh, mirror),
        sarif,
    })
}

/// `GIT_CONFIG_*` that send cargo-deny's fetch to the mirror: a URL, or a
/// path to a clone or a bundle.
fn mirror_config(mirror: &str) -> anyhow::Result<Vec<(String, OsString)>> {
    let location: OsString = if mirror.contains("://") {
        mirror.into()
    } else {
        let path = PathBuf::from(mirror);
        path.canonicalize()
            .with_context(|| format!("the advisory database mirror {mirror} does not exist"))?
            .into()
    };
    let mut key = OsString::from("url.");
    key.push(&location);
    key.push(".insteadOf");
    Ok(vec![
        ("GIT_CONFIG_COUNT".to_owned(), "1".into()),
        ("GIT_CONFIG_KEY_0".to_owned(), key),
        ("GIT_CONFIG_VALUE_0".to_owned(), ADVISORY_DB_URL.into()),
    ])
}

/// Reads the diagnostics: errors gate, warnings are shown.
pub fn parse(stderr: &str) -> anyhow::Result<(Findings, String)> {
    let mut findings = Findings::default();
    let mut summary = None;
    for line in stderr.lines().filter(|l| l.trim_start().starts_with('{')) {
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("cargo-deny printed a line that is not JSON: {line:.80}"))?;
        match value["type"].as_str() {
            Some("summary") => summary = Some(describe_summary(&value["fields"])),
            Some("diagnostic") => {
                let fields = &value["fields"];
                let severity = fields["severity"].as_str().unwrap_or("error").to_owned();
                if !matches!(severity.as_str(), "error" | "warning") {
                    continue;
                }
                let krate = &fields["graphs"][0]["Krate"];
                let advisory = &fields["advisory"];
                findings.findings.push(Finding {
                    id: advisory["id"]
                        .as_str()
                        .or(fields["code"].as_str())
                        .unwrap_or("?")
                        .to_owned(),
                    gating: severity == "error",
                    severity,
                    package: krate["name"].as_str().unwrap_or_default().to_owned(),
                    installed: krate["version"].as_str().unwrap_or_default().to_owned(),
                    fixed: advisory["patched_versions"]
                        .as_array()
                        .filter(|v| !v.is_empty())
                        .map(|v| {
                            v.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        }),
                    title: advisory["title"]
                        .as_str()
                        .or(fields["message"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    location: "Cargo.lock".to_owned(),
                });
            }
            _ => {}
        }
    }
    let Some(summary) = summary else {
        bail!(
            "cargo-deny ended without its summary: {}",
            process::last_line(stderr)
        );
    };
    Ok((findings, summary))
}

fn describe_summary(fields: &Value) -> String {
    ["advisories", "bans", "licenses", "sources"]
        .iter()
        .map(|check| {
            let errors = fields[check]["errors"].as_u64().unwrap_or(0);
            if errors == 0 {
                format!("{check} ok")
            } else {
                format!("{check} FAILED ({errors} errors)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The clone cargo-deny keeps, and the date of its last commit.
fn database(sh: &Shell, mirror: Option<&str>) -> String {
    let source = mirror.unwrap_or(ADVISORY_DB_URL);
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(
        || std::env::home_dir().unwrap_or_default().join(".cargo"),
        PathBuf::from,
    );
    let newest = std::fs::read_dir(cargo_home.join("advisory-dbs"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("advisory-db-")
        })
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .map(|entry| entry.path());
    let date =
        newest.and_then(|dir| process::read(cmd!(sh, "git -C {dir} log -1 --format=%cs")).ok());
    match date {
        Some(date) => format!("RustSec advisory-db from {source}, as of {}", date.trim()),
        None => format!("RustSec advisory-db from {source}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_gate_and_warnings_are_shown() {
        let stderr = r#"{"fields":{"code":"duplicate","graphs":[{"Krate":{"name":"syn","version":"2.0.1"}}],"message":"found 2 duplicate entries for crate 'syn'","severity":"warning"},"type":"diagnostic"}
{"fields":{"advisory":{"id":"RUSTSEC-2020-0071","package":"time","patched_versions":[">=0.2.23"],"title":"Potential segfault in the time crate"},"code":"vulnerability","graphs":[{"Krate":{"name":"time","version":"0.1.43"}}],"message":"Potential segfault","severity":"error"},"type":"diagnostic"}
{"fields":{"advisories":{"errors":1,"helps":0,"notes":0,"warnings":0},"bans":{"errors":0},"licenses":{"errors":0},"sources":{"errors":0}},"type":"summary"}"#;
        let (findings, summary) = parse(stderr).unwrap();
        assert_eq!(
            summary,
            "advisories FAILED (1 errors), bans ok, licenses ok, sources ok"
        );
        let gating: Vec<&Finding> = findings.gating().collect();
        assert_eq!(gating.len(), 1);
        assert_eq!(gating[0].id, "RUSTSEC-2020-0071");
        assert_eq!(gating[0].package, "time");
        assert_eq!(gating[0].fixed.as_deref(), Some(">=0.2.23"));
        assert_eq!(findings.findings.len(), 2);
    }

    #[test]
    fn a_run_without_its_summary_is_an_error() {
        let error =
            parse("2026-11-23 [ERROR] failed to fetch advisory database: network unreachable\n")
                .unwrap_err();
        assert!(error.to_string().contains("without its summary"), "{error}");
        assert!(error.to_string().contains("network unreachable"), "{error}");
    }

    #[test]
    fn a_mirror_that_does_not_exist_is_named() {
        let error = mirror_config("/nonexistent/advisory-db.bundle").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the advisory database mirror /nonexistent/advisory-db.bundle does not exist"
        );
    }
}

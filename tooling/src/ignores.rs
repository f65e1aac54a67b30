//! trivy's YAML ignore file (`.trivyignore.yaml`), read here too: trivy
//! applies it (`--ignorefile`), and the xtask refuses an entry that does not
//! say why it is accepted and names each entry that has expired, since an
//! expired ignore silently stops ignoring. `scan` and `publish` both turn it
//! into an `OpenVEX` document (`vex.rs`).

use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use yaml_rust2::{Yaml, YamlLoader};

/// The sections trivy reads.
const SECTIONS: [&str; 4] = [
    "vulnerabilities",
    "misconfigurations",
    "secrets",
    "licenses",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignore {
    pub section: String,
    pub id: String,
    /// The packages it is limited to; none means every package.
    pub purls: Vec<String>,
    /// `YYYY-MM-DD`; from that day on the entry no longer applies.
    pub expired_at: Option<String>,
    pub statement: String,
    /// One of `OpenVEX`'s five justifications, for the VEX document; trivy
    /// reads past the key.
    pub justification: Option<String>,
}

/// `OpenVEX`'s justifications for `not_affected`, as the spec names them.
pub const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

impl Ignore {
    pub fn expired(&self, today: &str) -> bool {
        self.expired_at.as_deref().is_some_and(|date| date <= today)
    }
}

pub fn load(path: &Path) -> anyhow::Result<Vec<Ignore>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a trivy ignore file", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Ignore>> {
    let documents = YamlLoader::load_from_str(text).context("not YAML")?;
    let Some(document) = documents.first() else {
        return Ok(Vec::new());
    };
    let Some(sections) = document.as_hash() else {
        bail!("the top level is not a mapping of {}", SECTIONS.join(", "));
    };
    let mut ignores = Vec::new();
    for (key, entries) in sections {
        let section = key.as_str().unwrap_or_default();
        if !SECTIONS.contains(&section) {
            bail!(
                "unknown section {key:?}: trivy reads {}",
                SECTIONS.join(", ")
            );
        }
        let entries = match entries {
            Yaml::Null => continue,
            Yaml::Array(entries) => entries,
            _ => bail!("{section} is not a list"),
        };
        for entry in entries {
            ignores.push(parse_entry(section, entry)?);
        }
    }
    Ok(ignores)
}

fn parse_entry(section: &str, entry: &Yaml) -> anyhow::Result<Ignore> {
    let text = |key: &str| match &entry[key] {
        Yaml::String(s) | Yaml::Real(s) => Some(s.trim().to_owned()),
        Yaml::Integer(n) => Some(n.to_string()),
        _ => None,
    };
    let id = text("id")
        .filter(|id| !id.is_empty())
        .with_context(|| format!("an entry in {section} has no id"))?;
    let statement = text("statement")
        .filter(|s| !s.is_empty())
        .with_context(|| format!("the ignore of {id} has no statement: say why it is accepted"))?;
    let expired_at = text("expired_at");
    if let Some(date) = &expired_at
        && !is_date(date)
    {
        bail!("the ignore of {id} has expired_at {date:?}, not a date like 2026-12-31");
    }
    let justification = text("justification");
    if let Some(justification) = &justification
        && !JUSTIFICATIONS.contains(&justification.as_str())
    {
        bail!(
            "the ignore of {id} has justification {justification:?}, not one of OpenVEX's: {}",
            JUSTIFICATIONS.join(", ")
        );
    }
    let purls = match &entry["purls"] {
        Yaml::BadValue | Yaml::Null => Vec::new(),
        Yaml::Array(purls) => purls
            .iter()
            .map(|purl| match purl {
                Yaml::String(purl) if purl.starts_with("pkg:") => Ok(purl.trim().to_owned()),
                other => bail!("the ignore of {id} has a purl that is not one: {other:?}"),
            })
            .collect::<anyhow::Result<_>>()?,
        _ => bail!("the ignore of {id} has purls that are not a list"),
    };
    Ok(Ignore {
        section: section.to_owned(),
        id,
        purls,
        expired_at,
        statement,
        justification,
    })
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_and_knows_which_expired() {
        let ignores = parse(
            "vulnerabilities:\n  - id: CVE-2099-1001\n    purls:\n      - pkg:deb/debian/libc6\n    expired_at: 2020-01-01\n    statement: fixed upstream soon\n  - id: CVE-2099-1002\n    statement: not reachable\nmisconfigurations:\n  - id: DS-0002\n    expired_at: 2099-01-01\n    statement: runs as nonroot by USER 65532:65532\nsecrets:\n",
        )
        .unwrap();
        assert_eq!(ignores.len(), 3);
        assert!(ignores[0].expired("2026-11-23"));
        assert!(!ignores[1].expired("2026-11-23"));
        assert!(!ignores[2].expired("2026-11-23"));
        assert!(
            ignores[2].expired("2099-01-01"),
            "expired on the day itself"
        );
        assert_eq!(ignores[2].section, "misconfigurations");
        assert_eq!(ignores[0].purls, ["pkg:deb/debian/libc6"]);
        assert!(ignores[1].purls.is_empty());
    }

    #[test]
    fn a_justification_must_be_one_of_openvexs_five() {
        let ignores = parse(
            "vulnerabilities:\n  - id: CVE-2099-1001\n    justification: vulnerable_code_not_in_execute_path\n    statement: s\n",
        )
        .unwrap();
        assert_eq!(
            ignores[0].justification.as_deref(),
            Some("vulnerable_code_not_in_execute_path")
        );
        let error = parse(
            "vulnerabilities:\n  - id: CVE-2099-1001\n    justification: not_reachable\n    statement: s\n",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the ignore of CVE-2099-1001 has justification \"not_reachable\", not one of OpenVEX's: component_not_present, vulnerable_code_not_present, vulnerable_code_not_in_execute_path, vulnerable_code_cannot_be_controlled_by_adversary, inline_mitigations_already_exist"
        );
    }

    #[test]
    fn an_ignore_without_a_statement_is_refused() {
        let error = parse("vulnerabilities:\n  - id: CVE-2099-1001\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the ignore of CVE-2099-1001 has no statement: say why it is accepted"
        );
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        for (text, expected) in [
            ("- a\n- b\n", "the top level is not a mapping"),
            ("vulns:\n  - id: X\n", "unknown section"),
            ("vulnerabilities: CVE-1\n", "is not a list"),
            ("vulnerabilities:\n  - statement: why\n", "has no id"),
            (
                "vulnerabilities:\n  - id: X\n    statement: s\n    expired_at: soon\n",
                "not a date",
            ),
            ("vulnerabilities: [\n", "not YAML"),
            (
                "vulnerabilities:\n  - id: X\n    statement: s\n    purls: pkg:deb/debian/a\n",
                "purls that are not a list",
            ),
            (
                "vulnerabilities:\n  - id: X\n    statement: s\n    purls: [libc6]\n",
                "a purl that is not one",
            ),
        ] {
            let error = format!("{:#}", parse(text).unwrap_err());
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        assert!(parse("").unwrap().is_empty());
    }
}

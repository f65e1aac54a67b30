//! trivy's YAML ignore file (`.trivyignore.yaml`), read here too: trivy
//! applies it (`--ignorefile`), and the xtask refuses an entry that does not
//! say why it is accepted and names each entry that has expired, since an
//! expired ignore silently stops ignoring.

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
    /// `YYYY-MM-DD`; from that day on the entry no longer applies.
    pub expired_at: Option<String>,
    pub statement: String,
}

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
    Ok(Ignore {
        section: section.to_owned(),
        id,
        expired_at,
        statement,
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
        ] {
            let error = format!("{:#}", parse(text).unwrap_err());
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        assert!(parse("").unwrap().is_empty());
    }
}

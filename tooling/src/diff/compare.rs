//! Two snapshots compared: pure set arithmetic, tested without docker.
//!
//! A package is named by its name; the same crate can be in the graph at
//! two versions (`syn` 1 and 2), so each name's versions are compared as
//! sets: a version on both sides is unchanged, and the rest are paired as
//! changes, within one semver line first (`2.0.100` → `2.0.101`), then in
//! order; what is left over was added or removed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::snapshot::{Found, LayerSize, Package, ScanState, Snapshot};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub base: Subject,
    pub head: Subject,
    pub debian_packages: Changes,
    pub crates: Changes,
    pub unpacked: SizeChange,
    /// Gzip-compressed layers: what a registry stores and a pull transfers.
    pub on_the_wire: SizeChange,
    /// By position, base layer first.
    pub layers: Vec<LayerChange>,
    pub findings: FindingsChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub image: String,
    pub image_id: String,
    pub revision: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub changed: Vec<VersionChange>,
    /// Name and version the same on both sides.
    pub unchanged: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    pub name: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeChange {
    pub base: u64,
    pub head: u64,
    pub change: i64,
}

impl SizeChange {
    fn of(base: u64, head: u64) -> SizeChange {
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        SizeChange {
            base,
            head,
            change: signed(head) - signed(base),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerChange {
    pub number: usize,
    /// The head's step, or the base's for a layer the head no longer has.
    pub instruction: String,
    /// The base's step, when it was another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_instruction: Option<String>,
    /// `None` on the side that has no layer at this position.
    pub unpacked: (Option<u64>, Option<u64>),
    pub on_the_wire: (Option<u64>, Option<u64>),
    pub unpacked_change: i64,
    pub on_the_wire_change: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FindingsChange {
    Compared {
        appeared: Vec<Found>,
        disappeared: Vec<Found>,
        /// On both sides.
        remaining: usize,
    },
    /// One side (or both) has no scan report: nothing is claimed.
    NotCompared {
        #[serde(skip_serializing_if = "Option::is_none")]
        base: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        head: Option<String>,
    },
}

pub fn compare(base: &Snapshot, head: &Snapshot) -> Comparison {
    let subject = |s: &Snapshot| Subject {
        image: s.image.clone(),
        image_id: s.image_id.clone(),
        revision: s.revision.clone(),
    };
    Comparison {
        base: subject(base),
        head: subject(head),
        debian_packages: packages(&base.debian_packages, &head.debian_packages),
        crates: packages(&base.crates, &head.crates),
        unpacked: SizeChange::of(base.unpacked_bytes, head.unpacked_bytes),
        on_the_wire: SizeChange::of(base.compressed_bytes, head.compressed_bytes),
        layers: layers(&base.layers, &head.layers),
        findings: findings(&base.findings, &head.findings),
    }
}

/// Added, removed and changed, by name; see the module's account.
pub fn packages(base: &[Package], head: &[Package]) -> Changes {
    let mut by_name: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for p in base {
        by_name.entry(&p.name).or_default().0.insert(&p.version);
    }
    for p in head {
        by_name.entry(&p.name).or_default().1.insert(&p.version);
    }
    let mut changes = Changes::default();
    for (name, (before, after)) in by_name {
        changes.unchanged += before.intersection(&after).count();
        let mut gone: Vec<&str> = before.difference(&after).copied().collect();
        let mut new: Vec<&str> = after.difference(&before).copied().collect();
        let mut pairs = Vec::new();
        gone.retain(
            |from| match new.iter().position(|to| line(to) == line(from)) {
                Some(at) => {
                    pairs.push((*from, new.remove(at)));
                    false
                }
                None => true,
            },
        );
        while !gone.is_empty() && !new.is_empty() {
            pairs.push((gone.remove(0), new.remove(0)));
        }
        let package = |version: &str| Package {
            name: name.to_owned(),
            version: version.to_owned(),
        };
        changes.removed.extend(gone.into_iter().map(package));
        changes.added.extend(new.into_iter().map(package));
        pairs.sort_unstable();
        changes
            .changed
            .extend(pairs.into_iter().map(|(from, to)| VersionChange {
                name: name.to_owned(),
                from: from.to_owned(),
                to: to.to_owned(),
            }));
    }
    changes
}

/// The semver line a version belongs to: its major, or `0.minor`.
fn line(version: &str) -> &str {
    let mut parts = version.splitn(3, '.');
    let major = parts.next().unwrap_or_default();
    if major == "0" {
        let minor = parts.next().map_or(0, str::len);
        &version[..(major.len() + 1 + minor).min(version.len())]
    } else {
        major
    }
}

fn layers(base: &[LayerSize], head: &[LayerSize]) -> Vec<LayerChange> {
    let signed = |n: Option<u64>| n.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    (0..base.len().max(head.len()))
        .map(|at| {
            let (b, h) = (base.get(at), head.get(at));
            let instruction = h.or(b).map(|l| l.instruction.clone()).unwrap_or_default();
            let base_instruction = b
                .filter(|b| h.is_some_and(|h| h.instruction != b.instruction))
                .map(|b| b.instruction.clone());
            let unpacked = (b.map(|l| l.unpacked_bytes), h.map(|l| l.unpacked_bytes));
            let wire = (b.map(|l| l.compressed_bytes), h.map(|l| l.compressed_bytes));
            LayerChange {
                number: at + 1,
                instruction,
                base_instruction,
                unpacked,
                on_the_wire: wire,
                unpacked_change: signed(unpacked.1) - signed(unpacked.0),
                on_the_wire_change: signed(wire.1) - signed(wire.0),
            }
        })
        .collect()
}

/// A finding is the same on both sides when its id and package are.
fn findings(base: &ScanState, head: &ScanState) -> FindingsChange {
    let (ScanState::Scanned { findings: b, .. }, ScanState::Scanned { findings: h, .. }) =
        (base, head)
    else {
        let reason = |s: &ScanState| match s {
            ScanState::NotScanned { reason } => Some(reason.clone()),
            ScanState::Scanned { .. } => None,
        };
        return FindingsChange::NotCompared {
            base: reason(base),
            head: reason(head),
        };
    };
    let key = |f: &Found| (f.id.clone(), f.package.clone());
    let before: BTreeSet<_> = b.iter().map(key).collect();
    let after: BTreeSet<_> = h.iter().map(key).collect();
    let only_in = |side: &[Found], other: &BTreeSet<(String, String)>| {
        let mut only: Vec<Found> = side
            .iter()
            .filter(|f| !other.contains(&key(f)))
            .cloned()
            .collect();
        only.sort();
        only.dedup();
        only
    };
    FindingsChange::Compared {
        appeared: only_in(h, &before),
        disappeared: only_in(b, &after),
        remaining: before.intersection(&after).count(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::diff::snapshot::FORMAT;

    fn p(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
        }
    }

    fn change(name: &str, from: &str, to: &str) -> VersionChange {
        VersionChange {
            name: name.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn found(id: &str, package: &str, severity: &str) -> Found {
        Found {
            id: id.into(),
            package: package.into(),
            installed: "1".into(),
            severity: severity.into(),
        }
    }

    fn layer(number: usize, instruction: &str, unpacked: u64, wire: u64) -> LayerSize {
        LayerSize {
            number,
            instruction: instruction.into(),
            unpacked_bytes: unpacked,
            compressed_bytes: wire,
        }
    }

    /// A hand-made image before a change: `syn` at two versions, a crate
    /// and a Debian package that go, one scan finding that goes.
    pub(crate) fn base() -> Snapshot {
        Snapshot {
            format: FORMAT.into(),
            image: "server:base".into(),
            image_id: format!("sha256:{}", "a".repeat(64)),
            revision: "1111111".into(),
            debian_packages: vec![
                p("base-files", "13.8+deb13u1"),
                p("libc6", "2.41-12"),
                p("netbase", "6.5"),
            ],
            crates: vec![
                p("itoa", "1.0.15"),
                p("server", "0.1.0"),
                p("syn", "1.0.109"),
                p("syn", "2.0.100"),
                p("time", "0.3.41"),
            ],
            unpacked_bytes: 34_400_000,
            compressed_bytes: 12_000_000,
            layers: vec![
                layer(1, "(Imported from -)", 27_000_000, 9_000_000),
                layer(2, "COPY etc/ /etc/", 500_000, 100_000),
                layer(
                    3,
                    "COPY /out/server /usr/local/bin/server",
                    6_900_000,
                    2_900_000,
                ),
            ],
            findings: ScanState::Scanned {
                reports: vec!["target/xtask/scan/server-base/trivy-image.json".into()],
                findings: vec![
                    found("CVE-2025-0001", "libc6", "HIGH"),
                    found("RUSTSEC-2025-0002", "time", "MEDIUM"),
                ],
            },
        }
    }

    /// The same image after: `itoa` down a patch, `syn` 2 up a patch and
    /// 1 gone, `time` gone, `serde` new, `netbase` gone, a layer more.
    pub(crate) fn head() -> Snapshot {
        Snapshot {
            image: "server:head".into(),
            image_id: format!("sha256:{}", "b".repeat(64)),
            revision: "2222222".into(),
            debian_packages: vec![p("base-files", "13.8+deb13u1"), p("libc6", "2.41-13")],
            crates: vec![
                p("itoa", "1.0.14"),
                p("serde", "1.0.228"),
                p("server", "0.1.0"),
                p("syn", "2.0.101"),
            ],
            unpacked_bytes: 34_412_345,
            compressed_bytes: 12_004_100,
            layers: vec![
                layer(1, "(Imported from -)", 27_000_000, 9_000_000),
                layer(2, "COPY etc/ /etc/", 500_000, 100_000),
                layer(
                    3,
                    "COPY /out/server /usr/local/bin/server",
                    6_912_000,
                    2_903_900,
                ),
                layer(4, "COPY probe /usr/local/bin/probe", 345, 200),
            ],
            findings: ScanState::Scanned {
                reports: vec!["target/xtask/scan/server-head/trivy-image.json".into()],
                findings: vec![
                    found("CVE-2025-0001", "libc6", "HIGH"),
                    found("CVE-2025-0003", "libc6", "CRITICAL"),
                ],
            },
            ..base()
        }
    }

    #[test]
    fn packages_are_added_removed_or_changed_by_name() {
        let changes = packages(
            &[p("a", "1.0.0"), p("b", "2.0.0"), p("c", "0.3.1")],
            &[p("a", "1.0.0"), p("c", "0.3.2"), p("d", "4.0.0")],
        );
        assert_eq!(changes.added, [p("d", "4.0.0")]);
        assert_eq!(changes.removed, [p("b", "2.0.0")]);
        assert_eq!(changes.changed, [change("c", "0.3.1", "0.3.2")]);
        assert_eq!(changes.unchanged, 1);
    }

    #[test]
    fn a_crate_at_two_versions_changes_within_its_semver_line() {
        let changes = packages(
            &[p("syn", "1.0.109"), p("syn", "2.0.100")],
            &[p("syn", "2.0.101")],
        );
        assert_eq!(changes.changed, [change("syn", "2.0.100", "2.0.101")]);
        assert_eq!(changes.removed, [p("syn", "1.0.109")]);
        assert!(changes.added.is_empty());
    }

    #[test]
    fn a_crate_kept_at_one_of_its_two_versions_is_not_a_change() {
        let changes = packages(
            &[p("syn", "1.0.109"), p("syn", "2.0.100")],
            &[p("syn", "1.0.109"), p("syn", "2.0.100"), p("syn", "3.0.0")],
        );
        assert_eq!(changes.added, [p("syn", "3.0.0")]);
        assert!(changes.changed.is_empty() && changes.removed.is_empty());
        assert_eq!(changes.unchanged, 2);
    }

    #[test]
    fn a_major_upgrade_with_nothing_else_left_is_a_change() {
        let changes = packages(&[p("nom", "7.1.3")], &[p("nom", "8.0.0")]);
        assert_eq!(changes.changed, [change("nom", "7.1.3", "8.0.0")]);
    }

    #[test]
    fn zero_versions_have_their_minor_as_their_line() {
        assert_eq!(line("0.3.41"), "0.3");
        assert_eq!(line("2.0.100"), "2");
        assert_eq!(line("2.41-12"), "2");
        assert_eq!(line("0"), "0");
    }

    #[test]
    fn identical_sides_change_nothing() {
        let comparison = compare(&base(), &base());
        assert!(comparison.crates.is_empty() && comparison.debian_packages.is_empty());
        assert_eq!(comparison.unpacked.change, 0);
        assert!(comparison.layers.iter().all(|l| l.unpacked_change == 0));
    }

    #[test]
    fn sizes_change_in_total_and_by_layer_position() {
        let comparison = compare(&base(), &head());
        assert_eq!(comparison.unpacked.change, 12_345);
        assert_eq!(comparison.on_the_wire.change, 4_100);
        assert_eq!(comparison.layers[2].unpacked_change, 12_000);
        assert_eq!(comparison.layers[3].unpacked, (None, Some(345)));
        assert_eq!(comparison.layers[3].unpacked_change, 345);
    }

    #[test]
    fn findings_appear_and_disappear_only_when_both_sides_were_scanned() {
        let comparison = compare(&base(), &head());
        let FindingsChange::Compared {
            appeared,
            disappeared,
            remaining,
        } = &comparison.findings
        else {
            panic!("{:?}", comparison.findings)
        };
        assert_eq!(appeared[0].id, "CVE-2025-0003");
        assert_eq!(disappeared[0].id, "RUSTSEC-2025-0002");
        assert_eq!(*remaining, 1);
        let unscanned = Snapshot {
            findings: ScanState::NotScanned {
                reason: "no scan report".into(),
            },
            ..base()
        };
        assert_eq!(
            compare(&unscanned, &head()).findings,
            FindingsChange::NotCompared {
                base: Some("no scan report".into()),
                head: None
            }
        );
    }
}

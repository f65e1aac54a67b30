//! What differs between two builds of one image, in the manner of diffoci:
//! the config's fields, then each layer by position, and in a layer that
//! differs, each file by path: content, mode, owner, time, link.

use std::collections::BTreeMap;

use crate::docker::oci_layout::{LayerEntry, OciImage, OciLayout};
use crate::docker::tar_stream::Kind;

/// Files named per differing layer before the rest is counted.
const FILES_SHOWN: usize = 12;

/// One difference, for a person to read: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `config`, `layer 2 of 3`, or `manifest`.
    pub place: String,
    pub detail: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.detail)
    }
}

/// Every difference between two layouts; empty when their digests agree.
pub fn diff(first: &OciLayout, second: &OciLayout) -> anyhow::Result<Vec<Difference>> {
    if first.digest == second.digest {
        return Ok(Vec::new());
    }
    if first.images.len() != second.images.len() {
        return Ok(vec![Difference {
            place: "index".to_owned(),
            detail: format!(
                "{} platforms against {}",
                first.images.len(),
                second.images.len()
            ),
        }]);
    }
    let mut differences = Vec::new();
    for (a, b) in first.images.iter().zip(&second.images) {
        let prefix = a
            .platform
            .as_deref()
            .map(|platform| format!("{platform} "))
            .unwrap_or_default();
        differences.extend(image_diff(first, a, second, b, &prefix)?);
    }
    if differences.is_empty() {
        // Same images, different wrapping: annotations or media types.
        differences.push(Difference {
            place: "manifest".to_owned(),
            detail: format!(
                "{} against {}, with equal configs and layers (annotations or media types differ)",
                first.digest, second.digest
            ),
        });
    }
    Ok(differences)
}

fn image_diff(
    first: &OciLayout,
    a: &OciImage,
    second: &OciLayout,
    b: &OciImage,
    prefix: &str,
) -> anyhow::Result<Vec<Difference>> {
    let mut differences = Vec::new();
    if a.config_digest != b.config_digest {
        for detail in json_diff("", &a.config, &b.config) {
            differences.push(Difference {
                place: format!("{prefix}config"),
                detail,
            });
        }
    }
    if a.layers.len() != b.layers.len() {
        differences.push(Difference {
            place: format!("{prefix}layers"),
            detail: format!("{} against {}", a.layers.len(), b.layers.len()),
        });
        return Ok(differences);
    }
    let count = a.layers.len();
    for (position, (layer_a, layer_b)) in a.layers.iter().zip(&b.layers).enumerate() {
        if layer_a.digest == layer_b.digest {
            continue;
        }
        let place = format!("{prefix}layer {} of {count}", position + 1);
        let files = files_diff(
            &first.layer_entries(layer_a)?,
            &second.layer_entries(layer_b)?,
        );
        if files.is_empty() {
            differences.push(Difference {
                place,
                detail: format!(
                    "{} against {}, with the same files (the compression differs)",
                    layer_a.digest, layer_b.digest
                ),
            });
            continue;
        }
        let hidden = files.len().saturating_sub(FILES_SHOWN);
        differences.extend(
            files
                .into_iter()
                .take(FILES_SHOWN)
                .map(|detail| Difference {
                    place: place.clone(),
                    detail,
                }),
        );
        if hidden > 0 {
            differences.push(Difference {
                place,
                detail: format!("and {hidden} more files"),
            });
        }
    }
    Ok(differences)
}

/// The paths whose entries differ, each with what differs.
fn files_diff(a: &[LayerEntry], b: &[LayerEntry]) -> Vec<String> {
    let by_path = |entries: &[LayerEntry]| -> BTreeMap<String, LayerEntry> {
        entries
            .iter()
            .map(|entry| (entry.header.path.clone(), entry.clone()))
            .collect()
    };
    let (a_map, b_map) = (by_path(a), by_path(b));
    let mut lines = Vec::new();
    for (path, entry_a) in &a_map {
        let Some(entry_b) = b_map.get(path) else {
            lines.push(format!("/{path} only in the first build"));
            continue;
        };
        let mut what = Vec::new();
        let (ha, hb) = (&entry_a.header, &entry_b.header);
        if ha.kind != hb.kind {
            what.push(format!(
                "kind {} against {}",
                kind(&ha.kind),
                kind(&hb.kind)
            ));
        }
        if ha.size != hb.size {
            what.push(format!("size {} against {}", ha.size, hb.size));
        } else if entry_a.content != entry_b.content {
            what.push(format!(
                "content sha1 {} against {}",
                short(&entry_a.content),
                short(&entry_b.content)
            ));
        }
        if ha.mode != hb.mode {
            what.push(format!("mode {:o} against {:o}", ha.mode, hb.mode));
        }
        if (ha.uid, ha.gid) != (hb.uid, hb.gid) {
            what.push(format!(
                "owner {}:{} against {}:{}",
                ha.uid, ha.gid, hb.uid, hb.gid
            ));
        }
        if ha.mtime != hb.mtime {
            what.push(format!("mtime {} against {}", ha.mtime, hb.mtime));
        }
        if !what.is_empty() {
            lines.push(format!("/{path}: {}", what.join(", ")));
        }
    }
    lines.extend(
        b_map
            .keys()
            .filter(|path| !a_map.contains_key(*path))
            .map(|path| format!("/{path} only in the second build")),
    );
    // Archive order differs while every entry agrees: the tar itself differs.
    if lines.is_empty() {
        let order = |entries: &[LayerEntry]| -> Vec<String> {
            entries.iter().map(|e| e.header.path.clone()).collect()
        };
        if order(a) != order(b) {
            lines.push("the same entries in a different order".to_owned());
        }
    }
    lines
}

fn kind(kind: &Kind) -> String {
    match kind {
        Kind::File => "file".to_owned(),
        Kind::Directory => "directory".to_owned(),
        Kind::Symlink(target) => format!("symlink to {target}"),
        Kind::HardLink(target) => format!("hard link to {target}"),
        Kind::Other => "special file".to_owned(),
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// The JSON paths whose values differ, with both values.
fn json_diff(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    if a == b {
        return Vec::new();
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .flat_map(|key| {
                    let null = Value::Null;
                    json_diff(
                        &format!("{path}/{key}"),
                        a.get(key).unwrap_or(&null),
                        b.get(key).unwrap_or(&null),
                    )
                })
                .collect()
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .flat_map(|(i, (a, b))| json_diff(&format!("{path}/{i}"), a, b))
            .collect(),
        _ => vec![format!("{path} {a} against {b}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::oci_layout::testing::{archive_of, layout};
    use crate::docker::tar_stream::testing::Entry;
    use serde_json::json;

    fn read(files: &BTreeMap<String, Vec<u8>>) -> OciLayout {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("layout.tar");
        std::fs::write(&path, archive_of(files)).unwrap();
        OciLayout::read(&path).unwrap()
    }

    fn config(created: &str) -> serde_json::Value {
        json!({"architecture": "amd64", "created": created, "config": {"User": "65532"}})
    }

    #[test]
    fn identical_builds_have_no_difference() {
        let files = layout(
            &config("2026-01-01T00:00:00Z"),
            &[&[Entry::File("a", b"1")]],
        );
        assert_eq!(diff(&read(&files), &read(&files)).unwrap(), []);
    }

    #[test]
    fn names_the_config_field_and_the_file_that_differ() {
        let base: &[Entry<'_>] = &[Entry::Dir("etc/"), Entry::File("etc/os-release", b"13")];
        let first = layout(
            &config("2026-01-01T00:00:00Z"),
            &[
                base,
                &[
                    Entry::FileAt("bin/service", b"v1", 100),
                    Entry::File("same", b"s"),
                ],
            ],
        );
        let second = layout(
            &config("2026-01-02T00:00:00Z"),
            &[
                base,
                &[
                    Entry::FileAt("bin/service", b"v2", 200),
                    Entry::File("same", b"s"),
                ],
            ],
        );
        let differences = diff(&read(&first), &read(&second)).unwrap();
        let lines: Vec<String> = differences.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines[0],
            "config: /created \"2026-01-01T00:00:00Z\" against \"2026-01-02T00:00:00Z\""
        );
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[1].starts_with("layer 2 of 2: /bin/service: content sha1 "),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("mtime 100 against 200"), "{}", lines[1]);
    }

    #[test]
    fn files_in_one_build_only_are_named() {
        let first = layout(
            &config("t"),
            &[&[Entry::File("a", b"1"), Entry::File("tmp/x", b"")]],
        );
        let second = layout(
            &config("t"),
            &[&[Entry::File("a", b"1"), Entry::File("tmp/y", b"")]],
        );
        let lines: Vec<String> = diff(&read(&first), &read(&second))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "layer 1 of 1: /tmp/x only in the first build",
                "layer 1 of 1: /tmp/y only in the second build"
            ]
        );
    }

    #[test]
    fn many_differing_files_are_counted_not_listed() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
        let entries = |mtime: u64| -> Vec<Entry<'_>> {
            names
                .iter()
                .map(|name| Entry::FileAt(name, b"x", mtime))
                .collect()
        };
        let (a, b) = (entries(1), entries(2));
        let first = layout(&config("t"), &[&a]);
        let second = layout(&config("t"), &[&b]);
        let differences = diff(&read(&first), &read(&second)).unwrap();
        assert_eq!(differences.len(), FILES_SHOWN + 1);
        assert_eq!(
            differences.last().unwrap().detail,
            format!("and {} more files", 20 - FILES_SHOWN)
        );
    }
}

//! An image's build history: `docker history --no-trunc --human=false
//! --format '{{json .}}'`, parsed, and its steps matched to the layers.

use anyhow::{Context, bail};
use serde::Deserialize;
use xshell::Shell;

use super::Docker;
use super::save::{BuildStep, SavedLayer};

impl Docker {
    /// The image's build steps, oldest first.
    pub fn history(&self, sh: &Shell, reference: &str) -> anyhow::Result<Vec<HistoryRow>> {
        let text = self
            .output(
                sh,
                [
                    "history",
                    "--no-trunc",
                    "--human=false",
                    "--format",
                    "{{json .}}",
                    reference,
                ],
            )
            .with_context(|| format!("cannot read the history of {reference}"))?;
        parse_history(&text)
    }
}

/// One line of `docker history`, as a step of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub created_by: String,
    pub comment: String,
    /// Bytes the step added, as the engine counts them (file contents).
    pub size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRow {
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
    size: String,
}

/// Parses `docker history --format '{{json .}}'`, one object a line, newest
/// first as the engine prints it; returns the steps oldest first.
pub fn parse_history(text: &str) -> anyhow::Result<Vec<HistoryRow>> {
    let mut rows = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawRow = serde_json::from_str(line).with_context(|| {
            format!("docker history line {}: not the expected JSON", number + 1)
        })?;
        let size = parse_size(&raw.size).with_context(|| {
            format!(
                "docker history line {}: bad size {:?}",
                number + 1,
                raw.size
            )
        })?;
        rows.push(HistoryRow {
            created_by: raw.created_by,
            comment: raw.comment,
            size,
        });
    }
    rows.reverse();
    Ok(rows)
}

/// Bytes from `docker history`'s size: plain bytes with `--human=false`,
/// otherwise decimal units such as `1.74MB` or `121B`.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    if let Ok(bytes) = text.parse::<u64>() {
        return Ok(bytes);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().context("no number")?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "b" | "" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => bail!("unknown unit {other:?}"),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((number * scale).round() as u64)
}

pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// A filesystem layer with the step that made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layer {
    /// 1 for the base layer.
    pub number: usize,
    pub instruction: String,
    /// Bytes of file content the layer adds, as `docker history` reports.
    pub size_bytes: u64,
    /// Bytes of the layer's tar.
    pub tar_bytes: u64,
    /// Bytes gzip-compressed, as a registry stores it.
    pub compressed_bytes: u64,
}

/// Pairs the layers of a saved image with the history steps that made them.
///
/// `docker history` and the image config list the same steps in the same
/// order; the config says which made no layer (`ENV`, `USER`, …), which a
/// zero size cannot (a `COPY` of empty files makes a layer of size 0).
pub fn layers(
    rows: &[HistoryRow],
    steps: &[BuildStep],
    saved: &[SavedLayer],
) -> anyhow::Result<Vec<Layer>> {
    let makes_layer: Vec<bool> = if steps.len() == rows.len() {
        steps.iter().map(|s| !s.empty_layer).collect()
    } else {
        // A config without matching history (hand-assembled images): the
        // last `saved.len()` steps with content are the best guess.
        rows.iter().map(|r| r.size > 0).collect()
    };
    let layer_rows: Vec<&HistoryRow> = rows
        .iter()
        .zip(&makes_layer)
        .filter_map(|(row, &layer)| layer.then_some(row))
        .collect();
    if layer_rows.len() != saved.len() {
        bail!(
            "the image history names {} layer-making steps but the image has {} layers",
            layer_rows.len(),
            saved.len()
        );
    }
    Ok(layer_rows
        .into_iter()
        .zip(saved)
        .enumerate()
        .map(|(index, (row, layer))| Layer {
            number: index + 1,
            instruction: instruction(&row.created_by, &row.comment),
            size_bytes: row.size,
            tar_bytes: layer.tar_bytes,
            compressed_bytes: layer.compressed_bytes,
        })
        .collect())
}

/// The step as a person would write it: without the classic builder's
/// `/bin/sh -c #(nop)` and BuildKit's `# buildkit` marks.
pub fn instruction(created_by: &str, comment: &str) -> String {
    let text = created_by.trim();
    let text = text
        .strip_prefix("/bin/sh -c #(nop)")
        .map_or(text, str::trim_start);
    let text = text.strip_suffix("# buildkit").map_or(text, str::trim_end);
    if text.is_empty() {
        if comment.is_empty() {
            "(no instruction recorded)".to_owned()
        } else {
            format!("({comment})")
        }
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::save::SavedImage;

    const TINY_HISTORY: &str = include_str!("../../fixtures/tiny-history.jsonl");
    const TINY_SAVE: &[u8] = include_bytes!("../../fixtures/tiny-save.tar");
    const SERVER_HISTORY: &str = include_str!("../../fixtures/server-history.jsonl");

    #[test]
    fn history_is_returned_oldest_first() {
        let rows = parse_history(TINY_HISTORY).unwrap();
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[0].comment, "Imported from -");
        assert!(rows[6].created_by.starts_with("ENTRYPOINT"));
    }

    #[test]
    fn history_sizes_are_bytes() {
        let rows = parse_history(SERVER_HISTORY).unwrap();
        let copy = rows
            .iter()
            .find(|r| r.created_by.starts_with("COPY /out/server"))
            .unwrap();
        assert!(copy.size > 100_000, "{copy:?}");
    }

    #[test]
    fn human_sizes_are_read_in_decimal_units() {
        assert_eq!(parse_size("0B").unwrap(), 0);
        assert_eq!(parse_size("121B").unwrap(), 121);
        assert_eq!(parse_size("1.74MB").unwrap(), 1_740_000);
        assert_eq!(parse_size("13.3MB").unwrap(), 13_300_000);
        assert_eq!(parse_size("2kB").unwrap(), 2_000);
        assert!(parse_size("many").is_err());
    }

    #[test]
    fn a_line_that_is_not_json_names_its_number() {
        let error = parse_history("{\"Size\":\"1\"}\nnot json\n").unwrap_err();
        assert!(format!("{error:#}").contains("line 2"), "{error:#}");
    }

    #[test]
    fn instructions_lose_the_builders_marks() {
        assert_eq!(
            instruction("COPY server /usr/local/bin/server # buildkit", ""),
            "COPY server /usr/local/bin/server"
        );
        assert_eq!(instruction("/bin/sh -c #(nop)  ENV A=b", ""), "ENV A=b");
        assert_eq!(instruction("", "Imported from -"), "(Imported from -)");
    }

    #[test]
    fn layers_pair_steps_that_made_layers_with_the_saved_layers() {
        let rows = parse_history(TINY_HISTORY).unwrap();
        let saved = SavedImage::read(TINY_SAVE).unwrap();
        let layers = layers(&rows, &saved.history, &saved.layers).unwrap();
        let instructions: Vec<&str> = layers.iter().map(|l| l.instruction.as_str()).collect();
        assert_eq!(
            instructions,
            [
                "(Imported from -)",
                "COPY data/ /data/",
                "COPY server /usr/local/bin/server"
            ]
        );
        // `COPY data/` holds only an empty file: a layer of size 0.
        assert_eq!(layers[1].size_bytes, 0);
        assert_eq!(layers[2].size_bytes, 64);
        assert_eq!(layers[2].number, 3);
    }

    #[test]
    fn a_history_that_does_not_match_the_layers_is_an_error() {
        let rows = parse_history(TINY_HISTORY).unwrap();
        let saved = SavedImage::read(TINY_SAVE).unwrap();
        let error = layers(&rows, &saved.history, &saved.layers[..1]).unwrap_err();
        assert!(
            error.to_string().contains("3 layer-making steps"),
            "{error}"
        );
    }
}

//! A comparison for people: aligned tables on the terminal, and Markdown
//! for a pull request's job summary (`$GITHUB_STEP_SUMMARY`).

use std::fmt::Write as _;

use super::compare::{Changes, Comparison, FindingsChange, SizeChange};
use super::snapshot::Found;
use crate::docker::history::short_id;
use crate::output::{self, Table};

/// `+12.3 kB`, `-1.0 MB`, or `0 B` when nothing changed.
pub fn signed(change: i64) -> String {
    let size = output::size(change.unsigned_abs());
    match change.signum() {
        1 => format!("+{size}"),
        -1 => format!("-{size}"),
        _ => size,
    }
}

fn optional(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), output::size)
}

/// `itoa 1.0.15 → 1.0.14; 2 packages unchanged`, for headlines.
pub fn headline(comparison: &Comparison) -> String {
    let count =
        |changes: &Changes| changes.added.len() + changes.removed.len() + changes.changed.len();
    format!(
        "{} crates and {} Debian packages changed; {} unpacked, {} on the wire",
        count(&comparison.crates),
        count(&comparison.debian_packages),
        signed(comparison.unpacked.change),
        signed(comparison.on_the_wire.change)
    )
}

fn total_line(what: &str, size: SizeChange) -> [String; 4] {
    [
        what.to_owned(),
        output::size(size.base),
        output::size(size.head),
        if size.change == 0 {
            "0 B (no change)".to_owned()
        } else {
            signed(size.change)
        },
    ]
}

fn changes_summary(changes: &Changes) -> String {
    if changes.is_empty() {
        return format!("no change ({} on both sides)", changes.unchanged);
    }
    format!(
        "{} changed, {} added, {} removed ({} unchanged)",
        changes.changed.len(),
        changes.added.len(),
        changes.removed.len(),
        changes.unchanged
    )
}

/// Each change as a row: what, name, base version, head version.
fn change_rows(changes: &Changes) -> Vec<[String; 4]> {
    let mut rows: Vec<[String; 4]> = changes
        .changed
        .iter()
        .map(|c| {
            [
                "changed".into(),
                c.name.clone(),
                c.from.clone(),
                c.to.clone(),
            ]
        })
        .collect();
    rows.extend(changes.added.iter().map(|p| {
        [
            "added".into(),
            p.name.clone(),
            "-".into(),
            p.version.clone(),
        ]
    }));
    rows.extend(changes.removed.iter().map(|p| {
        [
            "removed".into(),
            p.name.clone(),
            p.version.clone(),
            "-".into(),
        ]
    }));
    rows
}

fn layer_rows(comparison: &Comparison) -> Vec<[String; 8]> {
    comparison
        .layers
        .iter()
        .map(|l| {
            let instruction = match &l.base_instruction {
                Some(before) => format!(
                    "{} (was: {})",
                    output::truncate(&l.instruction, 48),
                    output::truncate(before, 24)
                ),
                None => output::truncate(&l.instruction, 72),
            };
            [
                l.number.to_string(),
                optional(l.unpacked.0),
                optional(l.unpacked.1),
                signed(l.unpacked_change),
                optional(l.on_the_wire.0),
                optional(l.on_the_wire.1),
                signed(l.on_the_wire_change),
                instruction,
            ]
        })
        .collect()
}

fn found_text(f: &Found) -> String {
    format!("{} {} ({} {})", f.severity, f.id, f.package, f.installed)
}

/// The findings' account; `None` for each side that was scanned.
fn not_compared(base: Option<&String>, head: Option<&String>) -> String {
    let mut sides = Vec::new();
    if let Some(reason) = base {
        sides.push(format!("base not scanned: {reason}"));
    }
    if let Some(reason) = head {
        sides.push(format!("head not scanned: {reason}"));
    }
    format!("NOT COMPARED ({})", sides.join("; "))
}

/// For the terminal.
pub fn table(comparison: &Comparison) -> String {
    let (base, head) = (&comparison.base, &comparison.head);
    let mut out = format!(
        "base  {} ({}) from {}\nhead  {} ({}) from {}\n\n",
        base.image,
        short_id(&base.image_id),
        base.revision,
        head.image,
        short_id(&head.image_id),
        head.revision
    );
    let mut sizes = Table::new(&["size", "base", "head", "change"]).right_align(&[1, 2, 3]);
    sizes.row(total_line("unpacked", comparison.unpacked));
    sizes.row(total_line("on the wire", comparison.on_the_wire));
    out.push_str(&sizes.render());
    out.push('\n');
    let mut layers = Table::new(&[
        "layer",
        "base",
        "head",
        "change",
        "base wire",
        "head wire",
        "change",
        "instruction",
    ])
    .right_align(&[0, 1, 2, 3, 4, 5, 6]);
    for row in layer_rows(comparison) {
        layers.row(row);
    }
    out.push_str(&layers.render());
    for (what, changes) in [
        ("Debian packages", &comparison.debian_packages),
        ("crates", &comparison.crates),
    ] {
        let _ = writeln!(out, "\n{what}: {}", changes_summary(changes));
        if !changes.is_empty() {
            let mut table = Table::new(&["", "name", "base", "head"]);
            for row in change_rows(changes) {
                table.row(row);
            }
            out.push_str(&table.render());
        }
    }
    match &comparison.findings {
        FindingsChange::Compared {
            appeared,
            disappeared,
            remaining,
        } => {
            let _ = writeln!(
                out,
                "\nfindings: {} appeared, {} disappeared ({remaining} on both sides)",
                appeared.len(),
                disappeared.len()
            );
            for f in appeared {
                let _ = writeln!(out, "  + {}", found_text(f));
            }
            for f in disappeared {
                let _ = writeln!(out, "  - {}", found_text(f));
            }
        }
        FindingsChange::NotCompared { base, head } => {
            let _ = writeln!(
                out,
                "\nfindings: {}",
                not_compared(base.as_ref(), head.as_ref())
            );
        }
    }
    out
}

/// A table cell: no pipe or line break may end the cell early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn markdown_table<const N: usize>(
    out: &mut String,
    headers: [&str; N],
    right: &[usize],
    rows: &[[String; N]],
) {
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let rule: Vec<&str> = (0..N)
        .map(|i| if right.contains(&i) { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// For a pull request's job summary.
pub fn markdown(comparison: &Comparison) -> String {
    let (base, head) = (&comparison.base, &comparison.head);
    let mut out = format!(
        "### Image diff: `{}` → `{}`\n\nbase `{}` ({}), head `{}` ({})\n\n",
        cell(&base.image),
        cell(&head.image),
        short_id(&base.image_id),
        cell(&base.revision),
        short_id(&head.image_id),
        cell(&head.revision)
    );
    markdown_table(
        &mut out,
        ["size", "base", "head", "change"],
        &[1, 2, 3],
        &[
            total_line("unpacked", comparison.unpacked),
            total_line("on the wire (gzip)", comparison.on_the_wire),
        ],
    );
    out.push_str("\n<details><summary>Layers, by position</summary>\n\n");
    markdown_table(
        &mut out,
        [
            "#",
            "base",
            "head",
            "change",
            "base wire",
            "head wire",
            "change",
            "instruction",
        ],
        &[0, 1, 2, 3, 4, 5, 6],
        &layer_rows(comparison),
    );
    out.push_str("\n</details>\n");
    for (what, changes) in [
        ("Debian packages", &comparison.debian_packages),
        ("Crates", &comparison.crates),
    ] {
        let _ = writeln!(out, "\n**{what}**: {}", changes_summary(changes));
        if !changes.is_empty() {
            out.push('\n');
            markdown_table(
                &mut out,
                ["", "name", "base", "head"],
                &[],
                &change_rows(changes),
            );
        }
    }
    match &comparison.findings {
        FindingsChange::Compared {
            appeared,
            disappeared,
            remaining,
        } => {
            let _ = writeln!(
                out,
                "\n**Findings**: {} appeared, {} disappeared ({remaining} on both sides)",
                appeared.len(),
                disappeared.len()
            );
            let rows: Vec<[String; 4]> = appeared
                .iter()
                .map(|f| ("appeared", f))
                .chain(disappeared.iter().map(|f| ("disappeared", f)))
                .map(|(what, f)| {
                    [
                        what.to_owned(),
                        f.severity.clone(),
                        f.id.clone(),
                        format!("{} {}", f.package, f.installed),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                out.push('\n');
                markdown_table(&mut out, ["", "severity", "id", "package"], &[], &rows);
            }
        }
        FindingsChange::NotCompared { base, head } => {
            let _ = writeln!(
                out,
                "\n**Findings**: {}",
                cell(&not_compared(base.as_ref(), head.as_ref()))
            );
        }
    }
    out
}

/// What a job summary says when a side could not be read.
pub fn not_compared_markdown(error: &str) -> String {
    format!("### Image diff: not compared\n\n{}\n", cell(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::compare::{compare, tests};
    use crate::diff::snapshot::{ScanState, Snapshot};

    #[test]
    fn signed_sizes_say_which_way() {
        assert_eq!(signed(12_345), "+12.3 kB");
        assert_eq!(signed(-1_000_000), "-1.0 MB");
        assert_eq!(signed(0), "0 B");
    }

    /// The hand-made pair, as the terminal and a job summary show it.
    #[test]
    fn a_comparison_renders_as_a_table_and_as_markdown() {
        let comparison = compare(&tests::base(), &tests::head());
        insta::assert_snapshot!("diff_table", table(&comparison));
        insta::assert_snapshot!("diff_markdown", markdown(&comparison));
    }

    /// A side with no scan report is said to be one, never "0 findings".
    #[test]
    fn an_unscanned_side_is_shown_as_not_compared() {
        let unscanned = Snapshot {
            findings: ScanState::NotScanned {
                reason: "no scan report of it".into(),
            },
            ..tests::head()
        };
        let comparison = compare(&tests::base(), &unscanned);
        insta::assert_snapshot!("diff_markdown_unscanned", markdown(&comparison));
        let text = table(&comparison);
        assert!(
            text.contains("findings: NOT COMPARED (head not scanned: no scan report of it)"),
            "{text}"
        );
        assert!(!text.contains("0 appeared"), "{text}");
    }
}

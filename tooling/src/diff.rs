//! `cargo xtask diff BASE [HEAD]`: what a change does to the image, as
//! `docker scout compare` shows it, from our own inventory and no account.
//!
//! 1. each side is an image in the engine, read into a snapshot
//!    (`diff/snapshot.rs`): its Debian packages and crates from `sbom`'s
//!    inventory, its layers' sizes unpacked and on the wire as `size-check`
//!    measures them, and the findings of the scan reports kept for it; or a
//!    snapshot file that `--write-report` wrote before (the base branch's
//!    image, snapshotted where it was built);
//! 2. the two compared (`diff/compare.rs`): packages and crates added,
//!    removed or changed in version; the size, in total and per layer by
//!    position; findings that appear or disappear, only when both sides
//!    were scanned;
//! 3. shown (`diff/render.rs`): a table, `--json`, and `--markdown FILE`
//!    for a pull request's job summary.
//!
//! It reports and does not judge: it fails only when a side cannot be read.

pub(crate) mod compare;
pub(crate) mod render;
pub(crate) mod snapshot;

use std::path::Path;

use anyhow::Context;
use xshell::Shell;

use crate::checks::Verdict;
use crate::flags;
use crate::last_build;
use crate::metadata::Metadata;
use compare::Comparison;
use snapshot::Snapshot;

impl flags::Diff {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        if let Some(file) = &self.write_report {
            let snapshot = read_side(sh, &root, metadata, "the image", self.base.as_deref())?;
            snapshot.save(file)?;
            return Ok(written(&snapshot, file));
        }
        let sides = read_side(sh, &root, metadata, "BASE", self.base.as_deref()).and_then(|base| {
            Ok((
                base,
                read_side(sh, &root, metadata, "HEAD", self.head.as_deref())?,
            ))
        });
        let (base, head) = match sides {
            Ok(sides) => sides,
            Err(error) => {
                // A job summary says why there is no comparison.
                if let Some(path) = &self.markdown {
                    append(path, &render::not_compared_markdown(&format!("{error:#}")))?;
                }
                return Err(error);
            }
        };
        let comparison = compare::compare(&base, &head);
        if let Some(path) = &self.markdown {
            append(path, &render::markdown(&comparison))?;
        }
        Ok(verdict(&comparison))
    }
}

/// A side named on the command line: a snapshot file when a file of that
/// name exists (or the name ends in `.json`), else an image in the engine
/// (`None`: the last build).
pub fn read_side(
    sh: &Shell,
    root: &Path,
    metadata: &Metadata,
    which: &str,
    given: Option<&str>,
) -> anyhow::Result<Snapshot> {
    let named = given.unwrap_or("the last build");
    match given {
        Some(text) if Path::new(text).is_file() => Snapshot::load(Path::new(text)),
        // A snapshot that was never written, rather than an image of that name.
        Some(text)
            if Path::new(text)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json")) =>
        {
            Err(anyhow::anyhow!(
                "no snapshot file {text} (`cargo xtask diff --write-report {text}` writes one)"
            ))
        }
        _ => last_build::resolve(root, given)
            .and_then(|image| Snapshot::take(sh, root, metadata, &image)),
    }
    .with_context(|| format!("cannot read {which} ({named})"))
}

/// Appends `text` to the file at `path`, as to `$GITHUB_STEP_SUMMARY`.
pub fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn verdict(comparison: &Comparison) -> Verdict {
    Verdict {
        text: render::table(comparison),
        headline: render::headline(comparison),
        ..Verdict::new(
            "diff",
            format!("{} -> {}", comparison.base.image, comparison.head.image),
        )
        .with_details(comparison)
    }
}

fn written(snapshot: &Snapshot, file: &Path) -> Verdict {
    let scanned = match &snapshot.findings {
        snapshot::ScanState::Scanned { findings, .. } => format!("{} findings", findings.len()),
        snapshot::ScanState::NotScanned { .. } => "not scanned".to_owned(),
    };
    let headline = format!(
        "{} Debian packages, {} crates, {} layers, {scanned}",
        snapshot.debian_packages.len(),
        snapshot.crates.len(),
        snapshot.layers.len()
    );
    Verdict {
        text: format!(
            "snapshot of {} ({}) written to {}: {headline}\n",
            snapshot.image,
            crate::output::digest(&snapshot.image_id),
            file.display()
        ),
        headline,
        ..Verdict::new("diff", snapshot.image.clone())
            .with_details(serde_json::json!({"snapshot": file, "image": snapshot.image}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_that_cannot_be_read_is_named_with_why() {
        let sh = Shell::new().unwrap();
        let scratch = crate::testing::scratch();
        let root = scratch.path();
        let metadata =
            Metadata::load(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()).unwrap();
        let error = read_side(&sh, root, &metadata, "BASE", Some("missing/base.json")).unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "cannot read BASE (missing/base.json): no snapshot file missing/base.json (`cargo xtask diff --write-report missing/base.json` writes one)"
        );
        let broken = root.join("broken.json");
        std::fs::write(&broken, "{}").unwrap();
        let error = read_side(&sh, root, &metadata, "HEAD", broken.to_str()).unwrap_err();
        assert!(
            format!("{error:#}").starts_with("cannot read HEAD ("),
            "{error:#}"
        );
        let error = read_side(&sh, root, &metadata, "HEAD", None).unwrap_err();
        assert!(format!("{error:#}").contains("the last build"), "{error:#}");
    }
}

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
        let base = read_side(sh, &root, metadata, "BASE", self.base.as_deref())?;
        let head = read_side(sh, &root, metadata, "HEAD", self.head.as_deref())?;
        let comparison = compare::compare(&base, &head);
        if let Some(path) = &self.markdown {
            write_markdown(&comparison, path)?;
        }
        Ok(verdict(&comparison))
    }
}

/// A side named on the command line: a snapshot file when a file of that
/// name exists, else an image in the engine (`None`: the last build).
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
        _ => last_build::resolve(root, given)
            .and_then(|image| Snapshot::take(sh, root, metadata, &image)),
    }
    .with_context(|| format!("cannot read {which} ({named})"))
}

pub fn write_markdown(comparison: &Comparison, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, render::markdown(comparison))
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

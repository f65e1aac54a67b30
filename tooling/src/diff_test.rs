//! `cargo xtask diff-test`: `diff` proved on two real builds a commit apart.
//!
//! 1. a clone of this checkout's commit, in a temporary directory;
//! 2. its image built, as `cargo xtask image` builds it there, and
//!    snapshotted to a file, as a workflow keeps the base branch's image;
//! 3. a commit in the clone: a one-line change to the service's source and
//!    one dependency moved one patch release with `cargo update --precise`
//!    (`source_change.rs`, shared with `bench`);
//! 4. the image built again, from the engine's cache but for what changed;
//! 5. `diff` of the snapshot file against the new image, and checks that it
//!    shows the crate's change and nothing else that did not change, the
//!    size change, and no findings claimed where neither side was scanned.
//!
//! The builds run this program's `image` in the clone rather than a `cargo
//! xtask` compiled there: the clone's tooling is this commit's, and its
//! compile would cost minutes and prove nothing more.
//!
//! Its images are tagged `<image>:diff-test-base` and `:diff-test-head`,
//! never the tags other commands read; the snapshots, the Markdown and the
//! table are kept in target/xtask/diff-test/.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::checks::{Check, Verdict, proof};
use crate::diff::compare::{Comparison, FindingsChange, VersionChange};
use crate::diff::snapshot::{Package, Snapshot};
use crate::diff::{self, render};
use crate::flags;
use crate::last_build::{ImageRef, ImageReport};
use crate::metadata::Metadata;
use crate::output;
use crate::process;
use crate::source_change::{self, DependencyChange};

/// Where its snapshots and reports are kept.
pub fn output_dir(root: &Path) -> PathBuf {
    root.join("target/xtask/diff-test")
}

impl flags::DiffTest {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let started = Instant::now();
        let root = sh.current_dir();
        let out = output_dir(&root);
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        // Removed when dropped, also on failure.
        let work = sh
            .create_temp_dir()
            .context("cannot make a temporary directory")?;
        let copy = work.path().join("repository");
        process::read(cmd!(sh, "git clone --quiet --shared {root} {copy}"))
            .context("cannot clone this checkout")?;
        let commit = process::read(cmd!(sh, "git -C {copy} rev-parse --short HEAD"))?
            .trim()
            .to_owned();
        let csh = Shell::new()?;
        csh.change_dir(&copy);
        let table = metadata
            .table_path
            .strip_prefix(&root)
            .map_or_else(|_| metadata.table_path.clone(), |t| copy.join(t));
        let copy_metadata = Metadata::load_from(&copy, &table)?;

        eprintln!("diff-test: the image of {commit}, in a clone");
        let base = self.build(&csh, &copy_metadata, "diff-test-base")?;
        let base_file = out.join("base.json");
        Snapshot::take(&csh, &copy, &copy_metadata, &base.image)
            .context("cannot snapshot the base image")?
            .save(&base_file)?;

        let change = self.change(&csh, &copy, &copy_metadata)?;
        eprintln!(
            "diff-test: {} {} -> {} and a line in {}, committed; the image again",
            change.dependency.name, change.dependency.from, change.dependency.to, change.file
        );
        let head = self.build(&csh, &copy_metadata, "diff-test-head")?;
        let head_snapshot = Snapshot::take(&csh, &copy, &copy_metadata, &head.image)
            .context("cannot snapshot the head image")?;
        head_snapshot.save(&out.join("head.json"))?;

        // The base side as a workflow has it: a file.
        let base_side = diff::read_side(
            &csh,
            &copy,
            &copy_metadata,
            "BASE",
            Some(&base_file.display().to_string()),
        )?;
        let comparison = crate::diff::compare::compare(&base_side, &head_snapshot);
        let markdown = out.join("diff.md");
        std::fs::write(&markdown, render::markdown(&comparison))
            .with_context(|| format!("cannot write {}", markdown.display()))?;
        let table = render::table(&comparison);
        std::fs::write(out.join("diff.txt"), &table)
            .with_context(|| format!("cannot write {}", out.join("diff.txt").display()))?;

        let mut checks = vec![
            proof("base build", &base.verdict).timed(base.took),
            proof("head build", &head.verdict).timed(head.took),
        ];
        checks.extend(judge(&comparison, &change.dependency, &table, &markdown));
        Ok(Verdict {
            text: format!(
                "base {commit}; head {commit} with {} {} -> {} and one line in {}, committed\nbuilds: base {}, head {}; \
                 snapshots, diff.md and diff.txt in {}\n\n{table}\n",
                change.dependency.name,
                change.dependency.from,
                change.dependency.to,
                change.file,
                output::duration(base.took),
                output::duration(head.took),
                out.display()
            ),
            headline: format!(
                "{}; in {}",
                render::headline(&comparison),
                output::duration(started.elapsed())
            ),
            checks,
            ..Verdict::new("diff-test", format!("{} at {commit}", metadata.image)).with_details(
                serde_json::json!({
                    "dependency": change.dependency,
                    "changed_file": change.file,
                    "comparison": comparison,
                }),
            )
        })
    }

    /// `image` in the clone, tagged `<image>:<tag>`.
    fn build(&self, sh: &Shell, metadata: &Metadata, tag: &str) -> anyhow::Result<Built> {
        let started = Instant::now();
        let name = format!("{}:{tag}", metadata.image);
        let image = flags::Image {
            tags: vec![name.clone()],
            optimize: false,
            no_cache: false,
            platform: None,
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            offline: self.offline,
            runtime: None,
            check_reproducible: None,
        };
        let verdict = image
            .run(sh, metadata)
            .with_context(|| format!("cannot build {name}"))?
            .to_json();
        let took = started.elapsed();
        if !crate::checks::passed(&verdict) {
            anyhow::bail!(
                "the build of {name} failed: {}",
                crate::checks::failed_checks(&verdict)
            );
        }
        let report = ImageReport::load(&sh.current_dir())?;
        Ok(Built {
            image: ImageRef {
                reference: report.image_id.clone(),
                name,
            },
            verdict,
            took,
        })
    }

    /// The dependency moved and a line added to the service's main source
    /// file, committed.
    fn change(&self, sh: &Shell, copy: &Path, metadata: &Metadata) -> anyhow::Result<Change> {
        let lock = copy.join("Cargo.lock");
        let dependency = DependencyChange::choose(
            &std::fs::read_to_string(&lock)
                .with_context(|| format!("cannot read {}", lock.display()))?,
            &self.dependency,
        )?;
        dependency.apply(sh, copy)?;
        let file = service_source(sh, copy, metadata)?;
        source_change::add_line(copy, &file, "diff-test: a one-line change")?;
        let message = format!(
            "diff-test: {} {} -> {}, and a line in {file}",
            dependency.name, dependency.from, dependency.to
        );
        process::read(cmd!(
            sh,
            "git -C {copy} -c user.name=diff-test -c user.email=diff-test@localhost commit --quiet -am {message}"
        ))
        .context("cannot commit the change in the clone")?;
        Ok(Change { dependency, file })
    }
}

struct Built {
    image: ImageRef,
    verdict: serde_json::Value,
    took: Duration,
}

struct Change {
    dependency: DependencyChange,
    /// Relative to the clone's root.
    file: String,
}

/// The service binary's source file, relative to `copy`.
fn service_source(sh: &Shell, copy: &Path, metadata: &Metadata) -> anyhow::Result<String> {
    let cargo = process::cargo();
    let manifest = copy.join("Cargo.toml");
    let json = process::read(cmd!(
        sh,
        "{cargo} metadata --no-deps --format-version 1 --offline --manifest-path {manifest}"
    ))?;
    let cargo_metadata = crate::cargo_metadata::CargoMetadata::parse(&json)?;
    let source = cargo_metadata
        .members()
        .filter(|p| p.name == metadata.package)
        .flat_map(|p| &p.targets)
        .find(|t| t.name == metadata.binary && t.kind.iter().any(|k| k == "bin"))
        .map(|t| t.src_path.clone())
        .with_context(|| {
            format!(
                "no binary {} in the package {}",
                metadata.binary, metadata.package
            )
        })?;
    Ok(source
        .strip_prefix(copy)
        .unwrap_or(&source)
        .display()
        .to_string())
}

/// What the comparison must show: the dependency's change, nothing that
/// did not change, the size change, and no findings where none were read.
fn judge(
    comparison: &Comparison,
    dependency: &DependencyChange,
    table: &str,
    markdown: &Path,
) -> Vec<Check> {
    let expected = VersionChange {
        name: dependency.name.clone(),
        from: dependency.from.clone(),
        to: dependency.to.clone(),
    };
    let crates = &comparison.crates;
    let shown = |c: &VersionChange| format!("{} {} -> {}", c.name, c.from, c.to);
    let changed: Vec<String> = crates.changed.iter().map(shown).collect();
    let others = unexpected_changes(comparison, &expected);
    let size_line = |change: i64| {
        if change == 0 {
            "0 B (no change)".to_owned()
        } else {
            render::signed(change)
        }
    };
    let sizes = format!(
        "{} unpacked, {} on the wire",
        size_line(comparison.unpacked.change),
        size_line(comparison.on_the_wire.change)
    );
    let findings_said = match &comparison.findings {
        FindingsChange::NotCompared { .. } => table.contains("findings: NOT COMPARED"),
        FindingsChange::Compared { .. } => true,
    };
    let markdown_text = std::fs::read_to_string(markdown).unwrap_or_default();
    vec![
        Check::judge(
            "the dependency's change is shown",
            crates.changed.contains(&expected),
            if changed.is_empty() {
                "no crate changed".to_owned()
            } else {
                changed.join(", ")
            },
            shown(&expected),
        ),
        Check::judge(
            "nothing else is shown as changed",
            others.is_empty(),
            if others.is_empty() {
                format!(
                    "no other crate (the service's own version is unchanged), {} Debian packages unchanged",
                    comparison.debian_packages.unchanged
                )
            } else {
                others.join(", ")
            },
            "no other crate, no Debian package",
        ),
        Check::judge(
            "the size change is shown",
            comparison.base.image_id != comparison.head.image_id
                && table.contains(&size_line(comparison.unpacked.change))
                && table.contains(&size_line(comparison.on_the_wire.change)),
            sizes,
            "two images, their size change in bytes (0 B said as no change)",
        ),
        Check::judge(
            "findings not claimed without scan reports",
            findings_said,
            match &comparison.findings {
                FindingsChange::NotCompared { .. } => "shown as NOT COMPARED".to_owned(),
                FindingsChange::Compared { remaining, .. } => {
                    format!("compared, {remaining} on both sides")
                }
            },
            "an unscanned side said to be one",
        ),
        Check::judge(
            "Markdown for a job summary",
            markdown_text.contains(&dependency.name) && markdown_text.starts_with("### "),
            format!("{} ({} bytes)", markdown.display(), markdown_text.len()),
            "the change, as Markdown",
        ),
    ]
}

/// Every change the comparison shows but the one expected, each in words.
fn unexpected_changes(comparison: &Comparison, expected: &VersionChange) -> Vec<String> {
    let shown = |what: &str, c: &VersionChange| format!("{what}{} {} -> {}", c.name, c.from, c.to);
    let listed = |what: &str, p: &Package| format!("{what} {} {}", p.name, p.version);
    let (crates, debs) = (&comparison.crates, &comparison.debian_packages);
    crates
        .changed
        .iter()
        .filter(|c| *c != expected)
        .map(|c| shown("", c))
        .chain(crates.added.iter().map(|p| listed("added", p)))
        .chain(crates.removed.iter().map(|p| listed("removed", p)))
        .chain(debs.changed.iter().map(|c| shown("Debian ", c)))
        .chain(debs.added.iter().map(|p| listed("added Debian", p)))
        .chain(debs.removed.iter().map(|p| listed("removed Debian", p)))
        .collect()
}

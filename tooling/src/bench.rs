//! `cargo xtask bench`: this project's image against what a team would
//! otherwise build, measured in one run on this machine, from the same
//! sources, all offline.
//!
//! 1. `variants.rs`: the four builds (naive, cargo-chef on slim, this
//!    project, this project `--optimize`), each from its own copy of the
//!    work tree under `target/xtask/bench/<variant>/`;
//! 2. `measure.rs`: per variant, a cold build, a rebuild with no change,
//!    after a one-line server change and after a change outside the
//!    server; the image's size; `shutdown-test` run on it (start, health,
//!    stop) and the medians; the binary's sizes and UPX's cost;
//! 3. `report.rs`: the report, with ratios against this project's image,
//!    as `report.md`, `report.json` and `chart.svg` in `target/xtask/bench/`.

mod measure;
mod report;
mod variants;

use std::path::Path;

use anyhow::Context;
use xshell::Shell;

use crate::build_context::Bases;
use crate::checks::{Check, Verdict};
use crate::docker::Docker;
use crate::flags;
use crate::git::Revision;
use crate::metadata::{self, Metadata};
use crate::source_change::DependencyChange;
use crate::tools::{self, Tool};
use report::{Machine, Report, VariantReport};
use variants::{Variant, VariantBases};

/// `--version` runs per binary when timing UPX's unpacking.
const UPX_START_RUNS: usize = 20;

impl flags::Bench {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let selected = self.variants()?;
        if self.write_docs && (self.quick || selected.len() < Variant::ALL.len()) {
            anyhow::bail!(
                "--write-docs needs a full run of every variant: leave out --quick and --only"
            );
        }
        let runs = if self.quick { 1 } else { self.runs.max(1) };
        let docker = Docker::connect(sh)?;
        let builder = tools::require_buildkit(sh)?;
        let work = root.join("target/xtask/bench");
        let logs = work.join("logs");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("cannot create {}", logs.display()))?;
        let revision = Revision::read(sh)?;
        let xtask = snapshot_self(&work)?;
        // The variants are on distroless: no extras.
        let stand_ins = crate::stand_ins::prepare(sh, &docker, &root, &[])?;
        let bases = VariantBases {
            project: Bases {
                builder: stand_ins.builder.clone(),
                runtime: stand_ins.runtime.clone(),
                vendor: Some(stand_ins.vendor.clone()),
                prepare_secs: None,
            },
            slim: crate::stand_ins::slim_base(sh, &docker, &root)?,
        };

        let lock = root.join("Cargo.lock");
        let dependency = DependencyChange::choose(
            &std::fs::read_to_string(&lock)
                .with_context(|| format!("cannot read {}", lock.display()))?,
            &self.dependency,
        )?;

        let mut report = Report {
            quick: self.quick,
            dependency_change: Some(dependency.clone()),
            started: crate::git::now_rfc3339_utc(),
            machine: machine(sh),
            ..Report::default()
        };
        let mut optimized_image = None;
        for variant in selected {
            let measured = measure_variant(
                sh,
                &docker,
                &builder,
                variant,
                &bases,
                metadata,
                &revision,
                &work,
                &xtask,
                runs,
                &dependency,
            );
            let report_entry = match measured {
                Ok((entry, id)) => {
                    if variant == Variant::ProjectOptimized {
                        optimized_image = id;
                    }
                    entry
                }
                Err(error) => VariantReport {
                    error: Some(format!("{error:#}")),
                    ..VariantReport::new(variant)
                },
            };
            report.variants.push(report_entry);
        }
        report.release_binary = measure::binary_sizes(&read(&logs.join("project-cold.log")));
        report.size_binary = measure::binary_sizes(&read(&logs.join("project-optimized-cold.log")));
        let mut checks = Vec::new();
        if let Some(image) = &optimized_image {
            eprintln!("bench: UPX's cost");
            let starts = if self.quick { 5 } else { UPX_START_RUNS };
            match measure::upx_cost(
                sh,
                &docker,
                image,
                &stand_ins.builder,
                metadata::SERVICE_PATH,
                &work.join("upx"),
                starts,
            ) {
                Ok(cost) => report.upx = Some(cost),
                Err(error) => checks.push(Check::broken("UPX's cost", "measured", &error)),
            }
        }

        let markdown = write_report(&report, &work)?;
        checks.extend(variant_checks(&report));
        if self.write_docs {
            checks.push(write_docs(&root, &report));
        }
        Ok(Verdict {
            text: format!(
                "{markdown}\nwritten: target/xtask/bench/report.md, report.json, chart.svg\n\n"
            ),
            headline: report.headline(),
            checks,
            ..Verdict::new("bench", "this machine").with_details(&report)
        })
    }

    /// `--only` names variants; none named means all four.
    fn variants(&self) -> anyhow::Result<Vec<Variant>> {
        if self.only.is_empty() {
            return Ok(Variant::ALL.to_vec());
        }
        self.only
            .iter()
            .map(|name| {
                Variant::ALL
                    .into_iter()
                    .find(|v| v.name() == name)
                    .with_context(|| {
                        let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
                        format!(
                            "no variant {name:?}; the variants are: {}",
                            names.join(", ")
                        )
                    })
            })
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn measure_variant(
    sh: &Shell,
    docker: &Docker,
    builder: &tools::Builder,
    variant: Variant,
    bases: &VariantBases,
    metadata: &Metadata,
    revision: &Revision,
    work: &Path,
    xtask: &Path,
    runs: usize,
    dependency: &DependencyChange,
) -> anyhow::Result<(VariantReport, Option<String>)> {
    let dir = variants::dir(work, variant);
    let logs = work.join("logs");
    variants::snapshot(sh, &sh.current_dir(), &dir, variant, metadata)?;
    if variant == Variant::Host {
        let (builds, crates_compiled) = measure::host_builds(
            sh,
            variant,
            &metadata.package,
            &metadata.binary,
            &dir,
            &logs,
            dependency,
        )?;
        let report = VariantReport {
            builds: Some(builds),
            crates_compiled: Some(crates_compiled),
            ..VariantReport::new(variant)
        };
        return Ok((report, None));
    }
    if variant == Variant::ChefSccache {
        variants::add_sccache(sh, &work.join("tools"), &dir)?;
    }
    let request = variants::request(variant, &dir, bases, metadata, revision, work);
    let (builds, crates_compiled, id) = measure::image_builds(
        sh, docker, builder, variant, request, &dir, &logs, dependency,
    )?;
    let image = measure::image(sh, docker, &id)?;
    eprintln!("bench: {}: shutdown-test ×{runs}", variant.name());
    // A failed start or stop keeps the build and size figures already taken.
    let (runs, error) = match measure::runs(
        xtask,
        &id,
        runs,
        &logs.join(format!("{}-shutdown-test", variant.name())),
    ) {
        Ok(figures) => (Some(figures), None),
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    Ok((
        VariantReport {
            builds: Some(builds),
            crates_compiled: Some(crates_compiled),
            image: Some(image),
            runs,
            error,
            ..VariantReport::new(variant)
        },
        Some(id),
    ))
}

/// A check for each variant measured, and one that nothing is missing.
fn variant_checks(report: &Report) -> Vec<Check> {
    let mut checks = Vec::new();
    for v in &report.variants {
        checks.push(
            Check::judge(
                format!("{}: measured", v.name),
                v.error.is_none(),
                v.image
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |i| crate::output::size(i.wire_bytes)),
                "built, weighed, started and stopped",
            )
            .because(v.error.clone().unwrap_or_default()),
        );
    }
    let gaps = report.gaps();
    checks.push(
        Check::judge(
            "report complete",
            gaps.is_empty(),
            format!("{} variants", report.variants.len()),
            "every figure of every variant",
        )
        .because(gaps.join("; ")),
    );
    checks
}

/// Writes the report's three forms; returns the Markdown.
fn write_report(report: &Report, work: &Path) -> anyhow::Result<String> {
    let markdown = report.markdown();
    for (name, text) in [
        ("report.md", markdown.clone()),
        ("report.json", serde_json::to_string_pretty(report)? + "\n"),
        ("chart.svg", report.svg()),
    ] {
        let path = work.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(markdown)
}

/// Where docs/bench.md holds the bench's own tables, and docs/design.md
/// the figures its decisions rest on.
const DOCS_BEGIN: &str = "<!-- written by `cargo xtask bench --write-docs` -->\n";
const DOCS_END: &str = "<!-- end of what `cargo xtask bench --write-docs` writes -->";

/// Replaces the tables in docs/bench.md, its chart and the figures in
/// docs/design.md with this run's, when the run measured everything.
fn write_docs(root: &Path, report: &Report) -> Check {
    const WHAT: &str =
        "docs/bench.md, docs/bench-chart.svg and docs/design.md hold this run's figures";
    let gaps = report.gaps();
    if !gaps.is_empty() {
        return Check::judge("docs written", false, "not written", WHAT)
            .because(format!("the run is incomplete: {}", gaps.join("; ")));
    }
    let replace = |name: &str, section: &str| -> anyhow::Result<()> {
        let path = root.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let text = replace_between(&text, section).with_context(|| format!("in {name}"))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    let written = replace("docs/bench.md", &report.docs_section())
        .and_then(|()| replace("docs/design.md", &report.design_figures()))
        .and_then(|()| {
            let chart = root.join("docs/bench-chart.svg");
            std::fs::write(&chart, report.svg())
                .with_context(|| format!("cannot write {}", chart.display()))
        });
    match written {
        Ok(()) => Check::judge(
            "docs written",
            true,
            "docs/bench.md, docs/bench-chart.svg, docs/design.md",
            WHAT,
        ),
        Err(error) => Check::broken("docs written", WHAT, &error),
    }
}

/// `text` with what lies between the markers replaced by `section`.
fn replace_between(text: &str, section: &str) -> anyhow::Result<String> {
    let start = text
        .find(DOCS_BEGIN)
        .map(|at| at + DOCS_BEGIN.len())
        .with_context(|| format!("no line {}", DOCS_BEGIN.trim_end()))?;
    let end = start
        + text[start..]
            .find(DOCS_END)
            .with_context(|| format!("no line {DOCS_END}"))?;
    Ok(format!("{}{section}{}", &text[..start], &text[end..]))
}

/// A copy of this program for the `shutdown-test` runs: a rebuild of the
/// xtask during a long bench replaces the file `current_exe` names.
fn snapshot_self(work: &Path) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let copy = work.join("xtask");
    std::fs::copy(&exe, &copy)
        .with_context(|| format!("cannot copy {} to {}", exe.display(), copy.display()))?;
    Ok(copy)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Which machine, engine and toolchain took the figures.
fn machine(sh: &Shell) -> Machine {
    let os = read(Path::new("/etc/os-release"))
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    let memory_kb: f64 = read(Path::new("/proc/meminfo"))
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let found = |tool| {
        tools::probe(sh, tool)
            .found
            .map_or_else(|| "unknown".to_owned(), |f| f.version)
    };
    Machine {
        os,
        kernel: read(Path::new("/proc/sys/kernel/osrelease"))
            .trim()
            .to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        memory_gib: memory_kb / 1024.0 / 1024.0,
        engine: found(Tool::DockerEngine),
        builder: found(Tool::BuildKit),
        rustc: crate::process::read(xshell::cmd!(sh, "rustc -V"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_have_a_place_for_the_bench_figures() {
        for page in ["bench.md", "design.md"] {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs")
                .join(page);
            let text = std::fs::read_to_string(docs).unwrap();
            let replaced = replace_between(&text, "NEW TABLES\n").unwrap();
            assert!(
                replaced.contains(&format!("{DOCS_BEGIN}NEW TABLES\n{DOCS_END}")),
                "{page}"
            );
            assert_eq!(replaced.matches(DOCS_BEGIN).count(), 1, "{page}");
        }
    }

    #[test]
    fn docs_without_the_markers_are_an_error_that_names_them() {
        let error = replace_between("# Bench\n", "x").unwrap_err().to_string();
        assert!(error.contains("no line <!-- written by"), "{error}");
    }
}

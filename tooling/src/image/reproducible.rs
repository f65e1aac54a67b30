//! `reproducible`: two builds of one commit into OCI archives, as a
//! registry would receive them: the first takes what the engine's cache
//! holds of earlier builds of the same inputs (on a fresh engine, nothing),
//! the second has no cache at all and must compile the service. The same
//! digest twice passes: a build from scratch now gives the bits of the
//! earlier builds, so a change to the service costs one full build, not
//! two. Otherwise the layers and files that differ are named.
//!
//! With `--rebuild service` the second build takes the compiled
//! dependencies from the cache and compiles only the Dockerfile's `build`
//! stage again: the check for a change that leaves the dependencies' inputs
//! alone, once a `--rebuild all` has proved those.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

use super::Plan;
use super::layout_diff::{self, Difference};
use crate::checks::{Check, Verdict};
use crate::docker::build::{self, BuildRequest};
use crate::docker::oci_layout::OciLayout;
use crate::flags::Rebuild;
use crate::output;
use crate::provenance;

/// What the check found, in target/xtask/reproducible/report.json.
#[derive(Debug, Serialize)]
struct Report {
    revision: String,
    source_date_epoch: Option<i64>,
    engine: String,
    builder: String,
    /// What the second build compiled with no cache.
    rebuild: Rebuild,
    builds: Vec<Build>,
    identical: bool,
    differences: Vec<String>,
    /// Each build's SLSA provenance, byte for byte the same when the
    /// digests are.
    provenance_identical: bool,
}

#[derive(Debug, Serialize)]
struct Build {
    /// Whether it could take steps from the engine's cache.
    cached: bool,
    /// Whether its log shows cargo compiling the service: the no-cache
    /// build must, or its digest proves nothing.
    compiled: bool,
    archive: String,
    digest: String,
    layers: Vec<String>,
    seconds: f64,
    /// Its SLSA provenance statement, written beside the archive.
    provenance: String,
}

/// The Dockerfile's stage that compiles the service, which `--rebuild
/// service` builds with no cache.
const SERVICE_STAGE: &str = "build";

pub(super) fn check(
    sh: &Shell,
    plan: &Plan,
    package: &str,
    rebuild: Rebuild,
) -> anyhow::Result<Verdict> {
    plan.facts
        .reproducible()
        .map_err(|reason| anyhow::anyhow!(reason))?;
    let rebuild = what_to_rebuild(plan, rebuild)?;
    let work = plan.root.join("target/xtask/reproducible");
    sh.remove_path(&work)
        .with_context(|| format!("cannot clear {}", work.display()))?;
    sh.create_dir(&work)
        .with_context(|| format!("cannot create {}", work.display()))?;

    let mut builds = Vec::new();
    let mut layouts = Vec::new();
    let mut statements = Vec::new();
    let image_name = plan
        .tags
        .first()
        .and_then(|tag| tag.rsplit_once(':'))
        .map_or("image", |(name, _)| name)
        .to_owned();
    for (number, name, no_cache) in [(1, "first", false), (2, "second", true)] {
        let archive = work.join(format!("{name}.tar"));
        let log = log_of(&work, name);
        eprintln!(
            "image: reproducibility: build {number} of 2, {}, into {} (log: {})",
            if no_cache {
                without_cache(rebuild)
            } else {
                "from the engine's cache of earlier builds"
            },
            output::relative(&plan.root, &archive),
            output::relative(&plan.root, &log)
        );
        let request = BuildRequest {
            no_cache: no_cache && rebuild == Rebuild::All,
            no_cache_stages: if no_cache && rebuild == Rebuild::Service {
                vec![SERVICE_STAGE.to_owned()]
            } else {
                Vec::new()
            },
            log: Some(log),
            ..plan.archive_request(&archive)
        };
        let start = Instant::now();
        build::build(sh, &plan.builder, &request)?;
        let seconds = start.elapsed().as_secs_f64();
        let compiled = compiled(&log_of(&work, name), package)?;
        let layout = OciLayout::read(&archive)?;
        let provenance = work.join(format!("{name}.provenance.json"));
        provenance::write(
            &provenance,
            &provenance::statement(&image_name, &layout.digest, &plan.recipe(sh)?),
        )?;
        statements.push(
            std::fs::read(&provenance)
                .with_context(|| format!("cannot read {}", provenance.display()))?,
        );
        builds.push(Build {
            provenance: output::relative(&plan.root, &provenance),
            cached: !no_cache,
            compiled,
            archive: output::relative(&plan.root, &archive),
            digest: layout.digest.clone(),
            layers: layout
                .images
                .iter()
                .flat_map(|image| image.layers.iter().map(|layer| layer.digest.clone()))
                .collect(),
            seconds,
        });
        layouts.push(layout);
    }
    let differences = layout_diff::diff(&layouts[0], &layouts[1])?;
    let provenance_identical = statements[0] == statements[1];
    let report = Report {
        revision: plan.revision.describe(&plan.revision.commit),
        source_date_epoch: plan.request.source_date_epoch,
        engine: plan.facts.engine.clone(),
        builder: format!("{} ({} driver)", plan.builder, plan.facts.driver),
        rebuild,
        identical: differences.is_empty(),
        differences: differences.iter().map(ToString::to_string).collect(),
        provenance_identical,
        builds,
    };
    let path = work.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(verdict(&report, &differences, plan))
}

fn verdict(report: &Report, differences: &[Difference], plan: &Plan) -> Verdict {
    let (first, second) = (&report.builds[0], &report.builds[1]);
    let check = Check::judge(
        "same digest twice",
        report.identical,
        output::digest(&first.digest),
        "a no-cache build gives the digest of the engine's earlier builds of this commit",
    );
    let ran = Check::judge(
        "the no-cache build compiled",
        second.compiled,
        if second.compiled {
            "compiled the service"
        } else {
            "compiled nothing"
        },
        "the no-cache build compiles the service (no step taken from another build)",
    );
    let ran = if second.compiled {
        ran
    } else {
        ran.because(
            "the no-cache build compiled nothing: BuildKit gave it the steps of an identical build running at the same time; run the check alone",
        )
    };
    let check = if report.identical {
        check
    } else {
        let shown: Vec<String> = differences
            .iter()
            .take(3)
            .map(ToString::to_string)
            .collect();
        check.because(format!(
            "{} against {}; {} differences, first: {}",
            output::digest(&first.digest),
            output::digest(&second.digest),
            differences.len(),
            shown.join("; ")
        ))
    };
    let provenance = provenance_check(report);
    let mut text = format!(
        "reproducibility of {} at {}\n  engine   {} ({})\n  epoch    {}\n",
        plan.tags.first().map_or("the image", String::as_str),
        report.revision,
        report.engine,
        report.builder,
        report
            .source_date_epoch
            .map_or_else(|| "-".to_owned(), |epoch| epoch.to_string()),
    );
    for (name, build) in [("first", first), ("second", second)] {
        let _ = writeln!(
            text,
            "  {name:<8} {} in {:.1} s, {} layers, {}, {}",
            build.digest,
            build.seconds,
            build.layers.len(),
            if build.cached {
                "engine's cache"
            } else {
                without_cache(report.rebuild)
            },
            build.archive
        );
    }
    for difference in differences {
        let _ = writeln!(text, "  differs  {difference}");
    }
    Verdict {
        text,
        headline: if !second.compiled {
            "not proven: the no-cache build compiled nothing".to_owned()
        } else if report.identical {
            format!("identical: {}", output::digest(&first.digest))
        } else {
            format!("{} differences", differences.len())
        },
        checks: vec![ran, check, provenance],
        ..Verdict::new(
            "image",
            format!(
                "reproducibility of {}",
                plan.tags.first().map_or("the image", String::as_str)
            ),
        )
        .with_details(report)
    }
}

fn log_of(work: &Path, name: &str) -> std::path::PathBuf {
    work.join(format!("{name}.log"))
}

/// Whether a build's log shows cargo compiling `package`. BuildKit gives a
/// `--no-cache` build the steps of an identical build running at the same
/// time, and then nothing runs.
fn compiled(log: &Path, package: &str) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("cannot read the build's log {}", log.display()))?;
    Ok(compiles(&text, package))
}

/// What the second build took nothing of from the cache.
fn without_cache(rebuild: Rebuild) -> &'static str {
    match rebuild {
        Rebuild::All => "no cache",
        Rebuild::Service => "no cache for the service's stage, the dependencies from the cache",
    }
}

/// `--rebuild service` when the Dockerfile names the service's stage. A
/// Dockerfile of the repository's own may name its stages otherwise: then
/// every stage is built again, which proves more and costs more.
fn what_to_rebuild(plan: &Plan, asked: Rebuild) -> anyhow::Result<Rebuild> {
    if asked == Rebuild::All {
        return Ok(Rebuild::All);
    }
    let dockerfile = &plan.request.dockerfile;
    let text = std::fs::read_to_string(dockerfile)
        .with_context(|| format!("cannot read {}", dockerfile.display()))?;
    if has_stage(&text, SERVICE_STAGE) {
        return Ok(Rebuild::Service);
    }
    eprintln!(
        "image: reproducibility: the Dockerfile names no stage `{SERVICE_STAGE}` (`FROM … AS {SERVICE_STAGE}`) to build again alone, so the second build builds every stage with no cache"
    );
    Ok(Rebuild::All)
}

/// Whether a Dockerfile names a stage `stage` (`FROM image AS stage`).
fn has_stage(dockerfile: &str, stage: &str) -> bool {
    dockerfile.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
            && words
                .windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("AS") && w[1].eq_ignore_ascii_case(stage))
    })
}

fn compiles(log: &str, package: &str) -> bool {
    let needle = format!("Compiling {package} v");
    log.lines().any(|line| line.contains(&needle))
}

/// Both builds' provenance statements, byte for byte.
fn provenance_check(report: &Report) -> Check {
    let (first, second) = (&report.builds[0], &report.builds[1]);
    Check::judge(
        "same provenance twice",
        report.provenance_identical,
        if report.provenance_identical {
            "byte for byte"
        } else {
            "differs"
        },
        "both builds' SLSA provenance statements are the same bytes",
    )
    .because(if report.identical {
        format!(
            "{} and {} differ, with the same digest: a field that is not the build's own",
            first.provenance, second.provenance
        )
    } else {
        "their subjects differ, since the digests do".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_that_compiled_the_service_is_told_from_one_that_did_not() {
        let log =
            "#17 [build 2/2] RUN cargo build\n#17 0.315    Compiling server v0.1.0 (/app/server)\n";
        assert!(compiles(log, "server"));
        assert!(!compiles(log, "serv"), "a prefix of another name");
        assert!(!compiles("#11 exporting to oci image format\n", "server"));
    }

    #[test]
    fn the_service_stage_is_found_by_its_name() {
        let dockerfile = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"),
        )
        .unwrap();
        assert!(has_stage(&dockerfile, SERVICE_STAGE));
        assert!(has_stage(
            "FROM --platform=$BUILDPLATFORM rust as Build\n",
            "build"
        ));
        assert!(!has_stage(
            "FROM rust AS builder\nRUN echo AS build\n",
            "build"
        ));
    }
}

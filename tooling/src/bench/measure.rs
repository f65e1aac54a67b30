//! The measurements of one variant: its builds timed, its image weighed,
//! its container started and stopped (by `shutdown-test`, run as a child),
//! and for this project's builds, the binary's sizes and UPX's cost.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

use super::variants::Variant;
use crate::docker::Docker;
use crate::docker::build::{self, BuildRequest};
use crate::source_change::{self, DependencyChange};
use crate::tools::Builder;

/// Wall time of each build, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(clippy::struct_field_names)] // the unit, in each JSON key
pub struct BuildTimes {
    /// With no cache at all.
    pub cold_secs: f64,
    /// Again, nothing changed.
    pub no_change_secs: f64,
    /// After one dependency's version changed in `Cargo.lock`.
    pub dependency_change_secs: f64,
    /// After a one-line change to the server's code.
    pub server_change_secs: f64,
    /// After a change to the xtask and to a server test.
    pub outside_change_secs: f64,
}

/// How many crates cargo compiled (its `Compiling` lines) in a build.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CratesCompiled {
    pub cold: usize,
    pub dependency_change: usize,
    pub server_change: usize,
}

/// One build of a sequence, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Cold,
    NoChange,
    DependencyChange,
    ServerChange,
    OutsideChange,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Cold => "cold",
            Stage::NoChange => "no-change",
            Stage::DependencyChange => "dependency-change",
            Stage::ServerChange => "server-change",
            Stage::OutsideChange => "outside-change",
        }
    }
}

/// A build's wall time and its log, where cargo's lines are.
pub struct Timed {
    pub secs: f64,
    pub log: std::path::PathBuf,
}

/// The sequence every variant goes through, from its snapshot `dir`: cold,
/// no change, one dependency's version changed (`change_dependency` then
/// makes what the next build needs of it), a one-line server change, and
/// a change outside the server. `build` times one build.
pub fn sequence(
    dir: &Path,
    build: &mut dyn FnMut(Stage) -> anyhow::Result<Timed>,
    change_dependency: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(BuildTimes, CratesCompiled)> {
    let compiled =
        |timed: &Timed| crates_compiled(&std::fs::read_to_string(&timed.log).unwrap_or_default());
    let cold = build(Stage::Cold)?;
    let no_change = build(Stage::NoChange)?;
    change_dependency()?;
    let dependency = build(Stage::DependencyChange)?;
    source_change::add_line(dir, Variant::SERVER_FILE, "bench: a one-line change")?;
    let server = build(Stage::ServerChange)?;
    for file in Variant::OUTSIDE_FILES {
        source_change::add_line(dir, file, "bench: a change outside the server")?;
    }
    let outside = build(Stage::OutsideChange)?;
    Ok((
        BuildTimes {
            cold_secs: cold.secs,
            no_change_secs: no_change.secs,
            dependency_change_secs: dependency.secs,
            server_change_secs: server.secs,
            outside_change_secs: outside.secs,
        },
        CratesCompiled {
            cold: compiled(&cold),
            dependency_change: compiled(&dependency),
            server_change: compiled(&server),
        },
    ))
}

/// An image variant's builds through BuildKit; returns the last image's id.
/// A cold build starts with an empty build cache: no cache mount, and no
/// step another variant built (two variants share steps, such as the
/// project's cook of the same recipe, and would reuse each other's).
#[allow(clippy::too_many_arguments)]
pub fn image_builds(
    sh: &Shell,
    docker: &Docker,
    builder: &Builder,
    variant: Variant,
    mut request: BuildRequest,
    dir: &Path,
    logs: &Path,
    dependency: &DependencyChange,
) -> anyhow::Result<(BuildTimes, CratesCompiled, String)> {
    let mut last: Option<String> = None;
    let vendor = std::cell::RefCell::new(None::<String>);
    let mut build = |stage: Stage| -> anyhow::Result<Timed> {
        if stage == Stage::Cold {
            build::prune_build_cache(sh, builder)?;
        }
        request.no_cache = stage == Stage::Cold;
        if let Some(vendor) = vendor.borrow().as_ref() {
            set_build_arg(&mut request.build_args, "VENDOR_IMAGE", vendor);
        }
        let log = logs.join(format!("{}-{}.log", variant.name(), stage.name()));
        request.log = Some(log.clone());
        eprintln!("bench: {}: {} build", variant.name(), stage.name());
        let started = Instant::now();
        let id = build::build(sh, builder, &request)
            .with_context(|| format!("{}: the {} build failed", variant.name(), stage.name()))?;
        let secs = started.elapsed().as_secs_f64();
        // The tag moved on: the image it named is left untagged, and only
        // takes space.
        if let Some(old) = last.replace(id.clone()).filter(|old| *old != id) {
            let _ = docker.remove_image(sh, &old);
        }
        Ok(Timed { secs, log })
    };
    let mut change = || -> anyhow::Result<()> {
        dependency.apply(sh, dir)?;
        // The builds have no network: the changed crate comes vendored.
        *vendor.borrow_mut() = Some(crate::stand_ins::vendor(sh, docker, dir)?);
        Ok(())
    };
    let (times, compiled) = sequence(dir, &mut build, &mut change)?;
    let id = last.context("no build ran")?;
    Ok((times, compiled, id))
}

/// The host's `cargo build --release` of the service, in the snapshot with
/// its own target directory: the floor the image builds are compared with.
pub fn host_builds(
    sh: &Shell,
    variant: Variant,
    package: &str,
    binary: &str,
    dir: &Path,
    logs: &Path,
    dependency: &DependencyChange,
) -> anyhow::Result<(BuildTimes, CratesCompiled)> {
    let target = dir.join("target");
    let cargo = crate::process::cargo();
    let fetch = |sh: &Shell| {
        let _in_dir = sh.push_dir(dir);
        crate::process::run(xshell::cmd!(sh, "{cargo} fetch --locked --quiet"))
            .context("cannot fetch the snapshot's crates")
    };
    fetch(sh)?;
    let mut build = |stage: Stage| -> anyhow::Result<Timed> {
        if stage == Stage::Cold {
            sh.remove_path(&target)?;
        }
        let log = logs.join(format!("{}-{}.log", variant.name(), stage.name()));
        eprintln!("bench: {}: {} build", variant.name(), stage.name());
        let _in_dir = sh.push_dir(dir);
        let command = xshell::cmd!(
            sh,
            "{cargo} build --release --locked --offline --package {package} --bin {binary}"
        )
        .env("CARGO_TARGET_DIR", &target)
        // The floor is plain cargo, whatever wraps rustc in this shell.
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER");
        let started = Instant::now();
        crate::process::run_logged(command, &log)
            .with_context(|| format!("{}: the {} build failed", variant.name(), stage.name()))?;
        Ok(Timed {
            secs: started.elapsed().as_secs_f64(),
            log,
        })
    };
    let mut change = || -> anyhow::Result<()> {
        dependency.apply(sh, dir)?;
        fetch(sh)
    };
    sequence(dir, &mut build, &mut change)
}

/// Sets a build argument, or adds it.
fn set_build_arg(args: &mut Vec<(String, String)>, name: &str, value: &str) {
    match args.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => value.clone_into(v),
        None => args.push((name.to_owned(), value.to_owned())),
    }
}

/// Counts cargo's `Compiling <crate> v<version>` lines, also behind
/// BuildKit's `#12 3.4` prefixes.
pub fn crates_compiled(log: &str) -> usize {
    log.lines()
        .filter(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w != "Compiling");
            words.next().is_some()
                && words.next().is_some()
                && words.next().is_some_and(|v| v.starts_with('v'))
        })
        .count()
}

/// What the image weighs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageFigures {
    pub unpacked_bytes: u64,
    /// Gzip-compressed layers: what a registry stores and a pull transfers.
    pub wire_bytes: u64,
    pub layers: usize,
}

pub fn image(sh: &Shell, docker: &Docker, id: &str) -> anyhow::Result<ImageFigures> {
    let inspect = docker.inspect_image(sh, id)?;
    let saved = docker.save(id)?;
    Ok(ImageFigures {
        unpacked_bytes: inspect.size,
        wire_bytes: saved.layers.iter().map(|l| l.compressed_bytes).sum(),
        layers: inspect.layer_count(),
    })
}

/// The container's start and stop, medians over the runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunFigures {
    pub runs: usize,
    /// `docker run` to the first 200 from the readiness path.
    pub start_to_ready_ms: Option<u64>,
    /// `docker run` to Docker's `healthy` (HEALTHCHECK interval 500 ms).
    pub start_to_healthy_ms: Option<u64>,
    pub stop_idle_ms: Option<u64>,
    pub stop_under_load_ms: Option<u64>,
    pub requests_dropped: Option<u64>,
    /// Whether every check of `shutdown-test` passed, and those that did not.
    pub shutdown_test_passed: bool,
    pub failed_checks: Vec<String>,
}

/// Runs `shutdown-test` on the image `runs` times and takes the medians.
pub fn runs(xtask: &Path, id: &str, runs: usize, log: &Path) -> anyhow::Result<RunFigures> {
    let mut ready = Vec::new();
    let mut healthy = Vec::new();
    let mut idle = Vec::new();
    let mut loaded = Vec::new();
    let mut dropped = Vec::new();
    let mut passed = true;
    let mut failed_checks = Vec::new();
    for run in 1..=runs {
        let sh = Shell::new()?;
        let verdict = crate::process::verdict(
            xshell::cmd!(sh, "{xtask} --json shutdown-test --image {id}"),
            Some(&log.with_extension(format!("{run}.log"))),
        )?;
        let figures = &verdict["figures"];
        ready.extend(
            figures["start_to_ready_ms"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_u64),
        );
        healthy.extend(figures["start_to_healthy_ms"].as_u64());
        idle.extend(figures["stop_idle_ms"].as_u64());
        loaded.extend(figures["stop_under_load_ms"].as_u64());
        dropped.extend(figures["requests_dropped"].as_u64());
        passed &= verdict["passed"].as_bool() == Some(true);
        for check in verdict["checks"].as_array().into_iter().flatten() {
            let name = check["name"].as_str().unwrap_or("?").to_owned();
            if check["status"] == "fail" && !failed_checks.contains(&name) {
                failed_checks.push(name);
            }
        }
    }
    Ok(RunFigures {
        runs,
        start_to_ready_ms: median(&mut ready),
        start_to_healthy_ms: median(&mut healthy),
        stop_idle_ms: median(&mut idle),
        stop_under_load_ms: median(&mut loaded),
        requests_dropped: dropped.into_iter().max(),
        shutdown_test_passed: passed,
        failed_checks,
    })
}

/// The middle value (the lower of the two middle ones).
pub fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// The server binary's size at each stage of the build, from the lines the
/// Dockerfile's build stage prints (`server binary: N bytes as built`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BinarySizes {
    pub as_built: Option<u64>,
    pub stripped: Option<u64>,
    pub upx: Option<u64>,
}

pub fn binary_sizes(build_log: &str) -> BinarySizes {
    let mut sizes = BinarySizes::default();
    for line in build_log.lines() {
        let Some(rest) = line.split(crate::build_context::BINARY_SIZE_LINE).nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(bytes), Some("bytes")) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(bytes) = bytes.parse::<u64>() else {
            continue;
        };
        let what = words.collect::<Vec<_>>().join(" ");
        match what.as_str() {
            "as built" => sizes.as_built = Some(bytes),
            "stripped" => sizes.stripped = Some(bytes),
            "packed with UPX" => sizes.upx = Some(bytes),
            _ => {}
        }
    }
    sizes
}

/// What packing with UPX costs when the process starts, measured on the
/// same binary packed and unpacked (`upx -d`), in the builder image, which
/// has the runtime's C library, a shell and UPX.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UpxCost {
    /// `server --version`: exec, unpacking, exit; median.
    pub start_packed_us: Option<u64>,
    pub start_unpacked_us: Option<u64>,
    /// Resident memory once the server is ready.
    pub rss_packed_kb: Option<u64>,
    pub rss_unpacked_kb: Option<u64>,
    pub unpacked_bytes: Option<u64>,
}

/// Times `--version` `runs` times per binary and reads the resident memory
/// of each serving; prints `start <which> <ns>`, `rss <which> <kB>`, `size <bytes>`.
const UPX_SCRIPT: &str = r#"
set -e
upx -q -d -o /b/server.unpacked /b/server.packed >/dev/null
echo "size $(stat -c %s /b/server.unpacked)"
for which in packed unpacked; do
  i=0
  while [ "$i" -lt "$RUNS" ]; do
    s=$(date +%s%N); /b/server.$which --version >/dev/null; e=$(date +%s%N)
    echo "start $which $((e - s))"
    i=$((i + 1))
  done
  DATABASE_URL=sqlite:///tmp/$which.db LISTEN_ADDR=127.0.0.1:0 /b/server.$which >/tmp/$which.log 2>&1 &
  pid=$!
  n=0
  until grep -q ready /tmp/$which.log; do
    n=$((n + 1)); [ "$n" -gt 500 ] && break; sleep 0.01
  done
  echo "rss $which $(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
  kill "$pid"; wait "$pid" || true
done
"#;

pub fn upx_cost(
    sh: &Shell,
    docker: &Docker,
    image: &str,
    builder_image: &str,
    binary_path: &str,
    dir: &Path,
    runs: usize,
) -> anyhow::Result<UpxCost> {
    // Empty: `upx -d -o` refuses to overwrite what an earlier run left.
    sh.remove_path(dir)?;
    std::fs::create_dir_all(dir)?;
    docker.copy_from_image(sh, image, binary_path, &dir.join("server.packed"))?;
    let mount = format!("{}:/b", dir.display());
    let runs = runs.to_string();
    let output = docker
        .output(
            sh,
            [
                "run",
                "--rm",
                "--network",
                "none",
                "--env",
                &format!("RUNS={runs}"),
                "--volume",
                &mount,
                "--entrypoint",
                "sh",
                builder_image,
                "-c",
                UPX_SCRIPT,
            ],
        )
        .context("cannot measure UPX's cost in the builder image")?;
    Ok(parse_upx(&output))
}

pub fn parse_upx(output: &str) -> UpxCost {
    let mut packed = Vec::new();
    let mut unpacked = Vec::new();
    let mut cost = UpxCost::default();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["start", which, nanos] => {
                if let Ok(nanos) = nanos.parse::<u64>() {
                    let micros = nanos / 1_000;
                    if *which == "packed" {
                        packed.push(micros);
                    } else {
                        unpacked.push(micros);
                    }
                }
            }
            ["rss", "packed", kb] => cost.rss_packed_kb = kb.parse().ok(),
            ["rss", "unpacked", kb] => cost.rss_unpacked_kb = kb.parse().ok(),
            ["size", bytes] => cost.unpacked_bytes = bytes.parse().ok(),
            _ => {}
        }
    }
    cost.start_packed_us = median(&mut packed);
    cost.start_unpacked_us = median(&mut unpacked);
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargos_compiling_lines_are_counted_behind_buildkits_prefixes() {
        let log = "#14 2.1    Compiling itoa v1.0.14\n\
                   #14 2.2    Compiling serde_json v1.0.140\n\
                   #14 9.9     Finished `release` profile [optimized] target(s)\n\
                      Compiling server v0.1.0 (/app/server)\n\
                   #12 CACHED\n\
                   a line that says Compiling in passing\n";
        assert_eq!(crates_compiled(log), 3);
    }

    #[test]
    fn a_build_argument_is_replaced_or_added() {
        let mut args = vec![("VENDOR_IMAGE".to_owned(), "old".to_owned())];
        set_build_arg(&mut args, "VENDOR_IMAGE", "new");
        set_build_arg(&mut args, "PROFILE", "size");
        assert_eq!(
            args,
            [
                ("VENDOR_IMAGE".to_owned(), "new".to_owned()),
                ("PROFILE".to_owned(), "size".to_owned())
            ]
        );
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&mut [5, 1, 3]), Some(3));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn the_build_log_gives_the_binarys_sizes() {
        let prefix = crate::build_context::BINARY_SIZE_LINE;
        let log = format!(
            "#17 41.2 {prefix}3026120 bytes as built\n\
             #17 41.3 {prefix}3026112 bytes stripped\n\
             #17 66.0 {prefix}1414368 bytes packed with UPX\n"
        );
        assert_eq!(
            binary_sizes(&log),
            BinarySizes {
                as_built: Some(3_026_120),
                stripped: Some(3_026_112),
                upx: Some(1_414_368),
            }
        );
        assert_eq!(binary_sizes("no such lines"), BinarySizes::default());
    }

    #[test]
    fn the_upx_measurements_are_read_as_medians() {
        let output = "size 3026112\nstart packed 40000000\nstart packed 36000000\nstart packed 38000000\n\
                      rss packed 5900\nstart unpacked 9000000\nstart unpacked 8000000\nrss unpacked 3600\n";
        assert_eq!(
            parse_upx(output),
            UpxCost {
                start_packed_us: Some(38_000),
                start_unpacked_us: Some(8_000),
                rss_packed_kb: Some(5_900),
                rss_unpacked_kb: Some(3_600),
                unpacked_bytes: Some(3_026_112),
            }
        );
    }
}

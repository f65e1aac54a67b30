//! The measurements of one variant: its builds timed, its image weighed,
//! its container started and stopped (by `shutdown-test`, run as a child),
//! and for this project's builds, the binary's sizes and UPX's cost.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

use super::variants::{self, Variant};
use crate::docker::Docker;
use crate::docker::build::{self, BuildRequest};
use crate::tools::Builder;

/// Wall time of each build, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(clippy::struct_field_names)] // the unit, in each JSON key
pub struct BuildTimes {
    /// With no cache at all.
    pub cold_secs: f64,
    /// Again, nothing changed.
    pub no_change_secs: f64,
    /// After a one-line change to the server's code.
    pub server_change_secs: f64,
    /// After a change to the xtask and to a server test.
    pub outside_change_secs: f64,
}

/// Runs the four builds in order; returns the times, the last image's id,
/// and the cold build's log (the project's records the binary's sizes).
pub fn builds(
    sh: &Shell,
    docker: &Docker,
    builder: &Builder,
    variant: Variant,
    mut request: BuildRequest,
    dir: &Path,
    logs: &Path,
) -> anyhow::Result<(BuildTimes, String)> {
    let mut previous: Option<String> = None;
    let mut timed = |stage: &str, no_cache: bool| -> anyhow::Result<(f64, String)> {
        request.no_cache = no_cache;
        request.log = Some(logs.join(format!("{}-{stage}.log", variant.name())));
        eprintln!("bench: {}: {stage} build", variant.name());
        let started = Instant::now();
        let id = build::build(sh, builder, &request)
            .with_context(|| format!("{}: the {stage} build failed", variant.name()))?;
        let elapsed = started.elapsed().as_secs_f64();
        // The tag moved on: the image it named is left untagged, and only
        // takes space.
        if let Some(old) = previous.replace(id.clone()).filter(|old| *old != id) {
            let _ = docker.remove_image(sh, &old);
        }
        Ok((elapsed, id))
    };
    let (cold_secs, _) = timed("cold", true)?;
    let (no_change_secs, _) = timed("no-change", false)?;
    variants::touch(dir, Variant::SERVER_FILE, "a one-line change")?;
    let (server_change_secs, _) = timed("server-change", false)?;
    for file in Variant::OUTSIDE_FILES {
        variants::touch(dir, file, "a change outside the server")?;
    }
    let (outside_change_secs, id) = timed("outside-change", false)?;
    Ok((
        BuildTimes {
            cold_secs,
            no_change_secs,
            server_change_secs,
            outside_change_secs,
        },
        id,
    ))
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

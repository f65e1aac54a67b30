//! The benchmark's report: which machine, what each variant measured, the
//! ratios against this project's image, as Markdown, JSON and an SVG chart.

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::{BinarySizes, BuildTimes, CratesCompiled, ImageFigures, RunFigures, UpxCost};
use super::variants::Variant;
use crate::output;
use crate::source_change::DependencyChange;

/// Where and with what the figures were taken.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub os: String,
    pub kernel: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub engine: String,
    pub builder: String,
    pub rustc: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub variant: Variant,
    pub name: &'static str,
    pub description: &'static str,
    pub builds: Option<BuildTimes>,
    pub crates_compiled: Option<CratesCompiled>,
    /// None for `host`, which makes no image.
    pub image: Option<ImageFigures>,
    pub runs: Option<RunFigures>,
    /// Why a measurement is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VariantReport {
    /// Nothing measured yet.
    pub fn new(variant: Variant) -> VariantReport {
        VariantReport {
            variant,
            name: variant.name(),
            description: variant.describe(),
            builds: None,
            crates_compiled: None,
            image: None,
            runs: None,
            error: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// One run of each timing instead of several.
    pub quick: bool,
    pub started: String,
    pub machine: Machine,
    /// The version change the dependency-change rebuilds made.
    pub dependency_change: Option<DependencyChange>,
    pub variants: Vec<VariantReport>,
    /// The binary built with the `release` profile, and with `size` + UPX.
    pub release_binary: BinarySizes,
    pub size_binary: BinarySizes,
    pub upx: Option<UpxCost>,
}

impl Report {
    fn variant(&self, variant: Variant) -> Option<&VariantReport> {
        self.variants.iter().find(|v| v.variant == variant)
    }

    /// What is missing from a variant that was measured: nothing, when
    /// the report is complete.
    pub fn gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        for v in &self.variants {
            if let Some(error) = &v.error {
                gaps.push(format!("{}: {error}", v.name));
                continue;
            }
            let runs = v.runs.as_ref();
            let image = v.variant.builds_image();
            for (what, present) in [
                ("build times", v.builds.is_some()),
                ("crates compiled", v.crates_compiled.is_some()),
            ] {
                if !present {
                    gaps.push(format!("{}: no {what}", v.name));
                }
            }
            if !image {
                continue;
            }
            for (what, present) in [
                ("image size", v.image.is_some()),
                (
                    "start to ready",
                    runs.and_then(|r| r.start_to_ready_ms).is_some(),
                ),
                (
                    "start to healthy",
                    runs.and_then(|r| r.start_to_healthy_ms).is_some(),
                ),
                (
                    "stop latency idle",
                    runs.and_then(|r| r.stop_idle_ms).is_some(),
                ),
                (
                    "stop latency under load",
                    runs.and_then(|r| r.stop_under_load_ms).is_some(),
                ),
            ] {
                if !present {
                    gaps.push(format!("{}: no {what}", v.name));
                }
            }
        }
        // The binary's sizes come from the build logs of these two.
        let measured = |variant| self.variant(variant).is_some_and(|v| v.error.is_none());
        for (variant, what, present) in [
            (
                Variant::Project,
                "release binary's sizes",
                self.release_binary.as_built.is_some() && self.release_binary.stripped.is_some(),
            ),
            (
                Variant::ProjectOptimized,
                "size binary's sizes",
                self.size_binary.stripped.is_some() && self.size_binary.upx.is_some(),
            ),
        ] {
            if measured(variant) && !present {
                gaps.push(format!("{}: no {what} in its build log", variant.name()));
            }
        }
        gaps
    }

    /// `a / b` from this run, as `4.2×`.
    fn ratio(a: f64, b: f64) -> String {
        if b > 0.0 {
            format!("{:.1}×", a / b)
        } else {
            "-".to_owned()
        }
    }

    /// The headline: the project's image against the naive one.
    pub fn headline(&self) -> String {
        let (Some(naive), Some(project)) = (
            self.variant(Variant::Naive),
            self.variant(Variant::ProjectOptimized)
                .or_else(|| self.variant(Variant::Project)),
        ) else {
            return format!("{} variants measured", self.variants.len());
        };
        match (&naive.image, &project.image, &naive.builds, &project.builds) {
            (Some(ni), Some(pi), Some(nb), Some(pb)) => {
                #[allow(clippy::cast_precision_loss)]
                let size = Self::ratio(ni.wire_bytes as f64, pi.wire_bytes as f64);
                format!(
                    "{}: {} smaller on the wire, one-line rebuild {} faster than naive",
                    project.name,
                    size,
                    Self::ratio(nb.server_change_secs, pb.server_change_secs)
                )
            }
            _ => format!("{} variants measured", self.variants.len()),
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# cargo xtask bench{}\n\n{}. Started {}.\n\n",
            if self.quick { " --quick" } else { "" },
            self.machine_line(),
            self.started
        );
        out.push_str(&self.tables());
        let gaps = self.gaps();
        if !gaps.is_empty() {
            let _ = writeln!(out, "\nMissing: {}.", gaps.join("; "));
        }
        out.push_str("\nWhat each variant is:\n\n");
        for v in &self.variants {
            let _ = writeln!(out, "- **{}**: {}", v.name, v.description);
        }
        out
    }

    /// What docs/bench.md shows of a complete run: its tables, dated and
    /// named by the command that wrote them.
    pub fn docs_section(&self) -> String {
        format!(
            "Measured by `cargo xtask bench --write-docs`, started {}, on {}.\n\n{}",
            self.started,
            self.machine_line(),
            self.tables()
        )
    }

    /// The figures docs/design.md's decisions rest on, from this run: each
    /// a ratio of two of its variants, or the figures it compares.
    pub fn design_figures(&self) -> String {
        let mut out = format!(
            "From `cargo xtask bench --write-docs`, started {}, on this run's tables in [bench.md](bench.md):\n\n",
            self.started
        );
        let builds = |v: Variant| self.variant(v).and_then(|v| v.builds.as_ref());
        let image = |v: Variant| self.variant(v).and_then(|v| v.image.as_ref());
        let ready = |v: Variant| {
            self.variant(v)
                .and_then(|v| v.runs.as_ref()?.start_to_ready_ms)
        };
        let size = output::size;
        #[allow(clippy::cast_precision_loss)]
        let bytes_ratio = |a: u64, b: u64| Self::ratio(a as f64, b as f64);
        if let (Some(naive), Some(project), Some(minimal)) = (
            image(Variant::Naive),
            image(Variant::Project),
            image(Variant::ProjectMinimal),
        ) {
            let _ = writeln!(
                out,
                "- **Runtime.** On the wire: naive (Debian slim) {}, project {} ({} smaller), project-minimal {}; unpacked {}, {} and {}. Start to ready: naive {}, project {}.",
                size(naive.wire_bytes),
                size(project.wire_bytes),
                bytes_ratio(naive.wire_bytes, project.wire_bytes),
                size(minimal.wire_bytes),
                size(naive.unpacked_bytes),
                size(project.unpacked_bytes),
                size(minimal.unpacked_bytes),
                ms(ready(Variant::Naive)),
                ms(ready(Variant::Project)),
            );
        }
        if let (Some(naive), Some(chef), Some(project)) = (
            builds(Variant::Naive),
            builds(Variant::ChefSlim),
            builds(Variant::Project),
        ) {
            let _ = writeln!(
                out,
                "- **cargo-chef and the context allowlist.** One-line server change: naive {:.1} s, chef-slim {:.1} s, project {:.1} s ({} faster than naive). Change outside the server: chef-slim {:.1} s, project {:.1} s.",
                naive.server_change_secs,
                chef.server_change_secs,
                project.server_change_secs,
                Self::ratio(naive.server_change_secs, project.server_change_secs),
                chef.outside_change_secs,
                project.outside_change_secs,
            );
        }
        if let Some(line) = self.floor_figures() {
            out.push_str(&line);
        }
        if let (Some(project), Some(optimized), Some(pi), Some(oi)) = (
            builds(Variant::Project),
            builds(Variant::ProjectOptimized),
            image(Variant::Project),
            image(Variant::ProjectOptimized),
        ) {
            let upx = self.upx.clone().unwrap_or_default();
            #[allow(clippy::cast_precision_loss)]
            let us = |v: Option<u64>| {
                v.map_or_else(
                    || "-".to_owned(),
                    |us| format!("{:.1} ms", us as f64 / 1000.0),
                )
            };
            let maybe = |b: Option<u64>| b.map_or_else(|| "-".to_owned(), size);
            let _ = writeln!(
                out,
                "- **UPX only with `--optimize`.** On the wire {} against {}; the binary {} stripped (`release`), {} with the size profile and UPX; `--version` {} packed against {} unpacked; one-line rebuild {:.1} s against {:.1} s.",
                size(oi.wire_bytes),
                size(pi.wire_bytes),
                maybe(self.release_binary.stripped),
                maybe(self.size_binary.upx),
                us(upx.start_packed_us),
                us(upx.start_unpacked_us),
                optimized.server_change_secs,
                project.server_change_secs,
            );
        }
        out
    }

    /// The rebuild bullet: the arms and the project against the host.
    fn floor_figures(&self) -> Option<String> {
        let builds = |v: Variant| self.variant(v).and_then(|v| v.builds.as_ref());
        let (Some(host), Some(project), Some(cache), Some(sccache)) = (
            builds(Variant::Host),
            builds(Variant::Project),
            builds(Variant::ChefTargetCache),
            builds(Variant::ChefSccache),
        ) else {
            return None;
        };
        Some(format!(
            "- **Rebuilds against the floor.** One-line change: host {:.1} s, project {:.1} s ({}), chef-target-cache {:.1} s ({}), chef-sccache {:.1} s ({}). Dependency change: host {:.1} s, project {:.1} s ({}), chef-target-cache {:.1} s ({}), chef-sccache {:.1} s ({}). Cold: host {:.1} s, project {:.1} s, chef-target-cache {:.1} s, chef-sccache {:.1} s.\n",
            host.server_change_secs,
            project.server_change_secs,
            Self::ratio(project.server_change_secs, host.server_change_secs),
            cache.server_change_secs,
            Self::ratio(cache.server_change_secs, host.server_change_secs),
            sccache.server_change_secs,
            Self::ratio(sccache.server_change_secs, host.server_change_secs),
            host.dependency_change_secs,
            project.dependency_change_secs,
            Self::ratio(project.dependency_change_secs, host.dependency_change_secs),
            cache.dependency_change_secs,
            Self::ratio(cache.dependency_change_secs, host.dependency_change_secs),
            sccache.dependency_change_secs,
            Self::ratio(sccache.dependency_change_secs, host.dependency_change_secs),
            host.cold_secs,
            project.cold_secs,
            cache.cold_secs,
            sccache.cold_secs,
        ))
    }

    fn machine_line(&self) -> String {
        let m = &self.machine;
        format!(
            "{}, {} CPUs, {:.1} GiB, kernel {}; docker engine {}, buildx {}; {}",
            m.os, m.cpus, m.memory_gib, m.kernel, m.engine, m.builder, m.rustc
        )
    }

    /// The variants' figures, their ratios to `project`, and the binary's.
    fn tables(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| variant | cold build | one-line server change | dependency change | no change | change outside the server | unpacked | on the wire | layers | start to ready | start to healthy | stop idle | stop under load | shutdown-test |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for v in &self.variants {
            let secs = |f: fn(&BuildTimes) -> f64| {
                v.builds
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |b| format!("{:.1} s", f(b)))
            };
            let bytes = |f: fn(&ImageFigures) -> u64| {
                v.image
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |i| output::size(f(i)))
            };
            let ms = |f: fn(&RunFigures) -> Option<u64>| {
                v.runs
                    .as_ref()
                    .and_then(f)
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
            };
            let proof = match &v.runs {
                Some(r) if r.shutdown_test_passed => "pass".to_owned(),
                Some(r) => format!("fails: {}", r.failed_checks.join(", ")),
                None if !v.variant.builds_image() => "no image".to_owned(),
                None => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                v.name,
                secs(|b| b.cold_secs),
                secs(|b| b.server_change_secs),
                secs(|b| b.dependency_change_secs),
                secs(|b| b.no_change_secs),
                secs(|b| b.outside_change_secs),
                bytes(|i| i.unpacked_bytes),
                bytes(|i| i.wire_bytes),
                v.image
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |i| i.layers.to_string()),
                ms(|r| r.start_to_ready_ms),
                ms(|r| r.start_to_healthy_ms),
                ms(|r| r.stop_idle_ms),
                ms(|r| r.stop_under_load_ms),
                proof
            );
        }
        out.push_str(&self.ratios_markdown());
        out.push_str(&self.rebuilds_markdown());
        out.push_str(&self.binary_markdown());
        out
    }

    /// Each variant's rebuilds against the host's `cargo build --release`,
    /// and how many crates cargo compiled for each.
    fn rebuilds_markdown(&self) -> String {
        let Some(host) = self.variant(Variant::Host).and_then(|h| h.builds.as_ref()) else {
            return String::new();
        };
        let change = self
            .dependency_change
            .as_ref()
            .map_or_else(String::new, |d| {
                format!(" (`{}` {} → {} in Cargo.lock)", d.name, d.from, d.to)
            });
        let mut out = format!(
            "\nRebuilds against the host's `cargo build --release` (how many times slower), \
             and the crates cargo compiled; the dependency change is one patch release{change}:\n\n\
             | variant | cold build | one-line server change | dependency change | crates compiled: cold / one-line / dependency |\n\
             |---|---|---|---|---|\n"
        );
        for v in &self.variants {
            let Some(b) = &v.builds else { continue };
            let crates = v.crates_compiled.as_ref().map_or_else(
                || "-".to_owned(),
                |c| format!("{} / {} / {}", c.cold, c.server_change, c.dependency_change),
            );
            let _ = writeln!(
                out,
                "| {} | {:.1} s, {} | {:.1} s, {} | {:.1} s, {} | {} |",
                v.name,
                b.cold_secs,
                Self::ratio(b.cold_secs, host.cold_secs),
                b.server_change_secs,
                Self::ratio(b.server_change_secs, host.server_change_secs),
                b.dependency_change_secs,
                Self::ratio(b.dependency_change_secs, host.dependency_change_secs),
                crates,
            );
        }
        out
    }

    /// Each alternative against this project's default image, from this run.
    fn ratios_markdown(&self) -> String {
        let Some(project) = self.variant(Variant::Project) else {
            return String::new();
        };
        if self.variants.len() < 2 {
            return String::new();
        }
        let (Some(pb), Some(pi)) = (&project.builds, &project.image) else {
            return String::new();
        };
        let mut out = "\nAgainst `project` (how many times larger or slower):\n\n\
                       | variant | cold build | one-line rebuild | change outside the server | unpacked | on the wire |\n\
                       |---|---|---|---|---|---|\n"
            .to_owned();
        for v in self
            .variants
            .iter()
            .filter(|v| v.variant != Variant::Project)
        {
            let (Some(b), Some(i)) = (&v.builds, &v.image) else {
                continue;
            };
            #[allow(clippy::cast_precision_loss)]
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                v.name,
                Self::ratio(b.cold_secs, pb.cold_secs),
                Self::ratio(b.server_change_secs, pb.server_change_secs),
                Self::ratio(b.outside_change_secs, pb.outside_change_secs),
                Self::ratio(i.unpacked_bytes as f64, pi.unpacked_bytes as f64),
                Self::ratio(i.wire_bytes as f64, pi.wire_bytes as f64),
            );
        }
        out
    }

    fn binary_markdown(&self) -> String {
        let size = |bytes: Option<u64>| bytes.map_or_else(|| "-".to_owned(), output::size);
        let mut out = format!(
            "\nThe server binary: `release` {} as built, {} stripped; `size` {} as built, {} stripped, {} with UPX.\n",
            size(self.release_binary.as_built),
            size(self.release_binary.stripped),
            size(self.size_binary.as_built),
            size(self.size_binary.stripped),
            size(self.size_binary.upx),
        );
        if let Some(upx) = &self.upx {
            #[allow(clippy::cast_precision_loss)] // microseconds and kilobytes
            let us = |v: Option<u64>| {
                v.map_or_else(
                    || "-".to_owned(),
                    |us| format!("{:.1} ms", us as f64 / 1000.0),
                )
            };
            #[allow(clippy::cast_precision_loss)]
            let kb = |v: Option<u64>| {
                v.map_or_else(
                    || "-".to_owned(),
                    |kb| format!("{:.1} MB", kb as f64 / 1024.0),
                )
            };
            let _ = writeln!(
                out,
                "UPX's cost, the same binary packed and unpacked: `--version` (exec to exit) {} against {}; resident memory when ready {} against {}.",
                us(upx.start_packed_us),
                us(upx.start_unpacked_us),
                kb(upx.rss_packed_kb),
                kb(upx.rss_unpacked_kb),
            );
        }
        out
    }

    /// Two bar charts, image size and one-line rebuild time per variant.
    pub fn svg(&self) -> String {
        const WIDTH: f64 = 760.0;
        const LABEL: f64 = 150.0;
        const BAR: f64 = 22.0;
        const GAP: f64 = 8.0;
        let panels: [Panel; 2] = [
            (
                "Image size on the wire (MB)",
                self.variants
                    .iter()
                    .filter_map(|v| Some((v.name, output::megabytes(v.image.as_ref()?.wire_bytes))))
                    .collect(),
                "MB",
            ),
            (
                "Rebuild after a one-line server change (s)",
                self.variants
                    .iter()
                    .filter_map(|v| Some((v.name, v.builds.as_ref()?.server_change_secs)))
                    .collect(),
                "s",
            ),
        ];
        let rows: usize = panels.iter().map(|(_, bars, _)| bars.len()).sum();
        #[allow(clippy::cast_precision_loss)]
        let height = 40.0 + (rows as f64) * (BAR + GAP) + 2.0 * 50.0;
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let mut y = 20.0;
        for (title, bars, unit) in &panels {
            let _ = writeln!(
                out,
                "<text x=\"10\" y=\"{y}\" font-weight=\"bold\">{}</text>",
                escape(title)
            );
            y += 14.0;
            let max = bars.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
            for (name, value) in bars {
                let length = if max > 0.0 {
                    (WIDTH - LABEL - 90.0) * value / max
                } else {
                    0.0
                };
                let colour = if name.starts_with("project") {
                    "#2a7"
                } else {
                    "#999"
                };
                let _ = writeln!(
                    out,
                    "<text x=\"10\" y=\"{:.0}\">{}</text><rect x=\"{LABEL}\" y=\"{y:.0}\" width=\"{length:.1}\" height=\"{BAR}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.0}\">{value:.1} {unit}</text>",
                    y + BAR * 0.7,
                    escape(name),
                    LABEL + length + 6.0,
                    y + BAR * 0.7,
                );
                y += BAR + GAP;
            }
            y += 30.0;
        }
        out.push_str("</svg>\n");
        out
    }
}

fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
}

/// A chart's title, its bars (variant, value) and their unit.
type Panel<'a> = (&'static str, Vec<(&'a str, f64)>, &'static str);

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn measured(variant: Variant, scale: f64) -> VariantReport {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bytes = |b: f64| (b * scale) as u64;
        VariantReport {
            variant,
            name: variant.name(),
            description: variant.describe(),
            builds: Some(BuildTimes {
                cold_secs: 120.0 * scale,
                no_change_secs: 0.5,
                dependency_change_secs: 100.0 * scale,
                server_change_secs: 14.0 * scale,
                outside_change_secs: 0.4 * scale,
            }),
            crates_compiled: Some(CratesCompiled {
                cold: 180,
                dependency_change: 40,
                server_change: 1,
            }),
            image: Some(ImageFigures {
                unpacked_bytes: bytes(33_900_000.0),
                wire_bytes: bytes(13_800_000.0),
                layers: 3,
            }),
            runs: Some(RunFigures {
                runs: 1,
                start_to_ready_ms: Some(290),
                start_to_healthy_ms: Some(930),
                stop_idle_ms: Some(150),
                stop_under_load_ms: Some(1_540),
                requests_dropped: Some(0),
                shutdown_test_passed: variant != Variant::Naive,
                failed_checks: if variant == Variant::Naive {
                    vec!["hardened run".into()]
                } else {
                    vec![]
                },
            }),
            error: None,
        }
    }

    pub(crate) fn example() -> Report {
        Report {
            quick: true,
            started: "2026-11-23T01:00:00Z".into(),
            machine: Machine {
                os: "Debian GNU/Linux 12".into(),
                kernel: "6.1".into(),
                cpus: 2,
                memory_gib: 23.4,
                engine: "20.10.24".into(),
                builder: "buildx 0.13.1".into(),
                rustc: "rustc 1.95.0".into(),
            },
            dependency_change: Some(DependencyChange {
                name: "itoa".into(),
                from: "1.0.15".into(),
                to: "1.0.14".into(),
            }),
            variants: vec![
                measured(Variant::Naive, 4.0),
                measured(Variant::Project, 1.0),
                VariantReport {
                    image: None,
                    runs: None,
                    ..measured(Variant::Host, 0.5)
                },
            ],
            release_binary: BinarySizes {
                as_built: Some(8_345_504),
                stripped: Some(6_688_384),
                upx: None,
            },
            size_binary: BinarySizes::default(),
            upx: None,
        }
    }

    #[test]
    fn a_complete_report_has_no_gaps() {
        assert_eq!(example().gaps(), Vec::<String>::new());
    }

    #[test]
    fn a_build_log_without_the_binarys_sizes_is_a_gap() {
        let mut report = example();
        report.release_binary = BinarySizes::default();
        assert_eq!(
            report.gaps(),
            ["project: no release binary's sizes in its build log"]
        );
    }

    #[test]
    fn a_missing_figure_is_a_gap() {
        let mut report = example();
        report.variants[0]
            .runs
            .as_mut()
            .unwrap()
            .start_to_healthy_ms = None;
        report.variants[1].error = Some("the cold build failed".into());
        assert_eq!(
            report.gaps(),
            [
                "naive: no start to healthy",
                "project: the cold build failed"
            ]
        );
    }

    #[test]
    fn the_markdown_has_a_row_a_variant_and_the_ratios() {
        let text = example().markdown();
        assert!(text.contains("2 CPUs"), "{text}");
        assert!(
            text.contains("| naive | 480.0 s | 56.0 s | 400.0 s |"),
            "{text}"
        );
        assert!(
            text.contains("| project | 120.0 s | 14.0 s | 100.0 s |"),
            "{text}"
        );
        assert!(
            text.contains("| host | 60.0 s | 7.0 s | 50.0 s | 0.5 s |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| project | 120.0 s, 2.0× | 14.0 s, 2.0× | 100.0 s, 2.0× | 180 / 1 / 40 |"
            ),
            "{text}"
        );
        assert!(
            text.contains("(`itoa` 1.0.15 → 1.0.14 in Cargo.lock)"),
            "{text}"
        );
        assert!(
            text.contains("| naive | 4.0× | 4.0× | 4.0× | 4.0× | 4.0× |"),
            "{text}"
        );
        assert!(text.contains("fails: hardened run"), "{text}");
        assert!(text.contains("`release` 8.3 MB as built"), "{text}");
    }

    #[test]
    fn the_chart_is_an_svg_with_a_bar_a_variant_and_panel() {
        let svg = example().svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Two image sizes, three rebuilds (the host's among them).
        assert_eq!(svg.matches("<rect x=").count(), 5);
        assert!(svg.contains("55.2 MB"), "{svg}");
    }

    #[test]
    fn the_design_figures_name_the_run_and_skip_what_it_lacks() {
        let partial = example().design_figures();
        assert!(
            partial.contains("started 2026-11-23T01:00:00Z"),
            "{partial}"
        );
        assert!(!partial.contains("**Runtime.**"), "{partial}");
        let mut full = example();
        for (variant, scale) in [
            (Variant::ChefSlim, 1.5),
            (Variant::ChefTargetCache, 0.75),
            (Variant::ChefSccache, 1.25),
            (Variant::ProjectOptimized, 0.75),
            (Variant::ProjectMinimal, 0.25),
        ] {
            full.variants.push(measured(variant, scale));
        }
        let text = full.design_figures();
        for line in [
            "- **Runtime.** On the wire: naive (Debian slim) 55.2 MB, project 13.8 MB (4.0× smaller), project-minimal 3.5 MB",
            "One-line server change: naive 56.0 s, chef-slim 21.0 s, project 14.0 s (4.0× faster than naive)",
            "One-line change: host 7.0 s, project 14.0 s (2.0×), chef-target-cache 10.5 s (1.5×), chef-sccache 17.5 s (2.5×)",
            "- **UPX only with `--optimize`.** On the wire 10.3 MB against 13.8 MB",
        ] {
            assert!(text.contains(line), "lacks {line}:\n{text}");
        }
    }

    #[test]
    fn the_headline_compares_with_the_naive_image() {
        assert_eq!(
            example().headline(),
            "project: 4.0× smaller on the wire, one-line rebuild 4.0× faster than naive"
        );
    }
}

//! The benchmark's report: which machine, what each variant measured, the
//! ratios against this project's image, as Markdown, JSON and an SVG chart.

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::{BinarySizes, BuildTimes, ImageFigures, RunFigures, UpxCost};
use super::variants::Variant;
use crate::output;

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
    pub image: Option<ImageFigures>,
    pub runs: Option<RunFigures>,
    /// Why a measurement is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// One run of each timing instead of several.
    pub quick: bool,
    pub started: String,
    pub machine: Machine,
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
            for (what, present) in [
                ("build times", v.builds.is_some()),
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
            "| variant | cold build | one-line server change | no change | change outside the server | unpacked | on the wire | layers | start to ready | start to healthy | stop idle | stop under load | shutdown-test |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
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
                None => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                v.name,
                secs(|b| b.cold_secs),
                secs(|b| b.server_change_secs),
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
        out.push_str(&self.binary_markdown());
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
                server_change_secs: 14.0 * scale,
                outside_change_secs: 0.4 * scale,
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
            variants: vec![
                measured(Variant::Naive, 4.0),
                measured(Variant::Project, 1.0),
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
        assert!(text.contains("| naive | 480.0 s | 56.0 s |"), "{text}");
        assert!(text.contains("| project | 120.0 s | 14.0 s |"), "{text}");
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
        assert_eq!(svg.matches("<rect x=").count(), 4);
        assert!(svg.contains("55.2 MB"), "{svg}");
    }

    #[test]
    fn the_headline_compares_with_the_naive_image() {
        assert_eq!(
            example().headline(),
            "project: 4.0× smaller on the wire, one-line rebuild 4.0× faster than naive"
        );
    }
}

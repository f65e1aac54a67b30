//! `cargo xtask size-check`: measures the image and holds it to its budgets.

use std::io::BufReader;

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use crate::built_image::{self, ImageRef};
use crate::docker::Docker;
use crate::flags;
use crate::image_history::{self, Layer};
use crate::metadata::{self, Budget, Metadata};
use crate::output;
use crate::report::{self, Table};
use crate::saved_image::SavedImage;

/// How many of the largest layers an over-budget message names.
const LARGEST_LAYERS_NAMED: usize = 3;

impl flags::SizeCheck {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<()> {
        let image = built_image::resolve(&sh.current_dir(), self.image.as_deref())?;
        let docker = Docker::connect(sh)?;
        let binary_path = metadata::binary_path(&metadata.binary);
        let measurement = measure(&docker, sh, &image, &binary_path)?;
        let budget = self.budget(&metadata.budget);
        let problems = problems(&measurement, &budget);
        if self.json {
            let json = serde_json::json!({
                "measurement": measurement,
                "budget": budget_json(&budget),
                "problems": problems.iter().map(Problem::message).collect::<Vec<_>>(),
                "passed": problems.is_empty(),
            });
            output::print_json(&json)?;
        } else {
            output::print(&render(&measurement, &budget, &problems))?;
        }
        if !problems.is_empty() {
            bail!("{}", verdict(&measurement, &problems));
        }
        Ok(())
    }

    fn budget(&self, manifest: &Budget) -> Budget {
        Budget {
            max_image_mb: self.max_image_mb.unwrap_or(manifest.max_image_mb),
            max_layers: self.max_layers.unwrap_or(manifest.max_layers),
            max_binary_mb: self.max_binary_mb.unwrap_or(manifest.max_binary_mb),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub image: String,
    pub image_id: String,
    /// Bytes of the unpacked filesystem, as `docker images` counts them.
    pub unpacked_bytes: u64,
    /// Bytes of the gzip-compressed layers: what a registry stores and a pull transfers.
    pub compressed_bytes: u64,
    pub layer_count: usize,
    pub binary: Binary,
    /// Base layer first.
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Binary {
    pub path: String,
    /// Absent when the image holds no such file.
    pub bytes: Option<u64>,
    /// The file the path leads to, when it is a symbolic link.
    pub resolved_path: Option<String>,
    /// The layer (1 = base) that wrote it.
    pub layer: Option<usize>,
}

fn measure(
    docker: &Docker,
    sh: &Shell,
    image: &ImageRef,
    binary_path: &str,
) -> anyhow::Result<Measurement> {
    let reference = image.reference.as_str();
    let inspect = docker.inspect_image(sh, reference)?;
    let history = docker
        .output(
            sh,
            [
                "history",
                "--no-trunc",
                "--human=false",
                "--format",
                "{{json .}}",
                reference,
            ],
        )
        .with_context(|| format!("cannot read the history of {}", image.name))?;
    let rows = image_history::parse_history(&history)?;
    let saved = save(docker, reference)
        .with_context(|| format!("cannot measure the layers of {}", image.name))?;
    if saved.layers.len() != inspect.root_fs.layers.len() {
        bail!(
            "{}: docker save wrote {} layers but the image has {}",
            image.name,
            saved.layers.len(),
            inspect.root_fs.layers.len()
        );
    }
    let layers = image_history::layers(&rows, &saved.history, &saved.layers)
        .with_context(|| format!("cannot match {}'s history to its layers", image.name))?;
    let file = saved.file(binary_path);
    let binary = Binary {
        path: binary_path.to_owned(),
        bytes: file.as_ref().map(|f| f.size),
        resolved_path: file
            .as_ref()
            .filter(|f| f.resolved_path != binary_path)
            .map(|f| f.resolved_path.clone()),
        layer: file.as_ref().map(|f| f.layer + 1),
    };
    Ok(Measurement {
        image: image.display_name(&inspect),
        image_id: inspect.id.clone(),
        unpacked_bytes: inspect.size,
        compressed_bytes: saved.layers.iter().map(|l| l.compressed_bytes).sum(),
        layer_count: saved.layers.len(),
        binary,
        layers,
    })
}

/// Streams `docker save` through the reader: the archive is never written out.
fn save(docker: &Docker, reference: &str) -> anyhow::Result<SavedImage> {
    let reader = duct::cmd(docker.program(), ["save", reference])
        .stderr_null()
        .reader()
        .context("cannot run docker save")?;
    SavedImage::read(BufReader::with_capacity(1 << 20, reader))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    Over {
        figure: &'static str,
        measured: f64,
        limit: f64,
        unit: &'static str,
    },
    MissingBinary(String),
}

impl Problem {
    pub fn message(&self) -> String {
        match self {
            Problem::Over {
                figure,
                measured,
                limit,
                unit,
            } => format!(
                "{figure} {} is {} over the budget of {}",
                amount(*measured, unit),
                amount(measured - limit, unit),
                amount(*limit, unit)
            ),
            Problem::MissingBinary(path) => format!("the binary {path} is not in the image"),
        }
    }
}

fn amount(value: f64, unit: &str) -> String {
    if unit.is_empty() {
        format!("{value}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// Every figure over its budget.
pub fn problems(measurement: &Measurement, budget: &Budget) -> Vec<Problem> {
    let mut problems = Vec::new();
    let image_mb = report::megabytes(measurement.unpacked_bytes);
    if image_mb > budget.max_image_mb {
        problems.push(Problem::Over {
            figure: "unpacked size",
            measured: image_mb,
            limit: budget.max_image_mb,
            unit: "MB",
        });
    }
    if measurement.layer_count > budget.max_layers {
        #[allow(clippy::cast_precision_loss)]
        problems.push(Problem::Over {
            figure: "layers",
            measured: measurement.layer_count as f64,
            limit: budget.max_layers as f64,
            unit: "",
        });
    }
    match measurement.binary.bytes {
        Some(bytes) if report::megabytes(bytes) > budget.max_binary_mb => {
            problems.push(Problem::Over {
                figure: "binary",
                measured: report::megabytes(bytes),
                limit: budget.max_binary_mb,
                unit: "MB",
            });
        }
        Some(_) => {}
        None => problems.push(Problem::MissingBinary(measurement.binary.path.clone())),
    }
    problems
}

/// The one line an over-budget run ends with: each figure over, by how
/// much, and where the bytes are.
pub fn verdict(measurement: &Measurement, problems: &[Problem]) -> String {
    let mut largest: Vec<&Layer> = measurement
        .layers
        .iter()
        .filter(|l| l.size_bytes > 0)
        .collect();
    largest.sort_by_key(|l| std::cmp::Reverse(l.size_bytes));
    let largest: Vec<String> = largest
        .iter()
        .take(LARGEST_LAYERS_NAMED)
        .map(|l| {
            format!(
                "#{} {} {}",
                l.number,
                report::size(l.size_bytes),
                report::truncate(&l.instruction, 60)
            )
        })
        .collect();
    let problems: Vec<String> = problems.iter().map(Problem::message).collect();
    format!(
        "{} is over budget: {}; largest layers: {}",
        measurement.image,
        problems.join("; "),
        largest.join(", ")
    )
}

fn budget_json(budget: &Budget) -> serde_json::Value {
    serde_json::json!({
        "max_image_mb": budget.max_image_mb,
        "max_layers": budget.max_layers,
        "max_binary_mb": budget.max_binary_mb,
    })
}

fn status(over: bool) -> &'static str {
    if over { "OVER" } else { "ok" }
}

pub fn render(measurement: &Measurement, budget: &Budget, problems: &[Problem]) -> String {
    let is_over = |name: &str| {
        problems
            .iter()
            .any(|p| matches!(p, Problem::Over { figure, .. } if *figure == name))
    };
    let mut out = format!(
        "image {} ({})\n\n",
        measurement.image,
        image_history::short_id(&measurement.image_id)
    );
    let mut figures = Table::new(&["figure", "measured", "budget", "status"]).right_align(&[1, 2]);
    figures.row([
        "unpacked size".to_owned(),
        report::size(measurement.unpacked_bytes),
        format!("{} MB", budget.max_image_mb),
        status(is_over("unpacked size")).to_owned(),
    ]);
    figures.row([
        "on the wire (gzip layers)".to_owned(),
        report::size(measurement.compressed_bytes),
        "-".to_owned(),
        String::new(),
    ]);
    figures.row([
        "layers".to_owned(),
        measurement.layer_count.to_string(),
        budget.max_layers.to_string(),
        status(is_over("layers")).to_owned(),
    ]);
    let binary = &measurement.binary;
    let (binary_size, binary_status) = match binary.bytes {
        Some(bytes) => (report::size(bytes), status(is_over("binary"))),
        None => ("missing".to_owned(), "MISSING"),
    };
    let binary_name = match &binary.resolved_path {
        Some(resolved) => format!("binary {} -> {resolved}", binary.path),
        None => format!("binary {}", binary.path),
    };
    figures.row([
        binary_name,
        binary_size,
        format!("{} MB", budget.max_binary_mb),
        binary_status.to_owned(),
    ]);
    out.push_str(&figures.render());
    out.push('\n');
    let mut layers =
        Table::new(&["#", "size", "tar", "gzip", "instruction"]).right_align(&[0, 1, 2, 3]);
    for layer in &measurement.layers {
        let mut instruction = report::truncate(&layer.instruction, 72);
        if binary.layer == Some(layer.number) {
            instruction.push_str("  <- binary");
        }
        layers.row([
            layer.number.to_string(),
            report::size(layer.size_bytes),
            report::size(layer.tar_bytes),
            report::size(layer.compressed_bytes),
            instruction,
        ]);
    }
    out.push_str(&layers.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(number: usize, size_bytes: u64, instruction: &str) -> Layer {
        Layer {
            number,
            instruction: instruction.to_owned(),
            size_bytes,
            tar_bytes: size_bytes + 1024,
            compressed_bytes: size_bytes / 3,
        }
    }

    fn measurement() -> Measurement {
        Measurement {
            image: "server:0.1.0".into(),
            image_id: "sha256:0123456789abcdef".into(),
            unpacked_bytes: 31_200_000,
            compressed_bytes: 12_000_000,
            layer_count: 3,
            binary: Binary {
                path: "/usr/local/bin/server".into(),
                bytes: Some(3_700_000),
                resolved_path: None,
                layer: Some(3),
            },
            layers: vec![
                layer(1, 27_000_000, "(Imported from -)"),
                layer(2, 500_000, "COPY etc/ /etc/"),
                layer(3, 3_700_000, "COPY server /usr/local/bin/server"),
            ],
        }
    }

    fn budget(image: f64, layers: usize, binary: f64) -> Budget {
        Budget {
            max_image_mb: image,
            max_layers: layers,
            max_binary_mb: binary,
        }
    }

    #[test]
    fn within_budget_there_are_no_problems() {
        assert!(problems(&measurement(), &budget(100.0, 20, 20.0)).is_empty());
    }

    #[test]
    fn each_figure_over_is_named_with_how_far_over() {
        let problems = problems(&measurement(), &budget(30.0, 2, 1.0));
        let messages: Vec<String> = problems.iter().map(Problem::message).collect();
        assert_eq!(
            messages,
            [
                "unpacked size 31.2 MB is 1.2 MB over the budget of 30.0 MB",
                "layers 3 is 1 over the budget of 2",
                "binary 3.7 MB is 2.7 MB over the budget of 1.0 MB",
            ]
        );
    }

    #[test]
    fn a_missing_binary_is_a_problem() {
        let mut measurement = measurement();
        measurement.binary.bytes = None;
        let problems = problems(&measurement, &budget(100.0, 20, 20.0));
        assert_eq!(
            problems,
            [Problem::MissingBinary("/usr/local/bin/server".into())]
        );
    }

    #[test]
    fn the_verdict_names_the_largest_layers_largest_first() {
        let measurement = measurement();
        let problems = problems(&measurement, &budget(30.0, 20, 20.0));
        let verdict = verdict(&measurement, &problems);
        assert!(
            verdict.starts_with("server:0.1.0 is over budget: unpacked size"),
            "{verdict}"
        );
        let first = verdict.find("#1 27.0 MB").unwrap();
        let second = verdict.find("#3 3.7 MB").unwrap();
        assert!(first < second, "{verdict}");
        assert!(!verdict.contains('\n'));
    }

    #[test]
    fn the_table_marks_figures_over_and_the_binarys_layer() {
        let measurement = measurement();
        let problems = problems(&measurement, &budget(30.0, 20, 20.0));
        let table = render(&measurement, &budget(30.0, 20, 20.0), &problems);
        let size_line = table
            .lines()
            .find(|l| l.starts_with("unpacked size"))
            .unwrap();
        assert!(size_line.ends_with("OVER"), "{table}");
        let layer_line = table.lines().find(|l| l.contains("COPY server")).unwrap();
        assert!(layer_line.ends_with("<- binary"), "{table}");
    }

    #[test]
    fn flags_override_the_manifests_budget() {
        let flags = flags::SizeCheck {
            image: None,
            max_image_mb: Some(50.0),
            max_layers: None,
            max_binary_mb: None,
            json: false,
        };
        let budget = flags.budget(&budget(100.0, 20, 20.0));
        assert!((budget.max_image_mb - 50.0).abs() < f64::EPSILON);
        assert_eq!(budget.max_layers, 20);
    }
}

//! `cargo xtask size-check`: measures the image and holds it to its budgets.

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use crate::checks::{Check, Verdict};
use crate::docker::Docker;
use crate::docker::history::{self, Layer};
use crate::flags;
use crate::last_build::{self, ImageRef};
use crate::metadata::{self, Budget, Metadata};
use crate::output::{self, Table};

/// How many of the largest layers an over-budget message names.
const LARGEST_LAYERS_NAMED: usize = 3;

impl flags::SizeCheck {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let image = last_build::resolve(&sh.current_dir(), self.image.as_deref())?;
        let docker = Docker::connect(sh)?;
        let binary_path = metadata::SERVICE_PATH;
        let measurement = measure(&docker, sh, &image, binary_path)?;
        let budget = self.budget(&metadata.budget);
        let checks = judge(&measurement, &budget);
        let details = serde_json::json!({
            "measurement": measurement,
            "budget": budget,
        });
        Ok(Verdict {
            text: render(&measurement),
            headline: format!(
                "{} unpacked, {} on the wire, {} layers",
                output::size(measurement.unpacked_bytes),
                output::size(measurement.compressed_bytes),
                measurement.layer_count
            ),
            checks,
            ..Verdict::new("size-check", measurement.image.clone()).with_details(details)
        })
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

pub fn measure(
    docker: &Docker,
    sh: &Shell,
    image: &ImageRef,
    binary_path: &str,
) -> anyhow::Result<Measurement> {
    let reference = image.reference.as_str();
    let inspect = docker.inspect_image(sh, reference)?;
    let rows = docker.history(sh, reference)?;
    let saved = docker.save(reference)?;
    if saved.layers.len() != inspect.root_fs.layers.len() {
        bail!(
            "{}: docker save wrote {} layers but the image has {}",
            image.name,
            saved.layers.len(),
            inspect.root_fs.layers.len()
        );
    }
    let layers = history::layers(&rows, &saved.history, &saved.layers)
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

/// One check for each budget: the unpacked size, the layers, the binary.
/// A figure over its budget names by how much, and where the bytes are.
pub fn judge(measurement: &Measurement, budget: &Budget) -> Vec<Check> {
    let where_the_bytes_are = largest_layers(measurement);
    let image_mb = output::megabytes(measurement.unpacked_bytes);
    let mut checks = vec![
        Check::judge(
            "unpacked size",
            image_mb <= budget.max_image_mb,
            output::size(measurement.unpacked_bytes),
            format!("<= {} MB", budget.max_image_mb),
        )
        .because(format!(
            "{} over the budget of {} MB; largest layers: {where_the_bytes_are}",
            megabytes_over(image_mb, budget.max_image_mb),
            budget.max_image_mb
        )),
        Check::judge(
            "layers",
            measurement.layer_count <= budget.max_layers,
            measurement.layer_count.to_string(),
            format!("<= {}", budget.max_layers),
        )
        .because(format!(
            "{} over the budget of {}",
            measurement.layer_count.saturating_sub(budget.max_layers),
            budget.max_layers
        )),
    ];
    let binary = &measurement.binary;
    let expected = format!("<= {} MB", budget.max_binary_mb);
    checks.push(match binary.bytes {
        Some(bytes) => {
            let binary_mb = output::megabytes(bytes);
            Check::judge(
                "binary size",
                binary_mb <= budget.max_binary_mb,
                output::size(bytes),
                expected,
            )
            .because(format!(
                "{} over the budget of {} MB",
                megabytes_over(binary_mb, budget.max_binary_mb),
                budget.max_binary_mb
            ))
        }
        None => Check::judge(
            "binary size",
            false,
            format!("{} is not in the image", binary.path),
            expected,
        ),
    });
    checks
}

fn megabytes_over(measured: f64, limit: f64) -> String {
    format!("{measured:.1} MB is {:.1} MB", measured - limit)
}

/// The layers that hold the most bytes, largest first.
fn largest_layers(measurement: &Measurement) -> String {
    let mut largest: Vec<&Layer> = measurement
        .layers
        .iter()
        .filter(|l| l.size_bytes > 0)
        .collect();
    largest.sort_by_key(|l| std::cmp::Reverse(l.size_bytes));
    largest
        .iter()
        .take(LARGEST_LAYERS_NAMED)
        .map(|l| {
            format!(
                "#{} {} {}",
                l.number,
                output::size(l.size_bytes),
                output::truncate(&l.instruction, 60)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The image, what goes over the wire, and each layer with the
/// instruction that made it.
pub fn render(measurement: &Measurement) -> String {
    let binary = &measurement.binary;
    let binary_name = match &binary.resolved_path {
        Some(resolved) => format!("{} -> {resolved}", binary.path),
        None => binary.path.clone(),
    };
    let mut out = format!(
        "image {} ({})\n  on the wire (gzip layers) {}\n  binary {binary_name}\n\n",
        measurement.image,
        history::short_id(&measurement.image_id),
        output::size(measurement.compressed_bytes),
    );
    let mut layers =
        Table::new(&["#", "size", "tar", "gzip", "instruction"]).right_align(&[0, 1, 2, 3]);
    for layer in &measurement.layers {
        let mut instruction = output::truncate(&layer.instruction, 72);
        if binary.layer == Some(layer.number) {
            instruction.push_str("  <- binary");
        }
        layers.row([
            layer.number.to_string(),
            output::size(layer.size_bytes),
            output::size(layer.tar_bytes),
            output::size(layer.compressed_bytes),
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

    fn failures(measurement: &Measurement, budget: &Budget) -> Vec<String> {
        crate::checks::failures(judge(measurement, budget))
    }

    #[test]
    fn within_budget_every_check_passes() {
        assert!(failures(&measurement(), &budget(100.0, 20, 20.0)).is_empty());
    }

    #[test]
    fn exactly_at_the_budget_is_within_it() {
        assert!(failures(&measurement(), &budget(31.2, 3, 3.7)).is_empty());
    }

    #[test]
    fn each_figure_over_is_named_with_how_far_over() {
        let failures = failures(&measurement(), &budget(30.0, 2, 1.0));
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(
            failures[0].starts_with(
                "unpacked size: 31.2 MB is 1.2 MB over the budget of 30 MB; largest layers: #1 27.0 MB"
            ),
            "{failures:?}"
        );
        assert_eq!(failures[1], "layers: 1 over the budget of 2");
        assert_eq!(
            failures[2],
            "binary size: 3.7 MB is 2.7 MB over the budget of 1 MB"
        );
    }

    #[test]
    fn a_missing_binary_fails_its_budget() {
        let mut measurement = measurement();
        measurement.binary.bytes = None;
        assert_eq!(
            failures(&measurement, &budget(100.0, 20, 20.0)),
            ["binary size: /usr/local/bin/server is not in the image"]
        );
    }

    #[test]
    fn the_largest_layers_are_named_largest_first() {
        let named = largest_layers(&measurement());
        let first = named.find("#1 27.0 MB").unwrap();
        let second = named.find("#3 3.7 MB").unwrap();
        assert!(first < second, "{named}");
    }

    #[test]
    fn the_layer_table_marks_the_binarys_layer() {
        let table = render(&measurement());
        let layer_line = table.lines().find(|l| l.contains("COPY server")).unwrap();
        assert!(layer_line.ends_with("<- binary"), "{table}");
        assert!(
            table.contains("on the wire (gzip layers) 12.0 MB"),
            "{table}"
        );
    }

    #[test]
    fn flags_override_the_manifests_budget() {
        let flags = flags::SizeCheck {
            image: None,
            max_image_mb: Some(50.0),
            max_layers: None,
            max_binary_mb: None,
        };
        let budget = flags.budget(&budget(100.0, 20, 20.0));
        assert!((budget.max_image_mb - 50.0).abs() < f64::EPSILON);
        assert_eq!(budget.max_layers, 20);
    }
}

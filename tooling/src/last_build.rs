//! `target/xtask/image.json`: what the last `cargo xtask image` built, and
//! which image a command works on: the one named with `--image`, or that one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::docker::ImageInspect;

/// One build's result. Fields are added, never renamed or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageReport {
    /// The engine's image id, `sha256:…`.
    pub image_id: String,
    /// Every tag given to the image; the first is the one to use.
    pub tags: Vec<String>,
    /// Unpacked size of all layers, as `docker image inspect` reports it.
    pub size_bytes: u64,
    /// Number of filesystem layers.
    pub layers: usize,
    /// Wall time of the image build itself.
    pub duration_secs: f64,
    /// Wall time spent checking, and when out of date making, the offline
    /// base and vendor images (absent for online builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_prepare_secs: Option<f64>,
    /// Built with the `size` profile and UPX.
    pub optimize: bool,
    /// Built from local stand-ins with the network off.
    pub offline: bool,
    /// The cargo profile the server was built with.
    pub profile: String,
    /// The workspace version.
    pub version: String,
    /// The full commit id, `-dirty` when the work tree had changes.
    pub revision: String,
    /// The image's `org.opencontainers.image.created`.
    pub created: String,
    /// The base images the build used.
    pub builder_image: String,
    pub runtime_image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The BuildKit client that ran the build.
    pub builder: String,
    /// What the build was made from and by, for its SLSA provenance
    /// (`provenance.rs`); absent in reports of older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<crate::provenance::Recipe>,
    /// How the image falls short of what it must be (see `conformance.rs`);
    /// empty when it conforms.
    #[serde(default)]
    pub violations: Vec<String>,
}

impl ImageReport {
    pub fn path(root: &Path) -> PathBuf {
        root.join("target/xtask/image.json")
    }

    /// The first tag, or the id when the image has none.
    pub fn reference(&self) -> &str {
        self.tags.first().unwrap_or(&self.image_id)
    }

    /// Reads the last build's report.
    pub fn load(root: &Path) -> anyhow::Result<ImageReport> {
        let path = ImageReport::path(root);
        read(&path, || {
            format!(
                "no image built yet ({} is missing): run `cargo xtask image` or name one with --image",
                path.display()
            )
        })
    }

    /// Where the report of the image `id` is kept: each build keeps its
    /// own, so that any image built here, not only the last, can be
    /// published (its provenance recipe) and built again for other
    /// platforms (its options).
    fn path_of(root: &Path, id: &str) -> PathBuf {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        root.join("target/xtask/images").join(format!("{hex}.json"))
    }

    /// Reads the report of the image `id` (`reference` names it in errors).
    pub fn load_of(root: &Path, id: &str, reference: &str) -> anyhow::Result<ImageReport> {
        read(&ImageReport::path_of(root, id), || {
            format!(
                "no build of {reference} ({}) is recorded here: `cargo xtask image` records each image it builds; build it with `cargo xtask image`",
                crate::output::digest(id)
            )
        })
    }

    /// Writes the report as the last build's and as its image's own;
    /// returns the last build's path.
    pub fn save(&self, root: &Path) -> anyhow::Result<PathBuf> {
        let json = serde_json::to_string_pretty(self)? + "\n";
        let last = ImageReport::path(root);
        for path in [ImageReport::path_of(root, &self.image_id), last.clone()] {
            crate::files::write_if_changed(&path, json.as_bytes(), None)?;
        }
        Ok(last)
    }
}

/// A report's file; a missing one is the error `missing` says.
fn read(path: &Path, missing: impl FnOnce() -> String) -> anyhow::Result<ImageReport> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(missing()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
}

/// An image reference a check passes to docker, and how to name it to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Passed to docker: the id when it came from the build report, so a tag
    /// moved since cannot swap the image under the check.
    pub reference: String,
    pub name: String,
}

impl ImageRef {
    /// The name reports show: the tag the build report gave, else the
    /// image's first tag (what `--image` named may be an id).
    pub fn display_name(&self, inspect: &ImageInspect) -> String {
        if self.name == self.reference {
            inspect.display_name()
        } else {
            self.name.clone()
        }
    }
}

/// `--image NAME` wins; otherwise the last build's report under `root`.
pub fn resolve(root: &Path, flag: Option<&str>) -> anyhow::Result<ImageRef> {
    match flag {
        Some(name) => Ok(ImageRef {
            reference: name.to_owned(),
            name: name.to_owned(),
        }),
        None => Ok(ImageRef::of_last_build(&ImageReport::load(root)?)),
    }
}

impl ImageRef {
    fn of_last_build(report: &ImageReport) -> ImageRef {
        ImageRef {
            reference: report.image_id.clone(),
            name: report.reference().to_owned(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> ImageReport {
        ImageReport {
            image_id: "sha256:53dc".into(),
            tags: vec!["server:0.1.0".into(), "server:sha-cd8af26".into()],
            size_bytes: 27_553_803,
            layers: 3,
            duration_secs: 3.9,
            offline_prepare_secs: Some(0.4),
            optimize: false,
            offline: true,
            profile: "release".into(),
            version: "0.1.0".into(),
            revision: "cd8af26".into(),
            created: "2026-11-22T12:00:00Z".into(),
            builder_image: "xtask-offline/builder:1".into(),
            runtime_image: "xtask-offline/runtime:1".into(),
            vendor_image: Some("xtask-offline/vendor:1".into()),
            platform: None,
            builder: "docker buildx".into(),
            recipe: None,
            violations: vec![],
        }
    }

    #[test]
    fn survives_a_round_trip_through_its_file() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        let report = example();
        let path = report.save(&dir).unwrap();
        assert!(path.ends_with("target/xtask/image.json"));
        assert_eq!(ImageReport::load(&dir).unwrap(), report);
    }

    /// Each build's report is kept under its image's id, so that an earlier
    /// build's is found after a later build, and no other image's is.
    #[test]
    fn each_build_is_kept_for_its_image_and_only_found_for_it() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        let first = example();
        first.save(&dir).unwrap();
        let later = ImageReport {
            image_id: "sha256:77aa".into(),
            ..example()
        };
        later.save(&dir).unwrap();
        assert_eq!(ImageReport::load(&dir).unwrap(), later);
        assert_eq!(
            ImageReport::load_of(&dir, "sha256:53dc", "server:0.1.0").unwrap(),
            first
        );
        let error = ImageReport::load_of(&dir, "sha256:9999", "server:old").unwrap_err();
        assert!(
            error.to_string().contains("no build of server:old"),
            "{error}"
        );
    }

    #[test]
    fn names_the_fields_other_commands_read() {
        let json = serde_json::to_value(example()).unwrap();
        for field in [
            "image_id",
            "tags",
            "size_bytes",
            "layers",
            "duration_secs",
            "optimize",
            "offline",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
    }

    #[test]
    fn a_missing_report_says_how_to_make_one() {
        let error = ImageReport::load(Path::new("/nonexistent")).unwrap_err();
        assert!(error.to_string().contains("cargo xtask image"), "{error}");
    }

    #[test]
    fn the_first_tag_names_the_image() {
        assert_eq!(example().reference(), "server:0.1.0");
        let untagged = ImageReport {
            tags: vec![],
            ..example()
        };
        assert_eq!(untagged.reference(), "sha256:53dc");
    }

    #[test]
    fn the_report_gives_the_id_to_docker_and_the_tag_to_people() {
        let image = ImageRef::of_last_build(&example());
        assert_eq!(
            image,
            ImageRef {
                reference: "sha256:53dc".into(),
                name: "server:0.1.0".into()
            }
        );
    }

    #[test]
    fn the_flag_wins_over_the_report() {
        let image = resolve(Path::new("/nonexistent"), Some("x:1")).unwrap();
        assert_eq!(image.reference, "x:1");
    }

    #[test]
    fn no_report_and_no_flag_says_how_to_get_an_image() {
        let error = resolve(Path::new("/nonexistent"), None).unwrap_err();
        assert!(error.to_string().contains("cargo xtask image"), "{error}");
    }
}

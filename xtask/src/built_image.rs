//! Which image a check runs on: the one named on the command line, or the
//! one the last `cargo xtask image` recorded (`image_report.rs`).

use std::path::Path;

use crate::docker::ImageInspect;
use crate::image_report::ImageReport;

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
        None => Ok(from_report(&ImageReport::load(root)?)),
    }
}

fn from_report(report: &ImageReport) -> ImageRef {
    ImageRef {
        reference: report.image_id.clone(),
        name: report.reference().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_report;

    #[test]
    fn the_report_gives_the_id_to_docker_and_the_tag_to_people() {
        let image = from_report(&image_report::tests::example());
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

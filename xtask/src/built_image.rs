//! Which image a check runs on: the one named on the command line, or the
//! one the last `cargo xtask image` recorded in `target/xtask/image.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Where `cargo xtask image` records what it built, relative to the workspace.
pub const IMAGE_REPORT: &str = "target/xtask/image.json";

/// The fields of the build record a check needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildRecord {
    pub image_id: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An image reference a check passes to docker, and how to name it to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Passed to docker: an id when it came from the build record, so a tag
    /// moved since cannot swap the image under the check.
    pub reference: String,
    pub name: String,
}

/// `--image NAME` wins; otherwise the build record under `root`.
pub fn resolve(root: &Path, flag: Option<&str>) -> anyhow::Result<ImageRef> {
    if let Some(name) = flag {
        return Ok(ImageRef {
            reference: name.to_owned(),
            name: name.to_owned(),
        });
    }
    let path: PathBuf = root.join(IMAGE_REPORT);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no image to check: {IMAGE_REPORT} does not exist (run `cargo xtask image` or pass --image NAME)"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let record = parse(&text).with_context(|| format!("{}: not a build record", path.display()))?;
    Ok(record.image_ref())
}

pub fn parse(text: &str) -> anyhow::Result<BuildRecord> {
    let record: BuildRecord = serde_json::from_str(text)?;
    if record.image_id.trim().is_empty() {
        bail!("image_id is empty");
    }
    Ok(record)
}

impl BuildRecord {
    pub fn image_ref(&self) -> ImageRef {
        ImageRef {
            reference: self.image_id.clone(),
            name: self
                .tags
                .first()
                .cloned()
                .unwrap_or_else(|| self.image_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_gives_the_id_to_docker_and_the_tag_to_people() {
        let record = parse(
            r#"{"image_id":"sha256:abc","tags":["server:0.1.0","server:sha-1234567"],
                "size_bytes":1,"layers":4,"duration_secs":1.5,"optimize":true,"offline":true}"#,
        )
        .unwrap();
        assert_eq!(
            record.image_ref(),
            ImageRef {
                reference: "sha256:abc".into(),
                name: "server:0.1.0".into()
            }
        );
    }

    #[test]
    fn a_record_without_an_id_is_rejected() {
        assert!(parse(r#"{"image_id":"","tags":[]}"#).is_err());
        assert!(parse(r#"{"tags":[]}"#).is_err());
    }

    #[test]
    fn the_flag_wins_over_the_record() {
        let image = resolve(Path::new("/nonexistent"), Some("x:1")).unwrap();
        assert_eq!(image.reference, "x:1");
    }

    #[test]
    fn no_record_and_no_flag_says_how_to_get_an_image() {
        let error = resolve(Path::new("/nonexistent"), None).unwrap_err();
        assert!(error.to_string().contains("cargo xtask image"), "{error}");
    }
}

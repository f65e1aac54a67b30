//! An OCI image layout archive, as `--output type=oci,dest=…` writes it:
//! `index.json` names the image (its digest is what a registry would
//! serve), and every manifest, config and layer is a blob under
//! `blobs/<algorithm>/<hex>`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::tar_stream::{self, Header, Kind};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One archive, read whole: images here are tens of megabytes.
pub struct OciLayout {
    /// The digest `index.json` names: the image's, or its index's when it
    /// has several platforms.
    pub digest: String,
    /// Every image manifest under that digest, in the index's order.
    pub images: Vec<OciImage>,
    blobs: BTreeMap<String, Vec<u8>>,
}

/// One platform's image.
pub struct OciImage {
    pub platform: Option<String>,
    pub config_digest: String,
    pub config: serde_json::Value,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    fn describe(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// One entry of a layer, with what makes it differ from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub header: Header,
    /// SHA-1 of the content: enough to tell two contents apart.
    pub content: String,
}

impl OciLayout {
    pub fn read(path: &Path) -> anyhow::Result<OciLayout> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let blobs = read_entries(std::io::BufReader::new(file))
            .with_context(|| format!("{} is not an OCI layout archive", path.display()))?;
        OciLayout::from_entries(blobs).with_context(|| format!("in {}", path.display()))
    }

    /// The layout from its files, keyed by path in the archive.
    fn from_entries(mut files: BTreeMap<String, Vec<u8>>) -> anyhow::Result<OciLayout> {
        let index = files
            .remove("index.json")
            .context("no index.json: not an OCI image layout")?;
        let index: Index = serde_json::from_slice(&index).context("index.json is malformed")?;
        let top = index
            .manifests
            .first()
            .context("index.json names no manifest")?
            .clone();
        let blobs: BTreeMap<String, Vec<u8>> = files
            .into_iter()
            .filter_map(|(path, bytes)| {
                let rest = path.strip_prefix("blobs/")?;
                let (algorithm, hex) = rest.split_once('/')?;
                Some((format!("{algorithm}:{hex}"), bytes))
            })
            .collect();
        let mut layout = OciLayout {
            digest: top.digest.clone(),
            images: Vec::new(),
            blobs,
        };
        let manifests = if top.media_type == INDEX || top.media_type == DOCKER_LIST {
            let nested: Index = serde_json::from_slice(layout.blob(&top.digest)?)
                .with_context(|| format!("the index {} is malformed", top.digest))?;
            nested.manifests
        } else {
            vec![top]
        };
        for descriptor in manifests {
            let image = layout.image(&descriptor)?;
            layout.images.push(image);
        }
        Ok(layout)
    }

    fn image(&self, descriptor: &Descriptor) -> anyhow::Result<OciImage> {
        let manifest: Manifest = serde_json::from_slice(self.blob(&descriptor.digest)?)
            .with_context(|| format!("the manifest {} is malformed", descriptor.digest))?;
        let config = serde_json::from_slice(self.blob(&manifest.config.digest)?)
            .with_context(|| format!("the config {} is malformed", manifest.config.digest))?;
        Ok(OciImage {
            platform: descriptor.platform.as_ref().map(Platform::describe),
            config_digest: manifest.config.digest,
            config,
            layers: manifest.layers,
        })
    }

    pub fn blob(&self, digest: &str) -> anyhow::Result<&[u8]> {
        self.blobs
            .get(digest)
            .map(Vec::as_slice)
            .with_context(|| format!("the layout has no blob {digest}"))
    }

    /// A layer's entries, uncompressed and walked, in archive order.
    pub fn layer_entries(&self, layer: &Descriptor) -> anyhow::Result<Vec<LayerEntry>> {
        let bytes = self.blob(&layer.digest)?;
        let reader: Box<dyn Read + '_> =
            if layer.media_type.ends_with("+gzip") || layer.media_type.ends_with(".tar.gzip") {
                Box::new(flate2::read::GzDecoder::new(bytes))
            } else if layer.media_type.ends_with("+zstd") {
                anyhow::bail!(
                    "layer {} is zstd-compressed, which this reader does not decompress",
                    layer.digest
                );
            } else {
                Box::new(bytes)
            };
        let unreadable = || format!("layer {} is not a readable tar", layer.digest);
        let mut archive = tar::Archive::new(reader);
        let mut entries = Vec::new();
        for entry in archive.entries().with_context(unreadable)? {
            let mut entry = entry.with_context(unreadable)?;
            let header = Header::read(&mut entry).with_context(unreadable)?;
            let mut hasher = sha1_smol::Sha1::new();
            if header.kind == Kind::File {
                let mut content = Vec::new();
                tar_stream::content(&mut entry).read_to_end(&mut content)?;
                hasher.update(&content);
            }
            entries.push(LayerEntry {
                header,
                content: hasher.digest().to_string(),
            });
        }
        Ok(entries)
    }
}

/// Every regular file of the archive, by path (`./` removed).
fn read_entries(reader: impl Read) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut archive = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = Header::read(&mut entry)?;
        if header.kind != Kind::File {
            continue;
        }
        let mut content = Vec::new();
        tar_stream::content(&mut entry).read_to_end(&mut content)?;
        let path = header.path.trim_start_matches("./").to_owned();
        files.insert(path, content);
    }
    Ok(files)
}

#[cfg(test)]
pub mod testing {
    //! Layouts built in memory, in the shape buildx writes.

    use std::collections::BTreeMap;
    use std::io::Write;

    use serde_json::json;

    use crate::docker::tar_stream::testing::{Entry, archive};

    /// A fake digest that names its content, unique per content.
    pub fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", sha1_smol::Sha1::from(bytes).digest())
    }

    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// The files of a one-platform layout: a config and gzip layers.
    pub fn layout(
        config: &serde_json::Value,
        layers: &[&[Entry<'_>]],
    ) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut put = |bytes: Vec<u8>| {
            let digest = digest(&bytes);
            let hex = digest.trim_start_matches("sha256:").to_owned();
            files.insert(format!("blobs/sha256/{hex}"), bytes);
            digest
        };
        let config_bytes = serde_json::to_vec(config).unwrap();
        let config_digest = put(config_bytes.clone());
        let layer_descriptors: Vec<serde_json::Value> = layers
            .iter()
            .map(|entries| {
                let blob = gzip(&archive(entries));
                let size = blob.len();
                json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(blob),
                    "size": size,
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": layer_descriptors,
        }))
        .unwrap();
        let manifest_size = manifest.len();
        let manifest_digest = put(manifest);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
            }],
        });
        files.insert("index.json".to_owned(), serde_json::to_vec(&index).unwrap());
        files.insert(
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        );
        files
    }

    /// The layout's files as the tar archive buildx writes.
    pub fn archive_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
        let entries: Vec<Entry<'_>> = files
            .iter()
            .map(|(path, bytes)| Entry::File(path, bytes))
            .collect();
        archive(&entries)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{archive_of, layout};
    use super::*;
    use crate::docker::tar_stream::testing::Entry;
    use serde_json::json;

    fn read(files: &BTreeMap<String, Vec<u8>>) -> OciLayout {
        let entries = read_entries(archive_of(files).as_slice()).unwrap();
        OciLayout::from_entries(entries).unwrap()
    }

    #[test]
    fn reads_the_image_its_config_and_its_layers() {
        let files = layout(
            &json!({"architecture": "amd64", "created": "2026-01-01T00:00:00Z"}),
            &[&[Entry::Dir("etc/"), Entry::File("etc/passwd", b"root")]],
        );
        let layout = read(&files);
        assert_eq!(layout.images.len(), 1);
        let image = &layout.images[0];
        assert!(layout.digest.starts_with("sha256:"));
        assert_eq!(image.config["architecture"], "amd64");
        assert_eq!(image.layers.len(), 1);
        let entries = layout.layer_entries(&image.layers[0]).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.header.path.as_str()).collect();
        assert_eq!(paths, ["etc/", "etc/passwd"]);
        assert_eq!(
            entries[1].content,
            sha1_smol::Sha1::from(b"root").digest().to_string()
        );
    }

    #[test]
    fn a_missing_blob_or_index_is_an_error_that_says_which() {
        let mut files = layout(&json!({}), &[]);
        files.remove("index.json");
        let error = OciLayout::from_entries(files).err().unwrap();
        assert!(error.to_string().contains("index.json"), "{error}");

        let files = layout(&json!({}), &[]);
        let config = files
            .keys()
            .find(|path| path.starts_with("blobs/"))
            .unwrap()
            .clone();
        let mut broken = files.clone();
        broken.remove(&config);
        assert!(OciLayout::from_entries(broken).is_err());
    }

    #[test]
    fn a_file_that_is_not_a_tar_is_refused() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not.tar");
        std::fs::write(&path, vec![b'x'; 1024]).unwrap();
        let error = OciLayout::read(&path).err().unwrap();
        assert!(
            format!("{error:#}").contains("not an OCI layout archive"),
            "{error:#}"
        );
    }
}

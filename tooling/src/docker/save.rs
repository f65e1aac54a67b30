//! Reads the archive `docker save` writes, in one pass: each layer's size as
//! stored (the tar) and as a registry would store it (gzip), the image's
//! build history, and where each file of the final filesystem came from.
//!
//! Both layouts are understood: the classic one of the 20.10 engine
//! (`<id>/layer.tar`, uncompressed) and the OCI one of newer engines
//! (`blobs/sha256/<digest>`, layers possibly already gzip-compressed).

use std::collections::HashMap;
use std::io::{self, BufReader, Cursor, Read, Write};

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Deserialize;

use super::Docker;
use super::tar_stream::{self, Header, Kind};

/// Archive entries that are not layers (manifests, configs) are kept in
/// memory up to this size.
const MAX_METADATA_BYTES: u64 = 16 << 20;

impl Docker {
    /// Streams `docker save` through the reader: the archive is never
    /// written out.
    pub fn save(&self, reference: &str) -> anyhow::Result<SavedImage> {
        let sh = xshell::Shell::new()?;
        let reader = crate::process::stream(
            &format!("save {reference}"),
            sh.cmd(self.program()).args(["save", reference]),
        )?;
        SavedImage::read(BufReader::with_capacity(1 << 20, reader))
            .with_context(|| format!("cannot read the layers of {reference}"))
    }
}

#[derive(Debug)]
pub struct SavedImage {
    /// Filesystem layers, base first.
    pub layers: Vec<SavedLayer>,
    /// The image config's history, oldest first; steps with
    /// `empty_layer` made no layer.
    pub history: Vec<BuildStep>,
    files: FileIndex,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedLayer {
    /// Bytes of the layer as an uncompressed tar.
    pub tar_bytes: u64,
    /// Bytes of the layer gzip-compressed, as a registry stores it.
    pub compressed_bytes: u64,
    /// The engine already stored it compressed, so `compressed_bytes` is
    /// what it holds rather than an estimate.
    pub stored_compressed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BuildStep {
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub empty_layer: bool,
}

/// A file of the image's final filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInImage {
    /// The path after following symbolic links.
    pub resolved_path: String,
    pub size: u64,
    /// Index into [`SavedImage::layers`] of the layer that wrote it last.
    pub layer: usize,
}

impl SavedImage {
    /// Reads a `docker save` archive from `reader`.
    pub fn read(reader: impl Read) -> anyhow::Result<SavedImage> {
        let mut blobs: HashMap<String, Blob> = HashMap::new();
        let mut aliases: HashMap<String, String> = HashMap::new();
        let unreadable = "cannot read the saved image";
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().context(unreadable)? {
            let mut entry = entry.context(unreadable)?;
            let header = Header::read(&mut entry).context(unreadable)?;
            let path = normalize(&header.path);
            match header.kind {
                Kind::File if header.size > 0 => {
                    let blob = read_blob(tar_stream::content(&mut entry), header.size)
                        .with_context(|| format!("cannot read {path} in the saved image"))?;
                    blobs.insert(path, blob);
                }
                // The classic layout saves a layer shared by two history
                // entries once and links the second name to it.
                Kind::Symlink(target) => {
                    aliases.insert(path.clone(), join(parent(&path), &target));
                }
                Kind::HardLink(target) => {
                    aliases.insert(path, normalize(&target));
                }
                _ => {}
            }
        }
        assemble(&blobs, &aliases)
    }

    /// The file at `path` in the final filesystem, following symbolic links.
    pub fn file(&self, path: &str) -> Option<FileInImage> {
        self.files.resolve(path)
    }
}

/// One entry of the outer archive, sniffed by its first bytes.
enum Blob {
    Layer {
        layer: SavedLayer,
        entries: Vec<(String, LayerEntry)>,
    },
    Metadata(Vec<u8>),
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LayerEntry {
    File(u64),
    HardLink(String),
    Symlink(String),
    Directory,
    Other,
}

fn read_blob(mut content: impl Read, size: u64) -> anyhow::Result<Blob> {
    let mut head = Vec::with_capacity(512);
    (&mut content).take(512).read_to_end(&mut head)?;
    let is_gzip = head.starts_with(&[0x1f, 0x8b]);
    let is_tar = head.len() == 512 && (&head[257..262] == b"ustar" || head.iter().all(|&b| b == 0));
    let mut whole = Cursor::new(head).chain(content);
    if is_tar {
        let mut gzip = GzEncoder::new(ByteCount::default(), Compression::default());
        let mut tee = Tee::new(&mut whole, &mut gzip);
        let entries = scan_layer(&mut tee)?;
        io::copy(&mut tee, &mut io::sink())?;
        let tar_bytes = tee.count;
        let compressed_bytes = gzip.finish()?.0;
        Ok(Blob::Layer {
            layer: SavedLayer {
                tar_bytes,
                compressed_bytes,
                stored_compressed: false,
            },
            entries,
        })
    } else if is_gzip {
        let mut raw = Tee::new(&mut whole, io::sink());
        let mut tar_bytes = Tee::new(GzDecoder::new(&mut raw), io::sink());
        let entries = scan_layer(&mut tar_bytes)?;
        io::copy(&mut tar_bytes, &mut io::sink())?;
        let tar_bytes = tar_bytes.count;
        io::copy(&mut raw, &mut io::sink())?;
        Ok(Blob::Layer {
            layer: SavedLayer {
                tar_bytes,
                compressed_bytes: raw.count,
                stored_compressed: true,
            },
            entries,
        })
    } else if size <= MAX_METADATA_BYTES {
        let mut bytes = Vec::new();
        whole.read_to_end(&mut bytes)?;
        Ok(Blob::Metadata(bytes))
    } else {
        Ok(Blob::Other)
    }
}

fn scan_layer(reader: impl Read) -> anyhow::Result<Vec<(String, LayerEntry)>> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = Vec::new();
    for entry in archive.entries().context("cannot read a layer")? {
        let header = entry
            .and_then(|mut entry| Header::read(&mut entry))
            .context("cannot read a layer")?;
        let entry = match header.kind {
            Kind::File => LayerEntry::File(header.size),
            Kind::Directory => LayerEntry::Directory,
            Kind::Symlink(target) => LayerEntry::Symlink(target),
            Kind::HardLink(target) => LayerEntry::HardLink(normalize(&target)),
            Kind::Other => LayerEntry::Other,
        };
        entries.push((normalize(&header.path), entry));
    }
    Ok(entries)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    history: Vec<BuildStep>,
}

fn assemble(
    blobs: &HashMap<String, Blob>,
    aliases: &HashMap<String, String>,
) -> anyhow::Result<SavedImage> {
    let lookup = |path: &str| {
        let path = normalize(path);
        let mut path = path.as_str();
        for _ in 0..8 {
            match aliases.get(path) {
                Some(target) => path = target,
                None => break,
            }
        }
        blobs.get(path)
    };
    let Some(Blob::Metadata(manifest)) = lookup("manifest.json") else {
        bail!("the saved image has no manifest.json");
    };
    let manifest: Vec<ManifestEntry> =
        serde_json::from_slice(manifest).context("bad manifest.json in the saved image")?;
    let Some(manifest) = manifest.into_iter().next() else {
        bail!("the saved image's manifest.json lists no image");
    };
    let history = match lookup(&manifest.config) {
        Some(Blob::Metadata(config)) => {
            serde_json::from_slice::<Config>(config)
                .with_context(|| format!("bad image config {}", manifest.config))?
                .history
        }
        _ => bail!("the saved image has no config {}", manifest.config),
    };
    let mut layers = Vec::new();
    let mut files = FileIndex::default();
    for (index, path) in manifest.layers.iter().enumerate() {
        let Some(Blob::Layer { layer, entries }) = lookup(path) else {
            bail!("the saved image lists layer {path} but does not hold it as a tar");
        };
        layers.push(layer.clone());
        files.apply(index, entries);
    }
    Ok(SavedImage {
        layers,
        history,
        files,
    })
}

/// The final filesystem: which layer wrote each path last.
#[derive(Debug, Default)]
struct FileIndex {
    entries: HashMap<String, (LayerEntry, usize)>,
}

impl FileIndex {
    /// Lays one layer over the ones below, honouring its whiteouts.
    fn apply(&mut self, layer: usize, entries: &[(String, LayerEntry)]) {
        for (path, _) in entries {
            let name = path.rsplit('/').next().unwrap_or(path);
            if name == ".wh..wh..opq" {
                let dir = format!("{}/", parent(path));
                self.entries.retain(|p, _| !p.starts_with(&dir));
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                let hidden = join(parent(path), hidden);
                let below = format!("{hidden}/");
                self.entries
                    .retain(|p, _| p != &hidden && !p.starts_with(&below));
            }
        }
        for (path, entry) in entries {
            let name = path.rsplit('/').next().unwrap_or(path);
            if !name.starts_with(".wh.") && !path.is_empty() {
                self.entries.insert(path.clone(), (entry.clone(), layer));
            }
        }
    }

    fn resolve(&self, path: &str) -> Option<FileInImage> {
        let mut path = normalize(path);
        // Follow symbolic links in any component, a bounded number of times.
        'hops: for _ in 0..32 {
            let components: Vec<&str> = path.split('/').collect();
            // Layers need not list the directories they write into, so a
            // component missing from the index is a plain directory.
            for end in 1..=components.len() {
                let prefix = components[..end].join("/");
                if let Some((LayerEntry::Symlink(target), _)) = self.entries.get(&prefix) {
                    let rest = components[end..].join("/");
                    let target = join(parent(&prefix), target);
                    path = if rest.is_empty() {
                        target
                    } else {
                        join(&target, &rest)
                    };
                    continue 'hops;
                }
            }
            return match self.entries.get(&path)? {
                (LayerEntry::File(size), layer) => Some(FileInImage {
                    resolved_path: format!("/{path}"),
                    size: *size,
                    layer: *layer,
                }),
                (LayerEntry::HardLink(target), layer) => match self.entries.get(target)? {
                    (LayerEntry::File(size), _) => Some(FileInImage {
                        resolved_path: format!("/{path}"),
                        size: *size,
                        layer: *layer,
                    }),
                    _ => None,
                },
                _ => None,
            };
        }
        None
    }
}

/// `./a/b/`, `/a/b` and `a/b` are the same path in a layer.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn join(dir: &str, relative: &str) -> String {
    if relative.starts_with('/') {
        normalize(relative)
    } else {
        normalize(&format!("{dir}/{relative}"))
    }
}

/// Passes reads through, copying every byte read to a writer and counting them.
struct Tee<R, W> {
    inner: R,
    copy: W,
    count: u64,
}

impl<R, W> Tee<R, W> {
    fn new(inner: R, copy: W) -> Self {
        Tee {
            inner,
            copy,
            count: 0,
        }
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.copy.write_all(&buf[..read])?;
        self.count += read as u64;
        Ok(read)
    }
}

#[derive(Default)]
struct ByteCount(u64);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::tar_stream::testing::{Entry, archive};

    /// `docker save xtask-prove/tiny:1` on the 20.10 engine: an imported
    /// base holding an old `/usr/local/bin/server`, then `COPY data/`,
    /// `COPY server /usr/local/bin/server` (64 bytes) and metadata steps.
    const TINY_SAVE: &[u8] = include_bytes!("../../fixtures/tiny-save.tar");

    #[test]
    fn the_classic_layout_lists_layers_base_first() {
        let image = SavedImage::read(TINY_SAVE).unwrap();
        assert_eq!(image.layers.len(), 3);
        assert!(image.layers.iter().all(|l| !l.stored_compressed));
        assert!(image.layers.iter().all(|l| l.tar_bytes % 512 == 0));
    }

    #[test]
    fn gzip_makes_a_layer_smaller_than_its_tar() {
        let image = SavedImage::read(TINY_SAVE).unwrap();
        for layer in &image.layers {
            assert!(layer.compressed_bytes > 0);
            assert!(layer.compressed_bytes < layer.tar_bytes, "{layer:?}");
        }
    }

    #[test]
    fn history_marks_the_steps_that_made_no_layer() {
        let image = SavedImage::read(TINY_SAVE).unwrap();
        let made_layers = image.history.iter().filter(|s| !s.empty_layer).count();
        assert_eq!(made_layers, image.layers.len());
        assert_eq!(image.history[0].comment, "Imported from -");
        assert!(image.history[2].created_by.starts_with("COPY server"));
    }

    #[test]
    fn the_binary_is_the_copy_in_the_last_layer_that_wrote_it() {
        let image = SavedImage::read(TINY_SAVE).unwrap();
        let binary = image.file("/usr/local/bin/server").unwrap();
        assert_eq!(binary.size, 64);
        assert_eq!(binary.layer, 2);
    }

    #[test]
    fn a_missing_file_is_none() {
        let image = SavedImage::read(TINY_SAVE).unwrap();
        assert_eq!(image.file("/usr/local/bin/absent"), None);
    }

    fn config_with_layers(count: usize) -> Vec<u8> {
        let steps: Vec<_> = (0..count)
            .map(|i| serde_json::json!({"created_by": format!("step {i}")}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"history": steps})).unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn the_oci_layout_with_compressed_layers_is_read_as_stored() {
        let layer = archive(&[Entry::File("usr/local/bin/server", &[0u8; 4096])]);
        let compressed = gzip(&layer);
        let manifest = br#"[{"Config":"blobs/sha256/c","Layers":["blobs/sha256/l"]}]"#;
        let config = config_with_layers(1);
        let saved = archive(&[
            Entry::Dir("blobs/"),
            Entry::File("blobs/sha256/c", &config),
            Entry::File("blobs/sha256/l", &compressed),
            Entry::File("manifest.json", manifest),
        ]);
        let image = SavedImage::read(saved.as_slice()).unwrap();
        assert_eq!(
            image.layers,
            vec![SavedLayer {
                tar_bytes: layer.len() as u64,
                compressed_bytes: compressed.len() as u64,
                stored_compressed: true,
            }]
        );
        assert_eq!(image.file("usr/local/bin/server").unwrap().size, 4096);
    }

    #[test]
    fn a_layer_saved_as_a_link_to_an_identical_one_is_counted_for_both() {
        let layer = archive(&[Entry::File("a", b"x")]);
        let manifest = br#"[{"Config":"c.json","Layers":["1/layer.tar","2/layer.tar"]}]"#;
        let saved = archive(&[
            Entry::File("1/layer.tar", &layer),
            Entry::Symlink("2/layer.tar", "../1/layer.tar"),
            Entry::File("c.json", &config_with_layers(2)),
            Entry::File("manifest.json", manifest),
        ]);
        let image = SavedImage::read(saved.as_slice()).unwrap();
        assert_eq!(image.layers.len(), 2);
        assert_eq!(image.layers[0], image.layers[1]);
    }

    fn image_of(layers: &[Vec<u8>]) -> SavedImage {
        let names: Vec<String> = (0..layers.len())
            .map(|i| format!("{i}/layer.tar"))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!([
            {"Config": "c.json", "Layers": names}
        ]))
        .unwrap();
        let config = config_with_layers(layers.len());
        let mut entries: Vec<Entry<'_>> = names
            .iter()
            .zip(layers)
            .map(|(name, layer)| Entry::File(name, layer))
            .collect();
        entries.push(Entry::File("c.json", &config));
        entries.push(Entry::File("manifest.json", &manifest));
        SavedImage::read(archive(&entries).as_slice()).unwrap()
    }

    #[test]
    fn a_whiteout_removes_the_file_below() {
        let image = image_of(&[
            archive(&[Entry::File("usr/local/bin/server", b"abc")]),
            archive(&[Entry::File("usr/local/bin/.wh.server", b"")]),
        ]);
        assert_eq!(image.file("/usr/local/bin/server"), None);
    }

    #[test]
    fn an_opaque_directory_hides_everything_below_it() {
        let image = image_of(&[
            archive(&[Entry::File("usr/local/bin/server", b"abc")]),
            archive(&[
                Entry::File("usr/local/bin/.wh..wh..opq", b""),
                Entry::File("usr/local/bin/other", b"1"),
            ]),
        ]);
        assert_eq!(image.file("/usr/local/bin/server"), None);
        assert_eq!(image.file("/usr/local/bin/other").unwrap().size, 1);
    }

    #[test]
    fn symbolic_links_are_followed_to_the_file() {
        let image = image_of(&[
            archive(&[Entry::File("opt/app/server-1.2", &[1u8; 700])]),
            archive(&[
                Entry::Symlink("usr/local/bin/server", "../../../opt/app/server-1.2"),
                Entry::Symlink("srv", "/opt/app"),
            ]),
        ]);
        let binary = image.file("/usr/local/bin/server").unwrap();
        assert_eq!(binary.size, 700);
        assert_eq!(binary.resolved_path, "/opt/app/server-1.2");
        assert_eq!(image.file("/srv/server-1.2").unwrap().size, 700);
    }

    #[test]
    fn a_symbolic_link_loop_is_not_followed_forever() {
        let image = image_of(&[archive(&[
            Entry::Symlink("a", "b"),
            Entry::Symlink("b", "a"),
        ])]);
        assert_eq!(image.file("a"), None);
    }

    #[test]
    fn an_archive_without_a_manifest_is_an_error() {
        let saved = archive(&[Entry::File("1/layer.tar", &archive(&[]))]);
        let error = SavedImage::read(saved.as_slice()).unwrap_err();
        assert!(format!("{error:#}").contains("manifest.json"), "{error:#}");
    }
}

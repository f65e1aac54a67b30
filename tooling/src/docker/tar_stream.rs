//! Tar entries as the image code sees them. The `tar` crate walks the
//! archive in one pass, GNU long names and PAX records folded in; this turns
//! an entry into our [`Header`], and makes an archive that ends mid-entry an
//! error where the crate's reader would stop short.

use std::io::{self, Read};

use tar::EntryType;

/// What an entry is, as far as sizing an image cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink(String),
    HardLink(String),
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub path: String,
    pub kind: Kind,
    /// Bytes of content that follow the header.
    pub size: u64,
    /// Permission bits, as stored.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time as stored: PAX's decimal seconds (which may carry
    /// a fraction) when present, else the header's whole seconds.
    pub mtime: String,
}

impl Header {
    /// The crate has applied GNU long names and PAX `path`, `linkpath`,
    /// `size`, `uid` and `gid` already; PAX `mtime` is ours to read.
    pub fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Header> {
        let pax_mtime = entry.pax_extensions()?.and_then(|mut records| {
            records
                .find_map(|record| record.ok().filter(|r| r.key_bytes() == b"mtime"))
                .map(|record| String::from_utf8_lossy(record.value_bytes()).into_owned())
        });
        let link = || -> io::Result<String> {
            Ok(entry
                .link_name()?
                .map(|link| link.to_string_lossy().into_owned())
                .unwrap_or_default())
        };
        let header = entry.header();
        let kind = match header.entry_type() {
            EntryType::Regular | EntryType::Continuous => Kind::File,
            EntryType::Directory => Kind::Directory,
            EntryType::Symlink => Kind::Symlink(link()?),
            EntryType::Link => Kind::HardLink(link()?),
            _ => Kind::Other,
        };
        Ok(Header {
            path: entry.path()?.to_string_lossy().into_owned(),
            kind,
            size: entry.size(),
            mode: header.mode()? & 0o7777,
            uid: header.uid()?,
            gid: header.gid()?,
            mtime: match pax_mtime {
                Some(mtime) => mtime,
                None => header.mtime()?.to_string(),
            },
        })
    }
}

/// The entry's content. Where the archive is cut mid-entry, the crate's
/// reader ends early and errs only at the next entry; this one errs there.
pub fn content<'e, 'a, R: Read>(
    entry: &'e mut tar::Entry<'a, R>,
) -> Content<&'e mut tar::Entry<'a, R>> {
    let remaining = entry.size();
    Content { entry, remaining }
}

/// See [`content`].
pub struct Content<E> {
    entry: E,
    remaining: u64,
}

impl<E: Read> Read for Content<E> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.entry.read(buf)?;
        if read == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar archive ends mid-entry",
            ));
        }
        self.remaining = self.remaining.saturating_sub(read as u64);
        Ok(read)
    }
}

/// Builds small archives for tests of this module and of its users.
#[cfg(test)]
pub mod testing {
    use tar::{Builder, EntryType, Header};

    /// One entry for [`archive`].
    pub enum Entry<'a> {
        File(&'a str, &'a [u8]),
        /// A file with this modification time (seconds); `File`'s is 0.
        FileAt(&'a str, &'a [u8], u64),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        /// An entry whose name only fits through a PAX `path` record.
        PaxFile(&'a str, &'a [u8]),
        /// An entry whose name only fits through a GNU `././@LongLink` entry.
        GnuLongFile(&'a str, &'a [u8]),
    }

    pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
        use EntryType::{Directory, Regular, Symlink};
        let mut tar = Builder::new(Vec::new());
        for entry in entries {
            match entry {
                Entry::File(path, content) => append(&mut tar, Regular, path, "", content, 0),
                Entry::FileAt(path, content, mtime) => {
                    append(&mut tar, Regular, path, "", content, *mtime);
                }
                Entry::Dir(path) => append(&mut tar, Directory, path, "", b"", 0),
                Entry::Symlink(path, target) => append(&mut tar, Symlink, path, target, b"", 0),
                Entry::PaxFile(path, content) => {
                    tar.append_pax_extensions([("path", path.as_bytes())])
                        .unwrap();
                    append(&mut tar, Regular, "short-name", "", content, 0);
                }
                Entry::GnuLongFile(path, content) => {
                    // Too long for a GNU header: the builder writes the
                    // `././@LongLink` entry, then a truncated name.
                    let mut header = Header::new_gnu();
                    fill(&mut header, Regular, content.len(), 0);
                    tar.append_data(&mut header, path, *content).unwrap();
                }
            }
        }
        tar.into_inner().unwrap()
    }

    /// Names as given, where `Header::set_path` would drop a leading `./`.
    fn append(
        tar: &mut Builder<Vec<u8>>,
        kind: EntryType,
        path: &str,
        link: &str,
        content: &[u8],
        mtime: u64,
    ) {
        let mut header = Header::new_ustar();
        fill(&mut header, kind, content.len(), mtime);
        let old = header.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        tar.append(&header, content).unwrap();
    }

    fn fill(header: &mut Header, kind: EntryType, size: usize, mtime: u64) {
        header.set_entry_type(kind);
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Entry, archive};
    use super::*;

    fn walk(bytes: &[u8]) -> io::Result<Vec<(Header, Vec<u8>)>> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let header = Header::read(&mut entry)?;
            let mut bytes = Vec::new();
            content(&mut entry).read_to_end(&mut bytes)?;
            out.push((header, bytes));
        }
        Ok(out)
    }

    #[test]
    fn reads_files_directories_and_links_in_order() {
        let bytes = archive(&[
            Entry::Dir("usr/"),
            Entry::File("usr/hello", b"hello world"),
            Entry::Symlink("usr/link", "hello"),
        ]);
        let entries = walk(&bytes).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0.kind, Kind::Directory);
        assert_eq!(entries[0].0.path, "usr/");
        assert_eq!(entries[1].0.path, "usr/hello");
        assert_eq!(entries[1].0.size, 11);
        assert_eq!(entries[1].1, b"hello world");
        assert_eq!(entries[2].0.kind, Kind::Symlink("hello".into()));
    }

    #[test]
    fn pax_paths_replace_the_short_name() {
        let long = format!("{}/binary", "d".repeat(120));
        let entries = walk(&archive(&[Entry::PaxFile(&long, b"abc")])).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0.path, long);
        assert_eq!(entries[0].1, b"abc");
    }

    #[test]
    fn gnu_long_names_replace_the_short_name() {
        let long = format!("{}/binary", "g".repeat(150));
        let bytes = archive(&[Entry::GnuLongFile(&long, b"abcd")]);
        assert_eq!(&bytes[..13], b"././@LongLink");
        let entries = walk(&bytes).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0.path, long);
        assert_eq!(entries[0].0.size, 4);
    }

    #[test]
    fn a_truncated_archive_is_an_error_not_a_short_read() {
        let bytes = archive(&[Entry::File("a", &[1u8; 2000])]);
        let mut archive = tar::Archive::new(&bytes[..1024]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        let error = content(&mut entry)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(walk(&bytes[..1024]).is_err());
    }

    #[test]
    fn headers_carry_mode_owner_and_time() {
        let entries = walk(&archive(&[Entry::FileAt("a", b"x", 1_700_000_000)])).unwrap();
        let header = &entries[0].0;
        assert_eq!(header.mode, 0o644);
        assert_eq!((header.uid, header.gid), (0, 0));
        assert_eq!(header.mtime, "1700000000");
    }

    #[test]
    fn a_pax_mtime_is_kept_as_written() {
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_pax_extensions([("mtime", &b"1700000000.25"[..])])
            .unwrap();
        tar.get_mut()
            .extend(archive(&[Entry::FileAt("a", b"x", 1_700_000_000)]));
        let entries = walk(&tar.into_inner().unwrap()).unwrap();
        assert_eq!(entries[0].0.mtime, "1700000000.25");
    }

    #[test]
    fn text_that_is_not_a_tar_is_rejected() {
        let mut garbage = b"{\"not\":\"a tar\"}".to_vec();
        assert!(walk(&garbage).is_err(), "shorter than a header");
        garbage.resize(512, b' ');
        let error = walk(&garbage).unwrap_err();
        assert!(error.to_string().contains("cksum"), "{error}");
        let mut corrupted = archive(&[Entry::File("a", b"x")]);
        corrupted[0] = b'b';
        let error = walk(&corrupted).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
    }
}

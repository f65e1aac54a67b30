//! A forward-only tar reader: enough of ustar, GNU and PAX to walk the
//! archives `docker save` writes and the layer tars inside them, one pass,
//! without holding an entry in memory.

use std::io::{self, Read};

const BLOCK: u64 = 512;

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

/// Reads headers in order; the content of the current entry is read through
/// [`TarStream::content`] or skipped by the next call to [`TarStream::next_header`].
pub struct TarStream<R> {
    inner: R,
    /// Content bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's content up to the next block.
    padding: u64,
    finished: bool,
}

impl<R: Read> TarStream<R> {
    pub fn new(inner: R) -> Self {
        TarStream {
            inner,
            remaining: 0,
            padding: 0,
            finished: false,
        }
    }

    /// The next entry's header, or `None` at the end of the archive.
    ///
    /// GNU long names and PAX extended headers are folded into the entry they
    /// describe, so callers only see real entries.
    pub fn next_header(&mut self) -> io::Result<Option<Header>> {
        let mut long_path: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        let mut pax_mtime: Option<String> = None;
        loop {
            self.skip_rest()?;
            if self.finished {
                return Ok(None);
            }
            let mut block = [0u8; 512];
            if !read_block_or_eof(&mut self.inner, &mut block)? || block.iter().all(|&b| b == 0) {
                // Two zero blocks end an archive; one is enough to know, and
                // some writers stop without them.
                self.finished = true;
                return Ok(None);
            }
            let mut raw = parse_raw_header(&block)?;
            self.remaining = raw.size;
            self.padding = padding_for(raw.size);
            match raw.typeflag {
                b'L' => long_path = Some(self.read_text_content()?),
                b'K' => long_link = Some(self.read_text_content()?),
                b'x' => {
                    let pax = parse_pax(&self.read_content_to_vec()?);
                    long_path = pax.path.or(long_path);
                    long_link = pax.linkpath.or(long_link);
                    pax_size = pax.size.or(pax_size);
                    pax_mtime = pax.mtime.or(pax_mtime);
                }
                b'g' => {
                    self.read_content_to_vec()?;
                }
                _ => {
                    if let Some(size) = pax_size {
                        raw.size = size;
                        self.remaining = size;
                        self.padding = padding_for(size);
                    }
                    if let Some(mtime) = pax_mtime {
                        raw.mtime = mtime;
                    }
                    return Ok(Some(raw.into_header(long_path, long_link)));
                }
            }
        }
    }

    /// The current entry's content.
    pub fn content(&mut self) -> Content<'_, R> {
        Content { stream: self }
    }

    fn read_content_to_vec(&mut self) -> io::Result<Vec<u8>> {
        let mut content = Vec::new();
        self.content().read_to_end(&mut content)?;
        Ok(content)
    }

    fn read_text_content(&mut self) -> io::Result<String> {
        let content = self.read_content_to_vec()?;
        let text = content.split(|&b| b == 0).next().unwrap_or_default();
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    fn skip_rest(&mut self) -> io::Result<()> {
        let skip = self.remaining + self.padding;
        if skip > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())?;
            if copied < skip {
                return Err(truncated());
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }
}

/// Reads the content of the entry whose header was returned last.
pub struct Content<'a, R> {
    stream: &'a mut TarStream<R>,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.stream.remaining;
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let read = self.stream.inner.read(&mut buf[..want])?;
        if read == 0 {
            return Err(truncated());
        }
        self.stream.remaining -= read as u64;
        Ok(read)
    }
}

struct RawHeader {
    name: String,
    link: String,
    size: u64,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: String,
}

impl RawHeader {
    fn into_header(self, long_path: Option<String>, long_link: Option<String>) -> Header {
        let link = long_link.unwrap_or(self.link);
        let kind = match self.typeflag {
            b'0' | 0 | b'7' => Kind::File,
            b'5' => Kind::Directory,
            b'2' => Kind::Symlink(link),
            b'1' => Kind::HardLink(link),
            _ => Kind::Other,
        };
        Header {
            path: long_path.unwrap_or(self.name),
            kind,
            size: self.size,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
        }
    }
}

fn parse_raw_header(block: &[u8; 512]) -> io::Result<RawHeader> {
    let stored: u64 = block[148..156]
        .iter()
        .filter(|&&b| b != 0 && b != b' ')
        .fold(0, |sum, &b| sum * 8 + u64::from(b.wrapping_sub(b'0')));
    let computed: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != computed {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a tar archive (header checksum mismatch)",
        ));
    }
    let mut name = c_string(&block[0..100]);
    let is_ustar = &block[257..262] == b"ustar";
    if is_ustar {
        let prefix = c_string(&block[345..500]);
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
    }
    Ok(RawHeader {
        name,
        link: c_string(&block[157..257]),
        size: parse_number(&block[124..136])?,
        typeflag: block[156],
        // Only the permission bits: 12 bits fit in any mode field.
        mode: u32::try_from(parse_number(&block[100..108])? & 0o7777).unwrap_or_default(),
        uid: parse_number(&block[108..116])?,
        gid: parse_number(&block[116..124])?,
        mtime: parse_number(&block[136..148])?.to_string(),
    })
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Octal, or GNU base-256 for sizes past 8 GiB.
fn parse_number(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        return Ok(field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x7f), |n, &b| (n << 8) | u64::from(b)));
    }
    let text = c_string(field);
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad number in tar header: {text:?}"),
        )
    })
}

#[derive(Default)]
struct Pax {
    path: Option<String>,
    linkpath: Option<String>,
    size: Option<u64>,
    mtime: Option<String>,
}

/// PAX records are `"<len> <key>=<value>\n"`, the length counting the whole record.
fn parse_pax(records: &[u8]) -> Pax {
    let mut pax = Pax::default();
    let mut rest = records;
    while let Some(space) = rest.iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            let value = String::from_utf8_lossy(&record[eq + 1..]).into_owned();
            match &record[..eq] {
                b"path" => pax.path = Some(value),
                b"linkpath" => pax.linkpath = Some(value),
                b"size" => pax.size = value.parse().ok(),
                b"mtime" => pax.mtime = Some(value),
                _ => {}
            }
        }
        rest = &rest[len..];
    }
    pax
}

fn padding_for(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Fills `block`; `false` on a clean end of input before the first byte.
fn read_block_or_eof(reader: &mut impl Read, block: &mut [u8; 512]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        match reader.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(truncated()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "tar archive ends mid-entry")
}

/// Builds small archives for tests of this module and of its users.
#[cfg(test)]
pub mod testing {
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
        let mut out = Vec::new();
        for entry in entries {
            match entry {
                Entry::File(path, content) => push(&mut out, path, b'0', "", content),
                Entry::FileAt(path, content, mtime) => {
                    push_at(&mut out, path, b'0', "", content, *mtime);
                }
                Entry::Dir(path) => push(&mut out, path, b'5', "", b""),
                Entry::Symlink(path, target) => push(&mut out, path, b'2', target, b""),
                Entry::PaxFile(path, content) => {
                    let record = pax_record("path", path);
                    push(&mut out, "PaxHeaders/x", b'x', "", record.as_bytes());
                    push(&mut out, "short-name", b'0', "", content);
                }
                Entry::GnuLongFile(path, content) => {
                    let mut name = path.as_bytes().to_vec();
                    name.push(0);
                    push(&mut out, "././@LongLink", b'L', "", &name);
                    push(&mut out, "truncated-name", b'0', "", content);
                }
            }
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}")
    }

    fn push(out: &mut Vec<u8>, path: &str, typeflag: u8, link: &str, content: &[u8]) {
        push_at(out, path, typeflag, link, content, 0);
    }

    fn push_at(
        out: &mut Vec<u8>,
        path: &str,
        typeflag: u8,
        link: &str,
        content: &[u8],
        mtime: u64,
    ) {
        let mut header = [0u8; 512];
        let name = path.as_bytes();
        header[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        header[100..107].copy_from_slice(b"0000644");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        header[124..135].copy_from_slice(format!("{:011o}", content.len()).as_bytes());
        header[136..147].copy_from_slice(format!("{mtime:011o}").as_bytes());
        header[156] = typeflag;
        header[157..157 + link.len()].copy_from_slice(link.as_bytes());
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Entry, archive};
    use super::*;

    fn walk(bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
        let mut tar = TarStream::new(bytes);
        let mut out = Vec::new();
        while let Some(header) = tar.next_header().unwrap() {
            let mut content = Vec::new();
            tar.content().read_to_end(&mut content).unwrap();
            out.push((header, content));
        }
        out
    }

    #[test]
    fn reads_files_directories_and_links_in_order() {
        let bytes = archive(&[
            Entry::Dir("usr/"),
            Entry::File("usr/hello", b"hello world"),
            Entry::Symlink("usr/link", "hello"),
        ]);
        let entries = walk(&bytes);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0.kind, Kind::Directory);
        assert_eq!(entries[1].0.path, "usr/hello");
        assert_eq!(entries[1].0.size, 11);
        assert_eq!(entries[1].1, b"hello world");
        assert_eq!(entries[2].0.kind, Kind::Symlink("hello".into()));
    }

    #[test]
    fn unread_content_is_skipped_by_the_next_header() {
        let big = vec![7u8; 1300];
        let bytes = archive(&[Entry::File("a", &big), Entry::File("b", b"x")]);
        let mut tar = TarStream::new(bytes.as_slice());
        tar.next_header().unwrap();
        let mut two = [0u8; 2];
        tar.content().read_exact(&mut two).unwrap();
        assert_eq!(tar.next_header().unwrap().unwrap().path, "b");
    }

    #[test]
    fn pax_paths_replace_the_short_name() {
        let long = format!("{}/binary", "d".repeat(120));
        let entries = walk(&archive(&[Entry::PaxFile(&long, b"abc")]));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0.path, long);
        assert_eq!(entries[0].1, b"abc");
    }

    #[test]
    fn gnu_long_names_replace_the_short_name() {
        let long = format!("{}/binary", "g".repeat(150));
        let entries = walk(&archive(&[Entry::GnuLongFile(&long, b"abcd")]));
        assert_eq!(entries[0].0.path, long);
        assert_eq!(entries[0].0.size, 4);
    }

    #[test]
    fn a_truncated_archive_is_an_error_not_a_short_read() {
        let bytes = archive(&[Entry::File("a", &[1u8; 2000])]);
        let mut tar = TarStream::new(&bytes[..1024]);
        tar.next_header().unwrap();
        let error = tar.content().read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn headers_carry_mode_owner_and_time() {
        let entries = walk(&archive(&[Entry::FileAt("a", b"x", 1_700_000_000)]));
        let header = &entries[0].0;
        assert_eq!(header.mode, 0o644);
        assert_eq!((header.uid, header.gid), (0, 0));
        assert_eq!(header.mtime, "1700000000");
    }

    #[test]
    fn text_that_is_not_a_tar_is_rejected() {
        let mut garbage = b"{\"not\":\"a tar\"}".to_vec();
        garbage.resize(512, b' ');
        let error = TarStream::new(garbage.as_slice())
            .next_header()
            .unwrap_err();
        assert!(error.to_string().contains("not a tar"), "{error}");
    }

    #[test]
    fn base_256_sizes_are_read() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[11] = 0x01;
        field[10] = 0x02;
        assert_eq!(parse_number(&field).unwrap(), 0x0201);
    }
}

//! `rootfs OUT BINARY...`: lays out, under OUT, the runtime the binaries
//! need and nothing else, from the build stage's own files:
//!
//! 1. the ELF closure: every library `ldd` resolves (it follows each
//!    library's own NEEDED entries), and the dynamic loader, each at the
//!    path the loader asks for, with the directory and file links that lead
//!    there (`/lib64 -> usr/lib64`, SONAME links);
//! 2. `/etc/os-release` and `/etc/debian_version`, which name the
//!    distribution to scanners; `/etc/passwd` and `/etc/group` with
//!    `nonroot` (65532),
//!    `/etc/nsswitch.conf` (glibc resolves files and DNS without plugins),
//!    `/home/nonroot`, `/tmp` (mode 1777);
//! 3. for each Debian package that contributed a file, its dpkg record in
//!    `/var/lib/dpkg/status.d/<package>` and its `.md5sums` trimmed to the
//!    files included, as distroless lays them out, so scanners see libc6
//!    and libgcc-s1 at their real versions.
//!
//! The binaries themselves are not copied: the Dockerfile installs them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode};

const DPKG: &str = "/var/lib/dpkg";
/// Debian's release files (base-files), which name the distribution.
const OS_FILES: [&str; 2] = ["/etc/os-release", "/etc/debian_version"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, binaries @ ..] = args.as_slice() else {
        eprintln!("usage: rootfs OUT BINARY...");
        return ExitCode::from(2);
    };
    if binaries.is_empty() {
        eprintln!("usage: rootfs OUT BINARY...");
        return ExitCode::from(2);
    }
    match run(Path::new(out), binaries) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("rootfs: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &Path, binaries: &[String]) -> Result<String, String> {
    let mut libraries = BTreeSet::new();
    for binary in binaries {
        let output = Command::new("ldd")
            .arg(binary)
            .output()
            .map_err(|e| format!("cannot run ldd: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "ldd {binary} failed: {}{}",
                text.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        libraries.extend(parse_ldd(&text).map_err(|e| format!("{binary}: {e}"))?);
    }
    // Which distribution and release the files are from: scanners read
    // these before they read any package record.
    libraries.extend(OS_FILES.iter().map(PathBuf::from));
    let mut files = BTreeSet::new();
    for library in &libraries {
        files.insert(replicate(library, out).map_err(|e| format!("{}: {e}", library.display()))?);
    }
    system_files(out).map_err(|e| format!("cannot write the system files: {e}"))?;
    let packages = dpkg_records(Path::new(DPKG), &files, out)?;
    Ok(format!(
        "rootfs: {} files ({}) from {}",
        files.len(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        packages.join(", ")
    ))
}

/// The libraries and loader in `ldd`'s output; the vDSO is the kernel's.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            return Err(format!("a library is missing: {line}"));
        }
        if line.starts_with("statically linked") || line.contains("not a dynamic executable") {
            continue;
        }
        let path = match line.split_once(" => ") {
            Some((_, rest)) => rest.split(" (").next().unwrap_or_default(),
            None => line.split(" (").next().unwrap_or_default(),
        };
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// Copies `path` under `out` as the loader will look it up: directory
/// links and file links recreated, the file itself copied. Returns the
/// real file's path.
fn replicate(path: &Path, out: &Path) -> io::Result<PathBuf> {
    let mut current = PathBuf::from("/");
    let mut components = path.components().skip(1).peekable();
    while let Some(component) = components.next() {
        let Component::Normal(name) = component else {
            return Err(io::Error::other("not a plain absolute path"));
        };
        let next = current.join(name);
        let meta = fs::symlink_metadata(&next)?;
        let target = out.join(next.strip_prefix("/").unwrap_or(&next));
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&next)?;
            if fs::symlink_metadata(&target).is_err() {
                fs::create_dir_all(target.parent().unwrap_or(out))?;
                symlink(&link, &target)?;
            }
            let resolved = if link.is_absolute() {
                link
            } else {
                current.join(link)
            };
            let rest: PathBuf = components.collect();
            return replicate(&normalize(&resolved.join(rest)), out);
        }
        if meta.is_dir() {
            fs::create_dir_all(&target)?;
            current = next;
        } else {
            fs::create_dir_all(target.parent().unwrap_or(out))?;
            fs::copy(&next, &target)?;
            return Ok(next);
        }
    }
    Err(io::Error::other("a directory, not a file"))
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            _ => {}
        }
    }
    out
}

fn system_files(out: &Path) -> io::Result<()> {
    let etc = out.join("etc");
    fs::create_dir_all(&etc)?;
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )?;
    fs::write(etc.join("group"), "root:x:0:\nnonroot:x:65532:\n")?;
    fs::write(
        etc.join("nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files dns\n",
    )?;
    fs::create_dir_all(out.join("home/nonroot"))?;
    let tmp = out.join("tmp");
    fs::create_dir_all(&tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
}

/// Writes `status.d/<package>` and its trimmed `.md5sums` for each package
/// that owns one of `files`; returns `package version` for each.
fn dpkg_records(dpkg: &Path, files: &BTreeSet<PathBuf>, out: &Path) -> Result<Vec<String>, String> {
    let owners = owners(dpkg, files)?;
    let status = fs::read_to_string(dpkg.join("status"))
        .map_err(|e| format!("cannot read {}/status: {e}", dpkg.display()))?;
    let records = paragraphs(&status);
    let dir = out.join("var/lib/dpkg/status.d");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut named = Vec::new();
    for (list, owned) in &owners {
        let package = list.split(':').next().unwrap_or(list);
        let record = records
            .iter()
            .find(|r| field(r, "Package") == Some(package))
            .ok_or_else(|| format!("{package} owns files but has no dpkg record"))?;
        fs::write(dir.join(package), format!("{record}\n")).map_err(|e| e.to_string())?;
        let md5sums = fs::read_to_string(dpkg.join("info").join(format!("{list}.md5sums")))
            .unwrap_or_default();
        let kept: String = md5sums
            .lines()
            .filter(|line| {
                line.split_once("  ")
                    .is_some_and(|(_, path)| owned.contains(&PathBuf::from("/").join(path)))
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        fs::write(dir.join(format!("{package}.md5sums")), kept).map_err(|e| e.to_string())?;
        named.push(format!(
            "{package} {}",
            field(record, "Version").unwrap_or("?")
        ));
    }
    Ok(named)
}

/// For each dpkg file list (`libc6:amd64`), the included files it names.
fn owners(
    dpkg: &Path,
    files: &BTreeSet<PathBuf>,
) -> Result<BTreeMap<String, BTreeSet<PathBuf>>, String> {
    let info = dpkg.join("info");
    let entries =
        fs::read_dir(&info).map_err(|e| format!("cannot read {}: {e}", info.display()))?;
    let mut owners: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(list) = name.strip_suffix(".list") else {
            continue;
        };
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let listed = Path::new(line);
            // Lists name paths as shipped; a file may be reached through a
            // directory link (`/lib` -> `usr/lib`). A listed link to a kept
            // file (libc-bin's `/usr/bin/ld.so`) is not itself kept.
            let is_link = fs::symlink_metadata(listed).is_ok_and(|m| m.file_type().is_symlink());
            let real = fs::canonicalize(listed).unwrap_or_else(|_| listed.to_path_buf());
            if !is_link && files.contains(&real) {
                owners
                    .entry(list.to_owned())
                    .or_default()
                    .insert(listed.to_path_buf());
            }
        }
    }
    Ok(owners)
}

/// The paragraphs of a dpkg status file.
fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn field<'a>(paragraph: &'a str, name: &str) -> Option<&'a str> {
    paragraph
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_the_loader_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn status_paragraphs_are_found_by_package() {
        let status = "Package: libc6\nStatus: install ok installed\nVersion: 2.41-12\n\nPackage: libgcc-s1\nVersion: 14.2.0-19\n";
        let records = paragraphs(status);
        assert_eq!(records.len(), 2);
        assert_eq!(field(&records[1], "Version"), Some("14.2.0-19"));
        assert_eq!(field(&records[0], "Package"), Some("libc6"));
    }

    #[test]
    fn paths_through_parent_links_are_normalized() {
        assert_eq!(
            normalize(Path::new("/usr/lib64/../lib/x86_64-linux-gnu/ld.so")),
            PathBuf::from("/usr/lib/x86_64-linux-gnu/ld.so")
        );
    }

    /// The real thing on this machine: the closure of `/bin/true`.
    #[test]
    fn the_closure_of_a_real_binary_is_laid_out_with_its_links() {
        let out = std::env::temp_dir().join(format!("rootfs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&out);
        let summary = run(&out, &["/bin/true".to_owned()]).unwrap();
        assert!(summary.contains("libc6"), "{summary}");
        assert!(summary.contains("base-files"), "{summary}");
        assert!(out.join("etc/os-release").exists());
        let libc = out.join("lib/x86_64-linux-gnu/libc.so.6");
        assert!(
            fs::metadata(&libc).unwrap().len() > 1_000_000,
            "libc reachable through /lib"
        );
        assert!(out.join("var/lib/dpkg/status.d/libc6").is_file());
        let md5sums = fs::read_to_string(out.join("var/lib/dpkg/status.d/libc6.md5sums")).unwrap();
        assert!(md5sums.contains("libc.so.6"), "{md5sums}");
        assert!(md5sums.lines().count() < 10, "trimmed: {md5sums}");
        let tmp = fs::metadata(out.join("tmp")).unwrap().permissions().mode();
        assert_eq!(tmp & 0o7777, 0o1777);
        fs::remove_dir_all(&out).unwrap();
    }
}

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
//! 4. with `--with PACKAGE` (the manifest's `runtime-extras`), that
//!    installed package's files too, and its record: its data and
//!    libraries, without docs, manual pages or scripts (there is no shell to
//!    run them), and the ELF closure of any binary among them. For
//!    `ca-certificates` only the bundle its script generates,
//!    `/etc/ssl/certs/ca-certificates.crt`, which is what TLS clients read.
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

/// Paths of a package's list that a runtime never needs.
const UNNEEDED: [&str; 5] = [
    "/usr/share/doc/",
    "/usr/share/man/",
    "/usr/share/info/",
    "/usr/share/lintian/",
    "/usr/share/bug/",
];
/// What `update-ca-certificates` makes from the `ca-certificates` package.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const USAGE: &str = "usage: rootfs OUT BINARY... [--with PACKAGE]...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, binaries, extras)) = parse_args(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(Path::new(out), &binaries, &extras) {
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

/// OUT, the binaries, and the packages given with `--with`.
fn parse_args(args: &[String]) -> Option<(&String, Vec<String>, Vec<String>)> {
    let (out, rest) = args.split_first()?;
    let (mut binaries, mut extras) = (Vec::new(), Vec::new());
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        if arg == "--with" {
            extras.push(rest.next()?.clone());
        } else {
            binaries.push(arg.clone());
        }
    }
    (!binaries.is_empty()).then_some((out, binaries, extras))
}

fn run(out: &Path, binaries: &[String], extras: &[String]) -> Result<String, String> {
    let mut binaries = binaries.to_vec();
    let mut extra_files = BTreeSet::new();
    for package in extras {
        for path in package_files(Path::new(DPKG), package)? {
            if is_elf(&path) {
                binaries.push(path.display().to_string());
            }
            extra_files.insert(path);
        }
    }
    let mut libraries = BTreeSet::new();
    for binary in &binaries {
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
    libraries.extend(extra_files);
    let mut files = BTreeSet::new();
    for library in &libraries {
        files.insert(replicate(library, out).map_err(|e| format!("{}: {e}", library.display()))?);
    }
    system_files(out).map_err(|e| format!("cannot write the system files: {e}"))?;
    let packages = dpkg_records(Path::new(DPKG), &files, extras, out)?;
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

/// The files of an installed package a runtime needs: what its dpkg list
/// names, less docs and scripts; for `ca-certificates`, the bundle.
fn package_files(dpkg: &Path, package: &str) -> Result<Vec<PathBuf>, String> {
    if package == "ca-certificates" {
        if !Path::new(CA_BUNDLE).is_file() {
            return Err(format!(
                "ca-certificates: no {CA_BUNDLE} in the build stage; install ca-certificates there"
            ));
        }
        return Ok(vec![PathBuf::from(CA_BUNDLE)]);
    }
    let info = dpkg.join("info");
    let list = [
        format!("{package}.list"),
        format!("{package}:amd64.list"),
        format!("{package}:arm64.list"),
    ]
    .into_iter()
    .map(|name| info.join(name))
    .find(|path| path.is_file())
    .ok_or_else(|| {
        format!(
            "{package} is not installed in the build stage (no dpkg file list); install it there"
        )
    })?;
    let text =
        fs::read_to_string(&list).map_err(|e| format!("cannot read {}: {e}", list.display()))?;
    Ok(text
        .lines()
        .map(PathBuf::from)
        .filter(|path| !UNNEEDED.iter().any(|dir| path.starts_with(dir)))
        .filter(|path| {
            fs::symlink_metadata(path).is_ok_and(|meta| !meta.is_dir())
                // A link whose target is gone (a diverted file) has nothing to copy.
                && fs::metadata(path).is_ok()
                && !is_script(path)
        })
        .collect())
}

/// `#!` files need an interpreter the runtime does not have.
fn is_script(path: &Path) -> bool {
    starts_with(path, b"#!")
}

fn is_elf(path: &Path) -> bool {
    starts_with(path, b"\x7fELF")
}

fn starts_with(path: &Path, magic: &[u8]) -> bool {
    use std::io::Read;
    let mut head = vec![0; magic.len()];
    fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut head))
        .is_ok()
        && head == magic
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
            let resolved = normalize(&resolved);
            // A link to a directory (tzdata's `posix/Africa -> ../Africa`)
            // is kept as a link; the directory's files come on their own.
            if components.peek().is_none() && fs::metadata(&resolved).is_ok_and(|m| m.is_dir()) {
                fs::create_dir_all(out.join(resolved.strip_prefix("/").unwrap_or(&resolved)))?;
                return Ok(resolved);
            }
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
/// that owns one of `files`, and for each asked for by name (whose kept
/// files may be generated ones no list names); returns `package version`
/// for each.
fn dpkg_records(
    dpkg: &Path,
    files: &BTreeSet<PathBuf>,
    named_packages: &[String],
    out: &Path,
) -> Result<Vec<String>, String> {
    let mut owners = owners(dpkg, files)?;
    for package in named_packages {
        let listed = owners
            .keys()
            .any(|list| list.split(':').next() == Some(package.as_str()));
        if !listed {
            owners.insert(package.clone(), BTreeSet::new());
        }
    }
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

    #[test]
    fn extras_are_named_with_with() {
        let args: Vec<String> = ["out", "bin/a", "--with", "tzdata", "bin/b"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let (out, binaries, extras) = parse_args(&args).unwrap();
        assert_eq!(out, "out");
        assert_eq!(binaries, ["bin/a", "bin/b"]);
        assert_eq!(extras, ["tzdata"]);
        assert!(parse_args(&args[..1]).is_none(), "no binary");
        assert!(parse_args(&["out".into(), "a".into(), "--with".into()]).is_none());
    }

    /// The real thing on this machine: the CA bundle and the time zones,
    /// with their records, and a package that is not installed refused.
    #[test]
    fn extras_bring_their_files_and_records() {
        if !Path::new("/var/lib/dpkg/info/tzdata.list").is_file() || !Path::new(CA_BUNDLE).is_file()
        {
            eprintln!(
                "SKIPPED extras_bring_their_files_and_records: this host has no tzdata or CA bundle"
            );
            return;
        }
        let out = std::env::temp_dir().join(format!("rootfs-extras-{}", std::process::id()));
        let _ = fs::remove_dir_all(&out);
        let extras = ["ca-certificates".to_owned(), "tzdata".to_owned()];
        let summary = run(&out, &["/bin/true".to_owned()], &extras).unwrap();
        assert!(summary.contains("ca-certificates "), "{summary}");
        assert!(summary.contains("tzdata "), "{summary}");
        assert!(
            fs::metadata(out.join("etc/ssl/certs/ca-certificates.crt"))
                .unwrap()
                .len()
                > 100_000
        );
        assert!(out.join("usr/share/zoneinfo/Europe/Paris").exists());
        assert!(!out.join("usr/share/doc/tzdata").exists(), "no docs");
        assert!(out.join("var/lib/dpkg/status.d/ca-certificates").is_file());
        let md5sums = fs::read_to_string(out.join("var/lib/dpkg/status.d/tzdata.md5sums")).unwrap();
        assert!(md5sums.contains("usr/share/zoneinfo/"), "{md5sums:.200}");
        fs::remove_dir_all(&out).unwrap();

        let error = run(
            &out,
            &["/bin/true".to_owned()],
            &["no-such-package".to_owned()],
        )
        .unwrap_err();
        assert!(error.contains("not installed"), "{error}");
        let _ = fs::remove_dir_all(&out);
    }

    /// The real thing on this machine: the closure of `/bin/true`.
    #[test]
    fn the_closure_of_a_real_binary_is_laid_out_with_its_links() {
        let out = std::env::temp_dir().join(format!("rootfs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&out);
        let summary = run(&out, &["/bin/true".to_owned()], &[]).unwrap();
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

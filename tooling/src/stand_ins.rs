//! `cargo xtask image --offline`: local stand-ins for everything the image
//! build would otherwise download.
//!
//! - the runtime base: distroless cc-debian13's package set, unpacked with
//!   `mmdebstrap --variant=extract` and laid out as distroless lays it out;
//! - the builder base: Debian 13 with a C toolchain and UPX, plus the host's
//!   pinned Rust toolchain, cargo-chef and cargo-auditable;
//! - the vendor image: `cargo vendor` of Cargo.lock and the cargo
//!   configuration that uses it.
//!
//! Each is tagged with a key computed from its inputs and made again only
//! when they change. The Dockerfile takes them as build arguments, so online
//! builds use the same Dockerfile unchanged. A stand-in that is no longer
//! current is kept, not untagged: another service, or another lock file,
//! may build on it again. `cargo xtask prune` removes the least recently
//! used ones to a size budget (`usage.rs` keeps when each was last used).

pub mod usage;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::checks::{Check, Verdict};
use crate::docker::Docker;
use crate::flags::{self, StandIn};
use crate::metadata::Metadata;
use crate::process;
use crate::tools::{self, Tool};

/// The Debian release of both bases; the binary must run where it was built.
const SUITE: &str = "trixie";

/// distroless cc-debian13's packages. apt adds the libraries they need
/// (gcc-14-base, zlib1g, libzstd1, openssl-provider-legacy); the hook keeps
/// out the tools their maintainer scripts would need.
const RUNTIME_PACKAGES: &[&str] = &[
    "base-files",
    "netbase",
    "tzdata",
    "libc6",
    "libssl3t64",
    "libgcc-s1",
    "libstdc++6",
    "libgomp1",
];

/// What distroless's `nonroot` images set.
const RUNTIME_CHANGES: &[&str] = &[
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    "USER 65532",
    "WORKDIR /home/nonroot",
];

const RUNTIME_HOOK: &str = include_str!("stand_ins/runtime-hook.sh");

/// What the Dockerfile's build stage runs besides cargo: a linker, `strip`
/// (binutils, with gcc) and UPX.
const BUILDER_PACKAGES: &[&str] = &["gcc", "libc6-dev", "pkg-config", "upx-ucl"];

/// The layout of the official Rust images, which the Dockerfile's cache
/// mounts rely on.
const BUILDER_CHANGES: &[&str] = &[
    "ENV CARGO_HOME=/usr/local/cargo",
    "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
];

const BUILDER_HOOK: &str = include_str!("stand_ins/builder-hook.sh");

/// Where the Dockerfile mounts the vendor image; cargo reads
/// `/.cargo/config.toml` in every directory below `/`.
const VENDOR_MOUNT: &str = "/.cargo";

/// The images an offline build uses in place of downloads.
#[derive(Debug, Clone)]
pub struct StandIns {
    pub builder: String,
    pub runtime: String,
    pub vendor: String,
    /// Time spent making the ones that were out of date.
    pub prepare_secs: f64,
}

/// Where the stand-ins are named. They are keyed by content, not by the
/// service, so every service built here shares them.
pub const REPOSITORY: &str = "xtask-offline";

/// A Debian 13 slim runtime (`mmdebstrap --variant=minbase`), the base the
/// benchmark's alternatives run on, as `debian:trixie-slim` would be.
pub fn slim_base(sh: &Shell, docker: &Docker, root: &Path) -> anyhow::Result<String> {
    const CHANGES: &[&str] =
        &["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    let work = root.join("target/xtask/offline");
    sh.create_dir(&work)
        .with_context(|| format!("cannot create {}", work.display()))?;
    let reference = format!(
        "{REPOSITORY}/slim:{}",
        content_key(&[SUITE, "minbase", &CHANGES.join("\n")])
    );
    ensure(sh, docker, &work, &reference, CHANGES, |tarball| {
        eprintln!("making the slim base {reference}: Debian {SUITE} minbase");
        let mmdebstrap = tools::require(sh, Tool::Mmdebstrap)?.path;
        process::run(cmd!(
            sh,
            "{mmdebstrap} --variant=minbase --skip=output/dev {SUITE} {tarball}"
        ))
        .context("cannot make the slim base's root filesystem with mmdebstrap")
    })
}

impl flags::StandIns {
    pub(crate) fn run(self, sh: &Shell, metadata: &Metadata) -> anyhow::Result<Verdict> {
        let root = sh.current_dir();
        let docker = Docker::connect(sh)?;
        let work = root.join("target/xtask/offline");
        sh.create_dir(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        let chosen = if self.only.is_empty() {
            vec![StandIn::Runtime, StandIn::Builder, StandIn::Vendor]
        } else {
            self.only
        };
        let mut checks = Vec::new();
        let mut made = serde_json::Map::new();
        for stand_in in chosen {
            let (name, proves) = match stand_in {
                StandIn::Runtime => ("runtime", "the runtime base is in the engine"),
                StandIn::Builder => ("builder", "the builder base is in the engine"),
                StandIn::Vendor => ("vendor", "Cargo.lock's crates are in the engine"),
                StandIn::Slim => ("slim", "the slim base is in the engine"),
            };
            let started = Instant::now();
            let reference = match stand_in {
                StandIn::Runtime => runtime(sh, &docker, &root),
                StandIn::Builder => {
                    builder_base(sh, &docker, &work, REPOSITORY, &metadata.builder_packages)
                }
                StandIn::Vendor => vendor_image(sh, &docker, &root, &work, REPOSITORY),
                StandIn::Slim => slim_base(sh, &docker, &root),
            };
            checks.push(match reference {
                Ok(reference) => {
                    made.insert(name.to_owned(), reference.clone().into());
                    Check::judge(name, true, reference, proves).timed(started.elapsed())
                }
                Err(error) => Check::broken(name, proves, &error),
            });
        }
        Ok(Verdict {
            checks,
            ..Verdict::new("stand-ins", REPOSITORY).with_details(made)
        })
    }
}

/// The distroless-style runtime base alone: a real Debian 13 image with no
/// service in it, which scanners' tests can read without building one.
pub fn runtime(sh: &Shell, docker: &Docker, root: &Path) -> anyhow::Result<String> {
    let work = root.join("target/xtask/offline");
    sh.create_dir(&work)
        .with_context(|| format!("cannot create {}", work.display()))?;
    runtime_base(sh, docker, &work, REPOSITORY)
}

/// A local image of Debian 13 packages, for a program the tests run beside
/// the server (a load balancer, a database).
#[derive(Debug, Clone, Copy)]
pub struct PackageImage<'a> {
    /// The image's name under `xtask-offline/`.
    pub name: &'a str,
    pub packages: &'a [&'a str],
    /// Files laid into the root filesystem: path and content.
    pub files: &'a [(&'a str, &'a str)],
    /// Shell commands run on the host after the files are laid, with the
    /// root filesystem in `$1`: users, ownership, what to leave out.
    pub setup: &'a str,
    /// `docker import --change` instructions, e.g. `ENTRYPOINT [...]`.
    pub changes: &'a [&'a str],
}

/// Makes `xtask-offline/<name>:<key>` from Debian 13 packages unpacked
/// without maintainer scripts (`mmdebstrap --variant=extract`), unless the
/// engine has it, and names it. base-files brings the merged-/usr links
/// that the dynamic loader's path needs.
pub fn package_image(
    sh: &Shell,
    docker: &Docker,
    root: &Path,
    spec: &PackageImage<'_>,
) -> anyhow::Result<String> {
    let work = root.join("target/xtask/offline");
    sh.create_dir(&work)
        .with_context(|| format!("cannot create {}", work.display()))?;
    let packages = format!("base-files,{}", spec.packages.join(","));
    let mut parts = vec![SUITE, "extract", &packages];
    for (path, content) in spec.files {
        parts.extend([*path, *content]);
    }
    let changes = spec.changes.join("\n");
    parts.extend([changes.as_str(), spec.setup]);
    let reference = format!("{REPOSITORY}/{}:{}", spec.name, content_key(&parts));
    ensure(sh, docker, &work, &reference, spec.changes, |tarball| {
        eprintln!("making {reference} from Debian {SUITE}'s {packages}");
        let mmdebstrap = tools::require(sh, Tool::Mmdebstrap)?.path;
        let files = work.join(format!("{}-files", spec.name));
        sh.remove_path(&files)?;
        sh.create_dir(&files)?;
        for (path, content) in spec.files {
            let target = files.join(path.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                sh.create_dir(parent)?;
            }
            sh.write_file(&target, content)?;
        }
        let script = format!(
            "#!/bin/sh\nset -eu\ncp -R '{}/.' \"$1/\"\n{}\n",
            files.display(),
            spec.setup
        );
        let mut hook = OsString::from("--extract-hook=");
        hook.push(write_hook(
            &work,
            &format!("{}-hook.sh", spec.name),
            &script,
        )?);
        let include = format!("--include={packages}");
        let made = process::run(cmd!(
            sh,
            "{mmdebstrap} --variant=extract {include} --skip=output/dev {hook} {SUITE} {tarball}"
        ))
        .with_context(|| format!("cannot make {reference}'s root filesystem with mmdebstrap"));
        sh.remove_path(&files)?;
        made
    })
}

/// Makes whichever stand-ins are missing or out of date, and names all three.
/// `builder_extras`: packages the builder must also hold (the minimal
/// runtime's extras).
pub fn prepare(
    sh: &Shell,
    docker: &Docker,
    root: &Path,
    builder_extras: &[String],
) -> anyhow::Result<StandIns> {
    let start = Instant::now();
    let work = root.join("target/xtask/offline");
    sh.create_dir(&work)
        .with_context(|| format!("cannot create {}", work.display()))?;
    let runtime = runtime_base(sh, docker, &work, REPOSITORY)?;
    let builder = builder_base(sh, docker, &work, REPOSITORY, builder_extras)?;
    let vendor = vendor_image(sh, docker, root, &work, REPOSITORY)?;
    Ok(StandIns {
        builder,
        runtime,
        vendor,
        prepare_secs: start.elapsed().as_secs_f64(),
    })
}

fn runtime_base(
    sh: &Shell,
    docker: &Docker,
    work: &Path,
    repository: &str,
) -> anyhow::Result<String> {
    let packages = RUNTIME_PACKAGES.join(",");
    let changes = RUNTIME_CHANGES.join("\n");
    let reference = format!(
        "{repository}/runtime:{}",
        content_key(&[SUITE, &packages, &changes, RUNTIME_HOOK])
    );
    ensure(sh, docker, work, &reference, RUNTIME_CHANGES, |tarball| {
        eprintln!("making the runtime base {reference} from Debian {SUITE} packages");
        let mmdebstrap = tools::require(sh, Tool::Mmdebstrap)?.path;
        let hook = write_hook(work, "runtime-hook.sh", RUNTIME_HOOK)?;
        let args = runtime_mmdebstrap_args(&hook, tarball);
        process::run(cmd!(sh, "{mmdebstrap} {args...}"))
            .context("cannot make the runtime base's root filesystem with mmdebstrap")
    })
}

/// Unpacks the packages without running their maintainer scripts, as
/// distroless does; the hook lays out users, certificates and dpkg metadata.
fn runtime_mmdebstrap_args(hook: &Path, tarball: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--variant=extract".into(),
        format!("--include={}", RUNTIME_PACKAGES.join(",")).into(),
        // The engine provides /dev; apt's and mmdebstrap's own files are
        // removed by the hook, which needs them until it ends.
        "--skip=output/dev".into(),
        "--skip=cleanup/apt".into(),
        "--skip=cleanup/mmdebstrap".into(),
    ];
    let mut setup = OsString::from("--setup-hook=");
    setup.push(hook);
    let mut extract = OsString::from("--extract-hook=");
    extract.push(hook);
    args.extend([setup, extract, SUITE.into(), tarball.into()]);
    args
}

fn builder_base(
    sh: &Shell,
    docker: &Docker,
    work: &Path,
    repository: &str,
    extras: &[String],
) -> anyhow::Result<String> {
    // Run from the workspace root, rustc is the toolchain rust-toolchain.toml pins.
    let rustc = process::read(cmd!(sh, "rustc -vV"))?;
    let chef = tools::require(sh, Tool::CargoChef)?;
    let auditable = tools::require(sh, Tool::CargoAuditable)?;
    // Without extras the list, and so the key, is what it always was.
    let packages = BUILDER_PACKAGES
        .iter()
        .map(|p| (*p).to_owned())
        .chain(extras.iter().cloned())
        .collect::<Vec<_>>()
        .join(",");
    let changes = BUILDER_CHANGES.join("\n");
    let key = content_key(&[
        SUITE,
        &packages,
        &changes,
        BUILDER_HOOK,
        &rustc,
        &chef.version,
        &auditable.version,
    ]);
    // A builder with extra packages is a repository of its own, so that
    // making it does not untag the plain builder (or another list's), which
    // services without extras keep building on.
    let name = if extras.is_empty() {
        "builder".to_owned()
    } else {
        format!("builder-{}", content_key(&[&packages]))
    };
    let reference = format!("{repository}/{name}:{key}");
    ensure(sh, docker, work, &reference, BUILDER_CHANGES, |tarball| {
        let sysroot = process::read(cmd!(sh, "rustc --print sysroot"))?;
        let sysroot = sysroot.trim();
        eprintln!(
            "making the builder base {reference}: Debian {SUITE}, the toolchain in {sysroot}, cargo-chef {}, cargo-auditable {}",
            chef.version, auditable.version
        );
        let mmdebstrap = tools::require(sh, Tool::Mmdebstrap)?.path;
        let hook = write_hook(work, "builder-hook.sh", BUILDER_HOOK)?;
        let include = format!("--include={packages}");
        let mut customize = OsString::from("--customize-hook=");
        customize.push(&hook);
        process::run(
            cmd!(
                sh,
                "{mmdebstrap} --variant=apt {include} --skip=output/dev {customize} {SUITE} {tarball}"
            )
            .env("RUST_SYSROOT", sysroot)
            .env("CARGO_CHEF", &chef.path)
            .env("CARGO_AUDITABLE", &auditable.path),
        )
        .context("cannot make the builder base's root filesystem with mmdebstrap")
    })
}

/// The vendor stand-in of another workspace's `Cargo.lock` (the bench's
/// snapshots, once a dependency changed).
pub fn vendor(sh: &Shell, docker: &Docker, root: &Path) -> anyhow::Result<String> {
    let work = root.join("target/xtask/offline");
    sh.create_dir(&work)
        .with_context(|| format!("cannot create {}", work.display()))?;
    // `cargo vendor` reads the workspace it runs in.
    let _in_root = sh.push_dir(root);
    vendor_image(sh, docker, root, &work, REPOSITORY)
}

fn vendor_image(
    sh: &Shell,
    docker: &Docker,
    root: &Path,
    work: &Path,
    repository: &str,
) -> anyhow::Result<String> {
    let lock_path = root.join("Cargo.lock");
    let lock = sh
        .read_file(&lock_path)
        .with_context(|| format!("cannot read {}", lock_path.display()))?;
    let reference = format!(
        "{repository}/vendor:{}",
        content_key(&[VENDOR_MOUNT, &lock])
    );
    ensure(sh, docker, work, &reference, &[], |tarball| {
        eprintln!("making the vendor image {reference} from Cargo.lock");
        let dir = work.join(format!("vendor.{}", std::process::id()));
        sh.remove_path(&dir)?;
        let packed = (|| -> anyhow::Result<()> {
            let sources = dir.join("vendor");
            let cargo = process::cargo();
            let printed = cmd!(sh, "{cargo} vendor --locked {sources}")
                .read()
                .context("cannot vendor the crates of Cargo.lock")?;
            let config = vendor_config(&printed, &format!("{VENDOR_MOUNT}/vendor"))?;
            sh.write_file(dir.join("config.toml"), config)?;
            process::run(cmd!(
                sh,
                "tar --owner=0 --group=0 --numeric-owner -C {dir} -cf {tarball} ."
            ))
            .context("cannot pack the vendored crates")
        })();
        // Named for this process: removed whether or not it was packed.
        let removed = sh.remove_path(&dir);
        packed?;
        Ok(removed?)
    })
}

/// Names the stand-in `reference` when the engine has it. Otherwise `make`
/// writes its root filesystem as a tarball, which is imported under that name
/// (with `changes`, Dockerfile instructions such as `ENV`). Either way its
/// use is recorded; the stand-ins it may replace are kept for `prune`.
fn ensure(
    sh: &Shell,
    docker: &Docker,
    work: &Path,
    reference: &str,
    changes: &[&str],
    make: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    if !docker.image_exists(sh, reference)? {
        let (_, key) = reference
            .rsplit_once(':')
            .with_context(|| format!("{reference} has no tag"))?;
        // Of this process: a build on the other engine may be making the
        // same stand-in for its own store meanwhile.
        let tarball = work.join(format!("{key}.{}.tar", std::process::id()));
        // Named for this process, a failed one's would stay for good.
        if let Err(error) = make(&tarball) {
            let _ = std::fs::remove_file(&tarball);
            return Err(error);
        }
        docker.import(sh, &tarball, changes, reference)?;
        sh.remove_path(&tarball)?;
    }
    usage::record(reference);
    Ok(reference.to_owned())
}

/// Writes a hook script where mmdebstrap can execute it.
fn write_hook(work: &Path, name: &str, script: &str) -> anyhow::Result<PathBuf> {
    let path = work.join(name);
    crate::files::write_if_changed(&path, script.as_bytes(), Some(0o755))?;
    Ok(path)
}

/// The configuration `cargo vendor` prints, pointed at where the image
/// build mounts the vendored crates.
fn vendor_config(printed: &str, directory: &str) -> anyhow::Result<String> {
    let mut replaced = 0;
    let mut config = String::new();
    for line in printed.lines() {
        if line.trim_start().starts_with("directory = ") {
            replaced += 1;
            writeln!(config, "directory = \"{directory}\"")?;
        } else {
            config.push_str(line);
            config.push('\n');
        }
    }
    let table: toml::Table = toml::from_str(&config)
        .context("`cargo vendor` printed a configuration that is not TOML")?;
    let replaces_crates_io = table
        .get("source")
        .and_then(|sources| sources.get("crates-io"))
        .and_then(|crates_io| crates_io.get("replace-with"))
        .is_some();
    if replaced != 1 || !replaces_crates_io {
        anyhow::bail!("unexpected configuration from `cargo vendor`:\n{printed}");
    }
    Ok(config)
}

/// A short key that changes whenever one of the parts does: FNV-1a (64 bits)
/// over the parts, each ended by a zero byte. Not for security, only to tell
/// inputs apart.
fn content_key(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_any_input() {
        let key = content_key(&["trixie", "libc6"]);
        assert_eq!(key.len(), 16);
        assert_eq!(key, content_key(&["trixie", "libc6"]));
        assert_ne!(key, content_key(&["trixie", "libc6,tzdata"]));
        assert_ne!(key, content_key(&["trixielibc6"]));
        assert_ne!(key, content_key(&["libc6", "trixie"]));
    }

    #[test]
    fn the_key_is_stable_across_builds_of_the_xtask() {
        // FNV-1a of the empty input: the offset basis, then one zero byte.
        assert_eq!(content_key(&[]), "cbf29ce484222325");
        assert_eq!(content_key(&[""]), "af63bd4c8601b7df");
    }

    const VENDOR_OUTPUT: &str = r#"[source.crates-io]
replace-with = "vendored-sources"

[source."git+https://github.com/example/dep?rev=0123"]
git = "https://github.com/example/dep"
rev = "0123"
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "/work/wt-image/target/xtask/offline/vendor/vendor"
"#;

    #[test]
    fn the_vendor_configuration_points_at_the_mount() {
        let config = vendor_config(VENDOR_OUTPUT, "/.cargo/vendor").unwrap();
        let table: toml::Table = toml::from_str(&config).unwrap();
        assert_eq!(
            table["source"]["vendored-sources"]["directory"].as_str(),
            Some("/.cargo/vendor")
        );
        assert_eq!(
            table["source"]["crates-io"]["replace-with"].as_str(),
            Some("vendored-sources")
        );
        assert!(!config.contains("/work/"), "{config}");
    }

    #[test]
    fn git_sources_stay_replaced_too() {
        let config = vendor_config(VENDOR_OUTPUT, "/.cargo/vendor").unwrap();
        assert!(config.contains("git+https://github.com/example/dep"));
    }

    #[test]
    fn an_unexpected_vendor_configuration_is_an_error() {
        assert!(vendor_config("", "/.cargo/vendor").is_err());
        assert!(vendor_config("[source.crates-io]\n", "/.cargo/vendor").is_err());
    }

    #[test]
    fn the_runtime_is_extracted_not_installed() {
        let args = runtime_mmdebstrap_args(Path::new("/w/hook.sh"), Path::new("/w/rt.tar"));
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert!(args.contains(&"--variant=extract"));
        assert!(args.contains(&"--setup-hook=/w/hook.sh"));
        assert!(args.contains(&"--extract-hook=/w/hook.sh"));
        assert_eq!(&args[args.len() - 2..], ["trixie", "/w/rt.tar"]);
        let include = args.iter().find(|a| a.starts_with("--include=")).unwrap();
        for package in ["libc6", "libssl3t64", "libgcc-s1", "libstdc++6", "tzdata"] {
            assert!(include.split([',', '=']).any(|p| p == package), "{package}");
        }
    }

    #[test]
    fn the_runtime_hook_keeps_shells_and_package_managers_out() {
        for package in ["bash", "dash", "busybox", "apt", "dpkg", "ca-certificates"] {
            assert!(!RUNTIME_PACKAGES.contains(&package), "{package}");
        }
        assert!(RUNTIME_HOOK.contains("nonroot:x:65532:65532:"));
        assert!(RUNTIME_HOOK.contains("status.d"));
    }
}

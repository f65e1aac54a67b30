//! The image's own tools, carried by this crate rather than by the
//! repository it builds: the HEALTHCHECK probe and `rootfs`, which lays out
//! the minimal runtime. `prepare` writes their sources into the build
//! context as a workspace of their own, which the Dockerfile's `tools`
//! stage compiles. Both are std only, so the build fetches no crate.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

/// Where the sources go, under the repository's root: the Dockerfile's
/// `tools` stage copies this directory.
pub const DIR: &str = "target/xtask/image/tools";

/// The probe's and rootfs's sources, as this crate was built with them.
/// `assets/` links to the repository's own files, and cargo packages a
/// link's content, so the crate carries them by path, git or registry.
/// Each tool's files, its library (when it has one) first.
const SOURCES: [(&str, &[(&str, &str)]); 2] = [
    (
        "healthcheck",
        &[
            ("lib.rs", include_str!("../../assets/healthcheck-lib.rs")),
            ("main.rs", include_str!("../../assets/healthcheck.rs")),
        ],
    ),
    (
        "rootfs",
        &[("main.rs", include_str!("../../assets/rootfs.rs"))],
    ),
];

/// The profile `image --optimize` builds with, for the tools and for a
/// repository whose manifest defines none: [`size_profile_env`].
const SIZE_PROFILE: [(&str, &str); 6] = [
    ("inherits", "\"release\""),
    ("opt-level", "\"z\""),
    ("lto", "true"),
    ("codegen-units", "1"),
    ("panic", "\"abort\""),
    ("strip", "true"),
];

/// Writes the tools' workspace under `root`, and removes what else an
/// earlier build left there. A file that already holds its source is left
/// alone, so that a build reading the directory meanwhile (`ci` runs one on
/// each engine) never sees it emptied.
pub fn write(root: &Path) -> anyhow::Result<()> {
    let dir = root.join(DIR);
    remove_all_but(&dir, &["Cargo.toml"], &SOURCES.map(|(name, _)| name))?;
    for (name, files) in SOURCES {
        let names: Vec<&str> = std::iter::once("Cargo.toml")
            .chain(files.iter().map(|(file, _)| *file))
            .collect();
        remove_all_but(&dir.join(name), &names, &[])?;
    }
    let mut workspace = String::from(
        "# Written by `cargo xtask image`: the image's own tools, from the xtask.\n\
         [workspace]\nresolver = \"3\"\nmembers = [",
    );
    let members: Vec<String> = SOURCES
        .iter()
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    workspace.push_str(&members.join(", "));
    workspace.push_str("]\n\n[profile.size]\n");
    for (key, value) in SIZE_PROFILE {
        let _ = writeln!(workspace, "{key} = {value}");
    }
    write_file(&dir.join("Cargo.toml"), &workspace)?;
    for (name, files) in SOURCES {
        let mut manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n"
        );
        if files.iter().any(|(file, _)| *file == "lib.rs") {
            manifest.push_str("[lib]\npath = \"lib.rs\"\n\n");
        }
        let _ = writeln!(manifest, "[[bin]]\nname = \"{name}\"\npath = \"main.rs\"");
        write_file(&dir.join(name).join("Cargo.toml"), &manifest)?;
        for &(file, source) in files {
            write_file(&dir.join(name).join(file), source)?;
        }
    }
    Ok(())
}

/// `CARGO_PROFILE_SIZE_*` settings that define the `size` profile for a
/// repository whose root manifest has none, as `NAME=value` pairs for the
/// build's environment: cargo takes a custom profile from its environment.
pub fn size_profile_env() -> Vec<(String, String)> {
    SIZE_PROFILE
        .iter()
        .map(|(key, value)| {
            (
                format!(
                    "CARGO_PROFILE_SIZE_{}",
                    key.to_uppercase().replace('-', "_")
                ),
                value.trim_matches('"').to_owned(),
            )
        })
        .collect()
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::files::write_if_changed(path, text.as_bytes(), None)
}

/// Removes what `dir` holds besides the files `files` and the directories
/// `dirs`; a missing `dir` holds nothing.
fn remove_all_but(dir: &Path, files: &[&str], dirs: &[&str]) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        let kept = if is_dir { dirs } else { files };
        // Another process's file on its way into place is not a stray.
        if kept.iter().any(|k| name == *k) || crate::files::is_partial(&name) {
            continue;
        }
        if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_build_on_their_own_with_the_size_profile() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path();
        write(dir).unwrap();
        let tools = dir.join(DIR);
        let manifest = tools.join("Cargo.toml");
        let sh = xshell::Shell::new().unwrap();
        xshell::cmd!(
            sh,
            "cargo build --offline --quiet --profile size --manifest-path {manifest}"
        )
        .run()
        .unwrap();
        for (name, _) in SOURCES {
            assert!(tools.join("target/size").join(name).is_file(), "{name}");
        }
    }

    #[test]
    fn writing_again_leaves_the_sources_in_place_and_removes_the_rest() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path();
        write(dir).unwrap();
        let tools = dir.join(DIR);
        let probe = tools.join("healthcheck/main.rs");
        let inode =
            |path: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
        let before = inode(&probe);
        std::fs::write(tools.join("stale.rs"), "").unwrap();
        std::fs::create_dir_all(tools.join("old-tool")).unwrap();
        std::fs::write(tools.join("rootfs/extra.rs"), "").unwrap();
        std::fs::write(tools.join("Cargo.toml.77.partial"), "").unwrap();
        write(dir).unwrap();
        assert_eq!(
            inode(&probe),
            before,
            "an unchanged source is not rewritten"
        );
        for gone in ["stale.rs", "old-tool", "rootfs/extra.rs"] {
            assert!(!tools.join(gone).exists(), "{gone}");
        }
        assert!(
            tools.join("Cargo.toml.77.partial").exists(),
            "another writer's file is left to it"
        );
    }

    /// What `include_str!` reads ships in the package a registry would get.
    #[test]
    fn the_package_carries_the_assets() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let sh = xshell::Shell::new().unwrap();
        let listed = crate::process::read(xshell::cmd!(
            sh,
            "cargo package --list --allow-dirty --offline --manifest-path {manifest}"
        ))
        .unwrap();
        for asset in [
            "assets/Dockerfile",
            "assets/healthcheck.rs",
            "assets/healthcheck-lib.rs",
            "assets/rootfs.rs",
            "assets/xtask-main.rs",
        ] {
            assert!(
                listed.lines().any(|line| line == asset),
                "{asset} not packaged: {listed}"
            );
        }
    }

    #[test]
    fn the_size_profile_reads_as_cargo_environment() {
        let env = size_profile_env();
        assert!(env.contains(&("CARGO_PROFILE_SIZE_OPT_LEVEL".into(), "z".into())));
        assert!(env.contains(&("CARGO_PROFILE_SIZE_INHERITS".into(), "release".into())));
        assert!(env.contains(&("CARGO_PROFILE_SIZE_CODEGEN_UNITS".into(), "1".into())));
    }
}

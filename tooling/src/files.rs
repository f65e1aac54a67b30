//! Files that several commands write while others read them: `ci` runs a
//! build on each engine side by side, and both write the same build context.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;

/// How the file of a write still under way ends; it belongs to its writer.
const PARTIAL: &str = ".partial";

/// Whether `name` is another writer's file on its way into place.
pub fn is_partial(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().ends_with(PARTIAL)
}

/// Writes `contents` to `path` unless it already holds them (with `mode`), through a
/// file of this process's own renamed into place: a reader sees the old
/// file or the new one, never a half-written one, and a file that other
/// builds are reading is not touched when nothing changes. `mode`: the
/// permissions to give a new file (an executable hook), else the default.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: Option<u32>) -> anyhow::Result<()> {
    let same_mode = || {
        mode.is_none_or(|mode| {
            std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o777 == mode)
        })
    };
    if std::fs::read(path).is_ok_and(|old| old == contents) && same_mode() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?
        .to_os_string();
    name.push(format!(".{}{PARTIAL}", std::process::id()));
    let partial = path.with_file_name(name);
    std::fs::write(&partial, contents)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the permissions of {}", partial.display()))?;
    }
    std::fs::rename(&partial, path).with_context(|| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot move {} into place", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_file_is_left_alone_and_a_changed_one_replaced_whole() {
        let scratch = crate::testing::scratch();
        let path = scratch.path().join("dir/Dockerfile");
        write_if_changed(&path, b"FROM scratch\n", None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"FROM scratch\n");
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());

        write_if_changed(&path, b"FROM scratch\n", None).unwrap();
        let same = std::fs::metadata(&path).unwrap();
        assert_eq!(same.modified().unwrap(), written, "not rewritten");
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&same), inode);

        write_if_changed(&path, b"FROM busybox\n", Some(0o755)).unwrap();
        let replaced = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"FROM busybox\n");
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&replaced),
            inode,
            "a new file renamed over the old, not the old one truncated"
        );
        assert_eq!(replaced.permissions().mode() & 0o777, 0o755);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_if_changed(&path, b"FROM busybox\n", Some(0o755)).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755,
            "the same bytes with other permissions are written again"
        );
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["Dockerfile"], "no partial file left behind");
    }
}

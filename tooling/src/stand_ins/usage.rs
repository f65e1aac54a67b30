//! When each stand-in was last used, so that `prune` removes the least
//! recently used first. Kept per user, not per repository: one engine
//! serves every repository on the machine, and so do its stand-ins.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;

/// `$XDG_CACHE_HOME/xtask/stand-ins.json`, else under `~/.cache`.
pub fn record_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("xtask/stand-ins.json"))
}

/// Each stand-in's last use, seconds since the epoch; none when there is
/// no record, or it cannot be read (then every stand-in counts as unused).
pub fn last_uses() -> BTreeMap<String, u64> {
    record_path()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Notes that `reference` was used now. A record that cannot be written
/// costs only the order `prune` removes in, so it is a warning.
pub fn record(reference: &str) {
    if let Err(error) = try_record(reference) {
        eprintln!("warning: cannot record the use of {reference}: {error:#}");
    }
}

fn try_record(reference: &str) -> anyhow::Result<()> {
    let path = record_path().context("neither XDG_CACHE_HOME nor HOME is set")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Builds on two engines record at once (`ci`): one reads and writes at
    // a time, or one's use would be lost.
    let lock_path = path.with_extension("lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let mut uses = last_uses();
    uses.insert(reference.to_owned(), crate::git::unix_now());
    crate::files::write_if_changed(&path, serde_json::to_string_pretty(&uses)?.as_bytes(), None)
}

/// A stand-in as `prune` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandIn {
    pub reference: String,
    pub bytes: u64,
    /// Seconds since the epoch; 0 when never recorded.
    pub last_used: u64,
}

/// What to remove so that the rest fit in `budget` bytes: the least
/// recently used first, and nothing while they fit.
pub fn to_remove(stand_ins: &[StandIn], budget: u64) -> Vec<&StandIn> {
    let mut by_age: Vec<&StandIn> = stand_ins.iter().collect();
    by_age.sort_by_key(|s| (s.last_used, s.reference.clone()));
    let mut total: u64 = stand_ins.iter().map(|s| s.bytes).sum();
    let mut removed = Vec::new();
    for stand_in in by_age {
        if total <= budget {
            break;
        }
        total -= stand_in.bytes;
        removed.push(stand_in);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stand_in(reference: &str, bytes: u64, last_used: u64) -> StandIn {
        StandIn {
            reference: reference.into(),
            bytes,
            last_used,
        }
    }

    #[test]
    fn the_least_recently_used_go_first_until_the_rest_fit() {
        let all = [
            stand_in("xtask-offline/vendor:a", 300, 30),
            stand_in("xtask-offline/vendor:b", 300, 10),
            stand_in("xtask-offline/builder:k", 900, 20),
            stand_in("xtask-offline/runtime:k", 50, 0),
        ];
        let names = |budget| -> Vec<String> {
            to_remove(&all, budget)
                .iter()
                .map(|s| s.reference.clone())
                .collect()
        };
        assert!(names(2000).is_empty(), "they fit: nothing goes");
        assert_eq!(
            names(1500),
            ["xtask-offline/runtime:k"],
            "never used goes first"
        );
        assert_eq!(
            names(1400),
            ["xtask-offline/runtime:k", "xtask-offline/vendor:b"]
        );
        assert_eq!(names(0).len(), 4);
    }
}

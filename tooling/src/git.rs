//! The source revision an image is built from.

use anyhow::Context;
use xshell::{Shell, cmd};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The full commit id of HEAD.
    pub commit: String,
    /// The abbreviated commit id, as git abbreviates it.
    pub short: String,
    /// Whether the work tree differs from HEAD (untracked files included).
    pub dirty: bool,
    /// HEAD's commit time, seconds since the Unix epoch.
    pub commit_time: i64,
}

impl Revision {
    pub fn read(sh: &Shell) -> anyhow::Result<Revision> {
        let head = cmd!(sh, "git log -1 --format=%H%x20%h%x20%ct")
            .quiet()
            .read()
            .context("cannot read the git revision (is this a git checkout with a commit?)")?;
        let status = cmd!(sh, "git status --porcelain")
            .quiet()
            .read()
            .context("cannot read the git status")?;
        Revision::parse(&head, &status)
    }

    fn parse(head: &str, status: &str) -> anyhow::Result<Revision> {
        let mut words = head.split_whitespace();
        let (Some(commit), Some(short), Some(time)) = (words.next(), words.next(), words.next())
        else {
            anyhow::bail!("unexpected `git log` output: {head:?}");
        };
        Ok(Revision {
            commit: commit.to_owned(),
            short: short.to_owned(),
            dirty: !status.trim().is_empty(),
            commit_time: time
                .parse()
                .with_context(|| format!("unexpected commit time {time:?}"))?,
        })
    }

    /// The revision as the image records it: a work tree with changes is
    /// marked, as `git describe --dirty` does.
    pub fn describe(&self, id: &str) -> String {
        if self.dirty {
            format!("{id}-dirty")
        } else {
            id.to_owned()
        }
    }
}

/// Where the source lives, for the image's `source` label: the `origin`
/// remote, when it is a URL a reader can follow (not a local path), with
/// any credentials in it left out.
pub fn remote_url(sh: &Shell) -> Option<String> {
    let url = cmd!(sh, "git remote get-url origin")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    public_url(url.trim())
}

fn public_url(url: &str) -> Option<String> {
    if let Some((scheme, rest)) = url.split_once("://") {
        if scheme == "file" {
            return None;
        }
        let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
        return Some(format!("{scheme}://{rest}"));
    }
    // scp-like `git@github.com:team/repo.git`
    let (user_host, path) = url.split_once(':')?;
    let host = user_host
        .split_once('@')
        .map_or(user_host, |(_, host)| host);
    (host.contains('.') && !path.starts_with('/')).then(|| format!("https://{host}/{path}"))
}

/// The time a document made from this commit carries: `SOURCE_DATE_EPOCH`
/// when set, as reproducible builds agree, otherwise HEAD's commit time;
/// never the clock, so that one commit gives the same bytes.
pub fn source_date_epoch(sh: &Shell) -> anyhow::Result<i64> {
    match source_date_epoch_set()? {
        Some(epoch) => Ok(epoch),
        None => Ok(Revision::read(sh)?.commit_time),
    }
}

/// `SOURCE_DATE_EPOCH`, the reproducible-builds convention, when set and
/// not empty.
pub fn source_date_epoch_set() -> anyhow::Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .map(Some)
            .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not whole seconds")),
        _ => Ok(None),
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The time now, as an RFC 3339 UTC timestamp in whole seconds.
pub fn now_rfc3339_utc() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339_utc(epoch: i64) -> String {
    let since = std::time::Duration::from_secs(epoch.unsigned_abs());
    let time = if epoch >= 0 {
        std::time::UNIX_EPOCH + since
    } else {
        std::time::UNIX_EPOCH - since
    };
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_a_clean_tree() {
        let revision = Revision::parse("0123456789abcdef 0123456 1700000000\n", "").unwrap();
        assert_eq!(revision.short, "0123456");
        assert!(!revision.dirty);
        assert_eq!(revision.describe("0123456"), "0123456");
    }

    #[test]
    fn any_change_marks_the_tree_dirty() {
        let revision = Revision::parse(
            "0123456789abcdef 0123456 1700000000",
            " M server/src/main.rs\n",
        )
        .unwrap();
        assert!(revision.dirty);
        assert_eq!(revision.describe("sha-0123456"), "sha-0123456-dirty");
    }

    #[test]
    fn garbage_from_git_is_an_error() {
        assert!(Revision::parse("fatal: not a git repository", "").is_err());
    }

    #[test]
    fn a_remote_is_a_source_only_when_a_reader_can_follow_it() {
        assert_eq!(
            public_url("https://token:x@github.com/team/api.git").as_deref(),
            Some("https://github.com/team/api.git")
        );
        assert_eq!(
            public_url("git@github.com:team/api.git").as_deref(),
            Some("https://github.com/team/api.git")
        );
        assert_eq!(public_url("/work/main"), None);
        assert_eq!(public_url("file:///work/main"), None);
        assert_eq!(public_url("../main"), None);
    }

    #[test]
    fn formats_timestamps_as_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}

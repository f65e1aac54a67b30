//! Each passing step's verdict, kept with a key of what the step read, so
//! that a later `ci` whose inputs are the same shows it as
//! `cached (from <time>)` instead of running it again. A failed step is
//! never kept; `--no-cache` reads nothing from the store.
//!
//! What a step reads:
//! - every step: its command line, this program (the checks' own code),
//!   and the table it is given;
//! - a step on the sources: the files git sees in the repository, tracked
//!   or not ignored, by content, and the toolchain's version. All of them
//!   for the builds and the tests; for a step that declares less
//!   (`plan::reads`: cargo-deny, hadolint, the adoption proofs, the
//!   whole-build `reproducible`, the proofs that clone the commit), only
//!   those, so a change to the service does not re-run the example's
//!   adoption. A build also reads the commit, which it writes into the
//!   image's labels; a proof that clones the commit reads what the commit
//!   holds of its files;
//! - a check of an image: the image's id, and the files beside it that the
//!   checks read (the scan's ignore file, `deny.toml`, `deploy/`), not the
//!   sources, which reach it only through the image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::plan::{self, Action, Step};

/// One kept verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// When the step passed, RFC 3339 in UTC.
    pub at: String,
    /// What it measured then.
    pub measured: String,
    /// The image a build step built, which its checks run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// The verdicts kept, by step name, in `target/xtask/ci/cache.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Store {
    steps: BTreeMap<String, Entry>,
}

impl Store {
    /// The store at `path`; none, or one that cannot be read, is empty: the
    /// steps then run, which is always safe.
    pub fn load(path: &Path) -> Store {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The kept verdict of `step`, when its key is `key`.
    pub fn hit(&self, step: &str, key: &str) -> Option<&Entry> {
        self.steps.get(step).filter(|entry| entry.key == key)
    }

    pub fn keep(&mut self, step: &str, entry: Entry) {
        self.steps.insert(step.to_owned(), entry);
    }

    /// A step that ran and did not pass loses what was kept for it.
    pub fn forget(&mut self, step: &str) {
        self.steps.remove(step);
    }
}

/// What the keys are made of, read once per run.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// This program's own bytes: a change to a check changes its verdict.
    pub xtask: String,
    /// The table's text.
    pub table: String,
    /// The toolchain's version.
    pub toolchain: String,
    /// Every file git sees, with the digest of its content.
    pub files: Vec<(PathBuf, String)>,
    /// The commit, which a build writes into its image's labels.
    pub revision: String,
    /// Every file of the commit, with git's id of its content: what a proof
    /// that clones the commit reads, whatever the work tree holds.
    pub committed: Vec<(PathBuf, String)>,
    /// The variables the steps read (`XTASK_*`: the scanners' databases,
    /// the table; `DOCKER_HOST`), as `NAME=value` lines.
    pub environment: String,
}

impl Inputs {
    pub fn read(
        sh: &Shell,
        root: &Path,
        xtask: &Path,
        table: &Path,
        revision: &str,
    ) -> anyhow::Result<Inputs> {
        let toolchain = crate::process::read(xshell::cmd!(sh, "rustc --version"))
            .unwrap_or_else(|_| "rustc unknown".to_owned());
        let files = repository_files(sh, root)?
            .into_iter()
            .map(|file| {
                let digest = digest_file(&root.join(&file))?;
                Ok((file, digest))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Inputs {
            xtask: digest_file(xtask)?,
            table: digest_file(table)?,
            toolchain: toolchain.trim().to_owned(),
            files,
            revision: revision.to_owned(),
            committed: committed_files(sh, root),
            environment: environment(std::env::vars()),
        })
    }

    /// The key of `step`; `image` is the id of the image a check runs on.
    pub fn key(&self, step: &Step, image: Option<&str>) -> String {
        let mut hasher = sha1_smol::Sha1::new();
        let mut add = |part: &str| {
            hasher.update(part.as_bytes());
            hasher.update(&[0]);
        };
        add(step.name);
        add(&format!("{:?}", step.action));
        add(&self.xtask);
        add(&self.table);
        add(&self.environment);
        if let (
            Action::Xtask {
                image_of: Some(_), ..
            },
            Some(image),
        ) = (&step.action, image)
        {
            add(image);
            add(&self.digest_of(is_beside_images));
            return format!("sha1:{}", hasher.digest());
        }
        add(&self.toolchain);
        let reads = plan::reads(step.name);
        match reads {
            Some(reads) => add(&self.digest_of(|path| reads.matches(path))),
            None => add(&self.digest_of(|_| true)),
        }
        if let Some(reads) = reads.filter(|reads| reads.names) {
            // A proof that clones the commit sees the commit's files.
            let files = if reads.commit {
                &self.committed
            } else {
                &self.files
            };
            add(&digest(files.iter().map(|(path, _)| (path, ""))));
        }
        let builds = matches!(&step.action, Action::Xtask { args, .. }
            if args.first().is_some_and(|a| a == "image" || a == "reproducible"));
        match reads {
            None if builds => add(&self.revision),
            // A proof that clones the commit reads what the commit holds of
            // its paths, not which commit it is: a change to the service
            // does not re-run the tooling's adoption.
            Some(reads) if reads.commit && (reads.workspace || !reads.paths.is_empty()) => {
                add(&digest(
                    self.committed
                        .iter()
                        .filter(|(path, _)| reads.matches(path))
                        .map(|(path, id)| (path, id.as_str())),
                ));
            }
            // One that reads the whole commit.
            Some(reads) if reads.commit => add(&self.revision),
            _ => {}
        }
        format!("sha1:{}", hasher.digest())
    }

    fn digest_of(&self, chosen: impl Fn(&Path) -> bool) -> String {
        digest(
            self.files
                .iter()
                .filter(|(path, _)| chosen(path))
                .map(|(path, digest)| (path, digest.as_str())),
        )
    }
}

/// One digest of files and their contents' digests (empty when only the
/// names count).
fn digest<'a>(files: impl Iterator<Item = (&'a PathBuf, &'a str)>) -> String {
    let mut hasher = sha1_smol::Sha1::new();
    for (path, digest) in files {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(&[0]);
        hasher.update(digest.as_bytes());
        hasher.update(&[0]);
    }
    hasher.digest().to_string()
}

/// Every file of HEAD with git's id of its content (`git ls-tree -r`),
/// sorted; none before the first commit.
fn committed_files(sh: &Shell, root: &Path) -> Vec<(PathBuf, String)> {
    let listed = xshell::cmd!(sh, "git -C {root} ls-tree -r -z HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    let mut files: Vec<(PathBuf, String)> = listed
        .split('\0')
        .filter_map(|entry| {
            // `<mode> <type> <object>\t<path>`
            let (meta, path) = entry.split_once('\t')?;
            let object = meta.split_whitespace().nth(2)?;
            Some((PathBuf::from(path), object.to_owned()))
        })
        .collect();
    files.sort();
    files
}

/// The variables that change what a step does, sorted.
fn environment(vars: impl Iterator<Item = (String, String)>) -> String {
    let mut read: Vec<String> = vars
        .filter(|(name, _)| name.starts_with("XTASK_") || name == "DOCKER_HOST")
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    read.sort();
    read.join("\n")
}

/// Files an image's checks read that are not in the image: scan's policy
/// and ignore file, and the deployment the scan and compose proofs use.
fn is_beside_images(path: &Path) -> bool {
    path.starts_with("deploy")
        || matches!(
            path.to_str(),
            Some(".trivyignore.yaml" | "deny.toml" | "Cargo.toml" | "xtask.toml")
        )
}

/// Every file git sees in the repository, tracked or untracked and not
/// ignored, relative to `root`, sorted; deleted files are left out.
fn repository_files(sh: &Shell, root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let listed = crate::process::read(xshell::cmd!(
        sh,
        "git -C {root} ls-files --cached --others --exclude-standard -z"
    ))
    .context("cannot list the repository's files with git")?;
    let mut files: Vec<PathBuf> = listed
        .split('\0')
        .filter(|name| !name.is_empty())
        .map(PathBuf::from)
        .filter(|path| root.join(path).is_file())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// The digest of one file's content; a missing one (a table not written)
/// is a state of its own.
fn digest_file(path: &Path) -> anyhow::Result<String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(sha1_smol::Sha1::from(bytes).digest().to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok("missing".to_owned()),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            xtask: "x1".into(),
            table: "t1".into(),
            toolchain: "rustc 1.95.0".into(),
            files: vec![
                ("Cargo.lock".into(), "l1".into()),
                ("deny.toml".into(), "d1".into()),
                ("examples/hello/src/main.rs".into(), "h1".into()),
                ("server/src/main.rs".into(), "m1".into()),
            ],
            revision: "r1".into(),
            committed: vec![
                ("Cargo.lock".into(), "c1".into()),
                ("examples/hello/src/main.rs".into(), "c2".into()),
                ("server/src/main.rs".into(), "c3".into()),
            ],
            environment: String::new(),
        }
    }

    fn with_file(path: &str, digest: &str) -> Inputs {
        let mut inputs = inputs();
        for (file, old) in &mut inputs.files {
            if file == Path::new(path) {
                *old = digest.to_owned();
            }
        }
        inputs
    }

    use crate::ci::plan::xtask_step as step;

    /// A changed input re-runs exactly the steps that read it: the sources
    /// reach the source steps and the builds, an image's checks see them
    /// only through a new image id.
    #[test]
    fn a_changed_input_changes_exactly_the_keys_that_read_it() {
        let build = step("image", None);
        let check = step("size-check", Some("image"));
        let before = inputs();
        let sources_changed = with_file("server/src/main.rs", "m2");
        assert_ne!(before.key(&build, None), sources_changed.key(&build, None));
        assert_eq!(
            before.key(&check, Some("sha256:a")),
            sources_changed.key(&check, Some("sha256:a")),
            "same image, same verdict"
        );
        assert_ne!(
            before.key(&check, Some("sha256:a")),
            before.key(&check, Some("sha256:b"))
        );
        let policy_changed = with_file("deny.toml", "d2");
        assert_ne!(
            before.key(&check, Some("sha256:a")),
            policy_changed.key(&check, Some("sha256:a"))
        );
        assert_ne!(
            before.key(&build, None),
            policy_changed.key(&build, None),
            "a build reads all"
        );
        // A build labels its image with the commit; the checks of sources do not.
        let mut committed = inputs();
        committed.revision = "r2".into();
        assert_ne!(before.key(&build, None), committed.key(&build, None));
        let fmt = Step {
            name: "fmt",
            proves: "",
            action: Action::Cargo(vec!["fmt".into()]),
        };
        assert_eq!(before.key(&fmt, None), committed.key(&fmt, None));
        for changed in [
            Inputs {
                xtask: "x2".into(),
                ..inputs()
            },
            Inputs {
                table: "t2".into(),
                ..inputs()
            },
        ] {
            assert_ne!(before.key(&build, None), changed.key(&build, None));
            assert_ne!(
                before.key(&check, Some("sha256:a")),
                changed.key(&check, Some("sha256:a"))
            );
        }
        let mut database_moved = inputs();
        database_moved.environment =
            environment([("XTASK_ADVISORY_DB".to_owned(), "/elsewhere".to_owned())].into_iter());
        assert_ne!(before.key(&build, None), database_moved.key(&build, None));
        assert_eq!(
            environment([("HOME".to_owned(), "/root".to_owned())].into_iter()),
            "",
            "only what the steps read"
        );
        assert_ne!(
            before.key(&step("sbom", Some("image")), Some("sha256:a")),
            before.key(&check, Some("sha256:a")),
            "each step its own key"
        );
    }

    /// A step that declares what it reads is not re-run for a change
    /// elsewhere: the service's code does not reach the example's adoption
    /// or cargo-deny, the example's code does.
    #[test]
    fn a_step_that_declares_its_reads_runs_only_when_they_change() {
        let before = inputs();
        let service_changed = with_file("server/src/main.rs", "m2");
        let example_changed = with_file("examples/hello/src/main.rs", "h2");
        let lock_changed = with_file("Cargo.lock", "l2");
        let adopt = step("adopt-test", None);
        let deny = step("deny", None);
        assert_eq!(before.key(&adopt, None), service_changed.key(&adopt, None));
        assert_ne!(before.key(&adopt, None), example_changed.key(&adopt, None));
        assert_eq!(before.key(&deny, None), service_changed.key(&deny, None));
        assert_eq!(before.key(&deny, None), example_changed.key(&deny, None));
        assert_ne!(before.key(&deny, None), lock_changed.key(&deny, None));
    }

    /// The whole-build reproducibility check re-runs when what the
    /// dependencies' stages read changes (the lock file, a new file's name),
    /// not for a change to the service's code or a new commit; the service's
    /// own check re-runs for both.
    #[test]
    fn the_whole_build_is_proved_again_only_when_the_dependencies_inputs_change() {
        let reproducible = |name, rebuild: &str| Step {
            name,
            proves: "",
            action: Action::Xtask {
                args: vec!["reproducible".into(), "--rebuild".into(), rebuild.into()],
                image_of: None,
            },
        };
        let whole = reproducible("reproducible", "all");
        let service = reproducible("reproducible-service", "service");
        let before = inputs();
        let mut service_committed = with_file("server/src/main.rs", "m2");
        service_committed.revision = "r2".into();
        assert_eq!(
            before.key(&whole, None),
            service_committed.key(&whole, None)
        );
        assert_ne!(
            before.key(&service, None),
            service_committed.key(&service, None)
        );
        let lock_changed = with_file("Cargo.lock", "l2");
        assert_ne!(before.key(&whole, None), lock_changed.key(&whole, None));
        assert_ne!(before.key(&service, None), lock_changed.key(&service, None));
        let mut target_added = inputs();
        target_added
            .files
            .push(("server/src/bin/tool.rs".into(), "b1".into()));
        assert_ne!(before.key(&whole, None), target_added.key(&whole, None));
    }

    /// A proof that clones the commit re-runs when what the commit holds of
    /// its paths changes, not for any new commit: a commit that changes
    /// only the service's code leaves `init-test` and `diff-test` cached;
    /// one that changes the lock file, or adds a file, re-runs `diff-test`.
    #[test]
    fn a_proof_of_the_commit_keys_on_what_the_commit_holds_of_its_paths() {
        let init = step("init-test", None);
        let diff = step("diff-test", None);
        let before = inputs();
        let mut service_committed = inputs();
        service_committed.revision = "r2".into();
        service_committed.committed[2].1 = "c3b".into();
        assert_eq!(before.key(&init, None), service_committed.key(&init, None));
        assert_eq!(before.key(&diff, None), service_committed.key(&diff, None));
        let mut example_committed = inputs();
        example_committed.revision = "r3".into();
        example_committed.committed[1].1 = "c2b".into();
        assert_ne!(before.key(&init, None), example_committed.key(&init, None));
        let mut lock_committed = inputs();
        lock_committed.committed[0].1 = "c1b".into();
        assert_ne!(before.key(&init, None), lock_committed.key(&init, None));
        assert_ne!(before.key(&diff, None), lock_committed.key(&diff, None));
        let mut file_committed = inputs();
        file_committed
            .committed
            .push(("server/src/bin/tool.rs".into(), "c4".into()));
        assert_ne!(before.key(&diff, None), file_committed.key(&diff, None));
    }

    #[test]
    fn only_the_same_key_hits_and_a_failure_forgets() {
        let mut store = Store::default();
        let entry = Entry {
            key: "k1".into(),
            at: "2026-12-04T03:00:00Z".into(),
            measured: "clean".into(),
            image_id: None,
        };
        store.keep("fmt", entry.clone());
        assert_eq!(store.hit("fmt", "k1"), Some(&entry));
        assert_eq!(store.hit("fmt", "k2"), None);
        assert_eq!(store.hit("clippy", "k1"), None);
        store.forget("fmt");
        assert_eq!(store.hit("fmt", "k1"), None);
    }

    #[test]
    fn a_store_that_cannot_be_read_is_empty() {
        let scratch = crate::testing::scratch();
        let path = scratch.path().join("cache.json");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(Store::load(&path).steps.is_empty());
        let mut store = Store::default();
        store.keep(
            "fmt",
            Entry {
                key: "k".into(),
                at: "t".into(),
                measured: "m".into(),
                image_id: Some("sha256:a".into()),
            },
        );
        store.save(&path).unwrap();
        assert_eq!(
            Store::load(&path)
                .hit("fmt", "k")
                .unwrap()
                .image_id
                .as_deref(),
            Some("sha256:a")
        );
    }
}

//! Downloading packages of another Debian release with a private apt
//! configuration. Adding that release to the system's sources would upgrade
//! libc; a separate sources list, package lists and cache leave the system
//! untouched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::process;

/// The keyring Debian's archive is signed with, from `debian-archive-keyring`.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const MIRROR: &str = "http://deb.debian.org/debian";

/// One Debian release's `main`, with its apt state kept in `dir`.
#[derive(Debug, Clone)]
pub struct ForeignSuite {
    dir: PathBuf,
    suite: String,
}

impl ForeignSuite {
    pub fn new(dir: impl Into<PathBuf>, suite: &str) -> ForeignSuite {
        ForeignSuite {
            dir: dir.into(),
            suite: suite.to_owned(),
        }
    }

    fn sources_list(&self) -> String {
        format!("deb [signed-by={KEYRING}] {MIRROR} {} main\n", self.suite)
    }

    /// The `-o` options that point apt at this suite's files only.
    fn options(&self) -> Vec<String> {
        let dir = self.dir.display();
        [
            format!("Dir::Etc::SourceList={dir}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={dir}/lists"),
            format!("Dir::Cache={dir}/cache"),
            // Files land in directories the `_apt` user cannot write to.
            "APT::Sandbox::User=root".to_owned(),
        ]
        .into_iter()
        .flat_map(|option| ["-o".to_owned(), option])
        .collect()
    }

    /// Fetches the suite's package lists.
    pub fn update(&self, sh: &Shell) -> anyhow::Result<()> {
        for dir in ["lists/partial", "cache/archives/partial", "debs"] {
            sh.create_dir(self.dir.join(dir))?;
        }
        sh.write_file(self.dir.join("sources.list"), self.sources_list())?;
        let options = self.options();
        process::run(cmd!(sh, "apt-get {options...} update"))
            .with_context(|| format!("cannot fetch Debian {}'s package lists", self.suite))
    }

    /// Downloads one package (not its dependencies) and returns the `.deb`.
    pub fn download(&self, sh: &Shell, package: &str) -> anyhow::Result<PathBuf> {
        let debs = self.dir.join("debs");
        let options = self.options();
        {
            let _dir = sh.push_dir(&debs);
            process::run(cmd!(sh, "apt-get {options...} download {package}"))
                .with_context(|| format!("cannot download {package} from Debian {}", self.suite))?;
        }
        newest_deb(&debs, package)
    }
}

impl ForeignSuite {
    /// Fetches the lists, downloads `package` and unpacks its files into
    /// `dir` (no maintainer scripts run).
    pub fn unpack(&self, sh: &Shell, package: &str, dir: &Path) -> anyhow::Result<()> {
        self.update(sh)?;
        let deb = self.download(sh, package)?;
        sh.create_dir(dir)?;
        process::run(cmd!(sh, "dpkg-deb -x {deb} {dir}"))
            .with_context(|| format!("cannot unpack Debian {}'s {package}", self.suite))
    }

    /// Fetches the lists, downloads `package`, unpacks it, and copies the
    /// one binary at `path` in it into `dir`, executable. For packages that
    /// are a single static-enough binary (Go programs needing only libc).
    pub fn install_binary(
        &self,
        sh: &Shell,
        package: &str,
        path: &str,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let unpacked = self.dir.join(package);
        sh.remove_path(&unpacked)?;
        self.unpack(sh, package, &unpacked)?;
        let name = Path::new(path)
            .file_name()
            .with_context(|| format!("{path} names no file"))?;
        sh.create_dir(dir)?;
        let target = dir.join(name);
        sh.copy_file(unpacked.join(path), &target)
            .with_context(|| format!("cannot install {}", target.display()))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        eprintln!("setup: installed {}", target.display());
        Ok(())
    }
}

/// apt names downloads `<package>_<version>_<arch>.deb`; the last in sort
/// order is the one just downloaded when versions only grow.
fn newest_deb(dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("{package}_");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&prefix))
                && path
                    .extension()
                    .is_some_and(|extension| extension.eq_ignore_ascii_case("deb"))
        })
        .collect();
    debs.sort();
    debs.pop()
        .with_context(|| format!("apt downloaded no {package} into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sources_list_names_only_the_suites_main() {
        let trixie = ForeignSuite::new("/tmp/apt", "trixie");
        assert_eq!(
            trixie.sources_list(),
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian trixie main\n"
        );
    }

    #[test]
    fn apt_reads_and_writes_only_the_private_directory() {
        let options = ForeignSuite::new("/tmp/apt", "trixie").options();
        assert!(options.chunks(2).all(|pair| pair[0] == "-o"));
        let values: Vec<&str> = options
            .iter()
            .skip(1)
            .step_by(2)
            .map(String::as_str)
            .collect();
        assert!(values.contains(&"Dir::Etc::SourceList=/tmp/apt/sources.list"));
        assert!(values.contains(&"Dir::Etc::SourceParts=/dev/null"));
        assert!(values.contains(&"Dir::State::Lists=/tmp/apt/lists"));
        assert!(values.contains(&"Dir::Cache=/tmp/apt/cache"));
    }

    #[test]
    fn finds_the_downloaded_package() {
        let scratch = crate::testing::scratch();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "docker-buildx_0.13.1+ds1-3_amd64.deb",
            "docker-buildx-doc_1_all.deb",
            "other_1_amd64.deb",
        ] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let deb = newest_deb(&dir, "docker-buildx").unwrap();
        assert!(deb.ends_with("docker-buildx_0.13.1+ds1-3_amd64.deb"));
        assert!(newest_deb(&dir, "missing").is_err());
    }
}

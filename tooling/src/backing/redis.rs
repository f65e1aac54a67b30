//! Redis where no registry is reachable: Debian 13's `redis-server`
//! unpacked into a local image that runs it in the foreground, as nobody,
//! keeping nothing on disk (a test's backing service lives as long as the
//! test).

use std::path::Path;

use xshell::Shell;

use crate::docker::Docker;
use crate::stand_ins::{self, PackageImage};

/// `/tmp` for redis's working directory; nothing else is written.
const SETUP: &str = r#"root=$1
mkdir -p "$root/tmp"
chmod 1777 "$root/tmp"
rm -rf "$root/usr/share/doc" "$root/usr/share/man"
"#;

/// Makes the image unless the engine has it, and names it.
pub fn image(sh: &Shell, docker: &Docker, root: &Path) -> anyhow::Result<String> {
    stand_ins::package_image(
        sh,
        docker,
        root,
        &PackageImage {
            name: "redis",
            packages: &["redis-server"],
            files: &[],
            setup: SETUP,
            changes: &[
                "USER 65534:65534",
                "WORKDIR /tmp",
                "EXPOSE 6379",
                r#"ENTRYPOINT ["/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", "/tmp"]"#,
            ],
        },
    )
}

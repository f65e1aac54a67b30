//! PostgreSQL where no registry is reachable, for backing services and the
//! compose file: Debian 13's `postgresql-17` unpacked into a local image
//! that keeps the official image's contract (`POSTGRES_USER`,
//! `POSTGRES_PASSWORD`, `POSTGRES_DB`, data in /var/lib/postgresql/data,
//! `pg_isready` and `psql` on PATH).

use std::path::Path;

use xshell::Shell;

use crate::docker::Docker;
use crate::stand_ins::{self, PackageImage};

const ENTRYPOINT: &str = include_str!("postgres-entrypoint.sh");
const SETUP: &str = include_str!("postgres-setup.sh");

/// Makes the image unless the engine has it, and names it.
pub fn image(sh: &Shell, docker: &Docker, root: &Path) -> anyhow::Result<String> {
    stand_ins::package_image(
        sh,
        docker,
        root,
        &PackageImage {
            name: "postgres",
            // dash and coreutils for the entrypoint script.
            packages: &["dash", "coreutils", "postgresql-17"],
            files: &[("/usr/local/bin/docker-entrypoint.sh", ENTRYPOINT)],
            setup: SETUP,
            changes: &[
                "ENV PATH=/usr/lib/postgresql/17/bin:/usr/local/bin:/usr/bin:/bin",
                "ENV PGDATA=/var/lib/postgresql/data",
                "USER 999:999",
                "EXPOSE 5432",
                r#"ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]"#,
            ],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entrypoint_keeps_the_official_images_contract() {
        for variable in [
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "POSTGRES_DB",
            "PGDATA",
        ] {
            assert!(ENTRYPOINT.contains(variable), "{variable}");
        }
        assert!(ENTRYPOINT.contains("exec postgres"));
        assert!(SETUP.contains("chown -R 999:999"));
    }
}

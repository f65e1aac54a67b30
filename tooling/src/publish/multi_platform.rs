//! `publish --platform A,B`: the image (`--image`, else the last build)
//! built again, with the options it was built with, for each platform into
//! one OCI archive (an index over one manifest a platform),
//! then copied to the registry with skopeo, index and all. The digest
//! pushed is the archive's: the one a reproducible build gives.

use std::path::Path;

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::checks::Check;
use crate::docker::oci_layout::OciLayout;
use crate::flags;
use crate::last_build::ImageReport;
use crate::metadata::{Metadata, Runtime};
use crate::output;
use crate::process;
use crate::tools::{self, Tool};

/// What the push left in the registry.
pub struct Pushed {
    pub digest: String,
    pub check: Check,
}

/// Builds the archive, pushes it under each tag, and judges what the
/// registry then serves under each.
pub fn push(
    sh: &Shell,
    metadata: &Metadata,
    build: &ImageReport,
    platforms: &str,
    (repository, tags): (&str, &[String]),
    insecure: bool,
) -> anyhow::Result<Pushed> {
    let root = sh.current_dir();
    let skopeo = tools::require(sh, Tool::Skopeo)?.path;
    let image = flags::Image {
        tags: vec![format!("{repository}:{}", tags[0])],
        optimize: build.optimize,
        no_cache: false,
        platform: Some(platforms.to_owned()),
        cache_from: Vec::new(),
        cache_to: Vec::new(),
        offline: build.offline,
        runtime: Some(if build.runtime_image == "minimal" {
            Runtime::Minimal
        } else {
            Runtime::Distroless
        }),
        check_reproducible: None,
    };
    eprintln!(
        "publish: building {} again for {platforms}, into one index",
        build.reference()
    );
    // Its own shell: the build may go to another engine, the rest may not.
    let archive = image.build_archive(
        &sh.clone(),
        metadata,
        &root.join("target/xtask/publish/image.tar"),
    )?;
    let layout = OciLayout::read(&archive)?;
    let wanted = platforms.split(',').count();

    let tls = format!("--dest-tls-verify={}", !insecure);
    let source = format!("oci-archive:{}", archive.display());
    let mut served = Vec::new();
    for tag in tags {
        let destination = format!("docker://{repository}:{tag}");
        eprintln!("publish: copying the index to {destination}");
        process::run(cmd!(sh, "{skopeo} copy --all {tls} {source} {destination}"))
            .with_context(|| format!("skopeo could not push to {destination}"))?;
        served.push(served_digest(sh, &skopeo, &destination, insecure)?);
    }
    let all_served = served.iter().all(|digest| *digest == layout.digest);
    Ok(Pushed {
        check: Check::judge(
            "pushed",
            all_served && layout.images.len() == wanted,
            format!(
                "{} tags at {}, {} of {} platforms ({})",
                tags.len(),
                output::digest(&layout.digest),
                build.reference(),
                layout.images.len(),
                layout
                    .images
                    .iter()
                    .filter_map(|image| image.platform.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("every tag at the archive's index, of {wanted} platforms"),
        ),
        digest: layout.digest,
    })
}

/// The digest the registry serves under a reference.
fn served_digest(
    sh: &Shell,
    skopeo: &Path,
    reference: &str,
    insecure: bool,
) -> anyhow::Result<String> {
    let tls = format!("--tls-verify={}", !insecure);
    let format = "{{.Digest}}";
    let digest = process::read(cmd!(
        sh,
        "{skopeo} inspect {tls} --format {format} {reference}"
    ))
    .with_context(|| format!("cannot read back {reference}"))?;
    Ok(digest.trim().to_owned())
}

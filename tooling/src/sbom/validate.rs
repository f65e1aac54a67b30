//! Each document checked by its format's own validator: `pyspdxtools`
//! (spdx-tools) for SPDX, the CycloneDX library's strict JSON schema check
//! for CycloneDX. A validator that cannot run fails the check.

use std::path::Path;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::checks::Check;
use crate::process;
use crate::tools::{self, Tool};

pub fn spdx(sh: &Shell, path: &Path) -> Check {
    let result = (|| {
        tools::require(sh, Tool::SpdxTools)?;
        let output = cmd!(sh, "pyspdxtools --infile {path}")
            .quiet()
            .ignore_status()
            .output()
            .context("cannot run pyspdxtools")?;
        let said = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || said.contains("invalid") {
            bail!("{}", issues(&said));
        }
        Ok(())
    })();
    judged("SPDX 2.3 valid", "pyspdxtools finds no issue", result)
}

/// The validator in Python, as the library documents it.
const CYCLONEDX_VALIDATOR: &str = "\
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
if error:
    sys.exit(str(error).splitlines()[0])
";

pub fn cyclonedx(sh: &Shell, path: &Path) -> Check {
    let result = (|| {
        let python = tools::require(sh, Tool::CycloneDx)?.path;
        process::read(cmd!(sh, "{python} -c {CYCLONEDX_VALIDATOR} {path}"))
            .map(drop)
            .context("the CycloneDX 1.6 schema rejects it")
    })();
    judged(
        "CycloneDX 1.6 valid",
        "the 1.6 JSON schema (strict) accepts it",
        result,
    )
}

fn judged(name: &str, expected: &str, result: anyhow::Result<()>) -> Check {
    match result {
        Ok(()) => Check::judge(name, true, "valid", expected),
        Err(error) => Check::broken(name, expected, &error),
    }
}

/// pyspdxtools lists each issue on its own line after a header line.
fn issues(said: &str) -> String {
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("ERROR:root"))
        .collect();
    match lines.as_slice() {
        [] => "pyspdxtools rejected it".to_owned(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

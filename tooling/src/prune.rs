//! `cargo xtask prune`: removes the offline stand-ins the engine keeps (the
//! builder, runtime, vendor and service images `--offline` makes), least
//! recently used first, until the rest fit the budget.

use xshell::Shell;

use crate::checks::{Check, Verdict};
use crate::docker::Docker;
use crate::flags;
use crate::output;
use crate::stand_ins::{REPOSITORY, usage};

impl flags::Prune {
    pub(crate) fn run(self, sh: &Shell) -> anyhow::Result<Verdict> {
        let docker = Docker::connect(sh)?;
        let stand_ins = list(sh, &docker)?;
        let total: u64 = stand_ins.iter().map(|s| s.bytes).sum();
        let chosen = usage::to_remove(&stand_ins, self.budget);
        let mut table =
            output::Table::new(&["stand-in", "size", "last used", ""]).right_align(&[1]);
        let mut removed_bytes = 0;
        let mut failures = Vec::new();
        for stand_in in &stand_ins {
            let goes = chosen.iter().any(|c| c.reference == stand_in.reference);
            let action = match (goes, self.dry_run) {
                (false, _) => "kept",
                (true, true) => "would remove",
                (true, false) => match docker.remove_image(sh, &stand_in.reference) {
                    Ok(()) => {
                        removed_bytes += stand_in.bytes;
                        "removed"
                    }
                    Err(error) => {
                        failures.push(format!("{error:#}"));
                        "not removed"
                    }
                },
            };
            let last_used = if stand_in.last_used == 0 {
                "never recorded".to_owned()
            } else {
                crate::git::rfc3339_utc(i64::try_from(stand_in.last_used).unwrap_or(0))
            };
            table.row([
                stand_in.reference.clone(),
                output::size(stand_in.bytes),
                last_used,
                action.to_owned(),
            ]);
        }
        let left = total - removed_bytes;
        let check = Check::judge(
            "within the budget",
            self.dry_run || (failures.is_empty() && left <= self.budget),
            format!(
                "{} of stand-ins{}",
                output::size(left),
                if self.dry_run { " (dry run)" } else { "" }
            ),
            format!("at most {}", output::size(self.budget)),
        )
        .because(failures.join("; "));
        Ok(Verdict {
            text: table.render(),
            headline: format!(
                "{} stand-ins, {} removed, {} left",
                stand_ins.len(),
                output::size(removed_bytes),
                output::size(left)
            ),
            checks: vec![check],
            ..Verdict::new("prune", REPOSITORY)
        })
    }
}

/// Every stand-in the engine has, with its size and last use.
fn list(sh: &Shell, docker: &Docker) -> anyhow::Result<Vec<usage::StandIn>> {
    let uses = usage::last_uses();
    let listing = docker.output(sh, ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])?;
    let prefix = format!("{REPOSITORY}/");
    let mut stand_ins = Vec::new();
    for reference in listing.lines().filter(|line| line.starts_with(&prefix)) {
        let size = docker.output(sh, ["image", "inspect", "--format", "{{.Size}}", reference])?;
        stand_ins.push(usage::StandIn {
            reference: reference.to_owned(),
            bytes: size.trim().parse().unwrap_or(0),
            last_used: uses.get(reference).copied().unwrap_or(0),
        });
    }
    stand_ins.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(stand_ins)
}

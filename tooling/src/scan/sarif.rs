//! One SARIF 2.1.0 log for code scanning: each scanner's own SARIF run,
//! tagged with the subject and step it came from. GitHub refuses two runs
//! of one tool in one upload unless their categories (`automationDetails.id`)
//! differ; trivy makes three runs per image, and both images are scanned.

use serde_json::{Value, json};

/// `(step, a tool's SARIF log)` → one log with every run.
pub fn merge(subject: &str, logs: &[(&str, &Value)]) -> anyhow::Result<Value> {
    let mut runs = Vec::new();
    for (step, log) in logs {
        let Some(their_runs) = log["runs"].as_array() else {
            anyhow::bail!("the SARIF of {step} has no runs");
        };
        for run in their_runs {
            let mut run = run.clone();
            run["automationDetails"] = json!({"id": format!("xtask-scan/{subject}/{step}/")});
            runs.push(run);
        }
    }
    Ok(json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": runs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_keeps_its_tool_and_gets_its_steps_category() {
        let trivy = json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Trivy"}}, "results": []}]});
        let deny = json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "cargo-deny"}}, "results": []}]});
        let log = merge(
            "server-1",
            &[("vuln", &trivy), ("config", &trivy), ("deny", &deny)],
        )
        .unwrap();
        let runs = log["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(
            runs[1]["automationDetails"]["id"],
            "xtask-scan/server-1/config/"
        );
        assert_eq!(runs[2]["tool"]["driver"]["name"], "cargo-deny");
        assert!(merge("x", &[("broken", &json!({"runs": null}))]).is_err());
    }
}

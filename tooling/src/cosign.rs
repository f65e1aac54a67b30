//! cosign's command lines: signing, attesting, verifying, by key or by the
//! CI's identity (keyless). Pure where it can be, so the arguments are
//! tested without a registry.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use xshell::{Shell, cmd};

use crate::checks::Check;
use crate::output;
use crate::process;

/// How signatures are made and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A key pair: the private key (a file, or anything cosign reads such as
    /// `env://COSIGN_PRIVATE_KEY`) and the public key to verify with.
    Key { private: String, public: PathBuf },
    /// The CI's OIDC identity through Fulcio, logged in Rekor: the identity
    /// is the workflow file at its ref.
    Keyless { identity: String, issuer: String },
}

/// GitHub's OIDC issuer, for keyless signing in its workflows.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

impl Signer {
    /// A key pair; the public key defaults to the private key's `.pub` twin.
    pub fn key(private: &str, public: Option<&Path>) -> anyhow::Result<Signer> {
        let public = if let Some(path) = public {
            path.to_path_buf()
        } else {
            let path = Path::new(private);
            if private.contains("://") || path.extension().is_none_or(|e| e != "key") {
                anyhow::bail!("cannot tell the public key of {private}: give --public-key");
            }
            path.with_extension("pub")
        };
        if !public.is_file() {
            anyhow::bail!("no public key at {} to verify with", public.display());
        }
        Ok(Signer::Key {
            private: private.to_owned(),
            public,
        })
    }

    /// The workflow's identity from GitHub Actions' environment.
    pub fn github_keyless() -> anyhow::Result<Signer> {
        let server = std::env::var("GITHUB_SERVER_URL").context(
            "--keyless signs with GitHub Actions' identity: GITHUB_SERVER_URL is not set",
        )?;
        let workflow = std::env::var("GITHUB_WORKFLOW_REF")
            .context("--keyless: GITHUB_WORKFLOW_REF is not set")?;
        if std::env::var_os("ACTIONS_ID_TOKEN_REQUEST_URL").is_none() {
            anyhow::bail!(
                "--keyless needs the workflow's OIDC token: give the job `id-token: write`"
            );
        }
        Ok(Signer::Keyless {
            identity: format!("{server}/{workflow}"),
            issuer: GITHUB_ISSUER.to_owned(),
        })
    }

    fn describe(&self) -> String {
        match self {
            Signer::Key { public, .. } => format!("key {}", public.display()),
            Signer::Keyless { identity, .. } => format!("keyless as {identity}"),
        }
    }
}

/// What one call needs besides its subcommand.
pub struct Cosign<'a> {
    pub program: &'a Path,
    pub signer: &'a Signer,
    /// A registry on loopback speaks plain HTTP.
    pub insecure: bool,
    /// Sign an index's manifests too.
    pub recursive: bool,
}

impl Cosign<'_> {
    /// `sign`, `attest`: the key, and with a key no transparency log, which
    /// is a public service this kind of key does not need.
    fn signing_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--yes".into()];
        if let Signer::Key { private, .. } = self.signer {
            args.extend(["--key".into(), private.into(), "--tlog-upload=false".into()]);
        }
        args.extend(self.registry_args());
        args
    }

    fn verifying_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = match self.signer {
            Signer::Key { public, .. } => vec![
                "--key".into(),
                public.into(),
                "--insecure-ignore-tlog=true".into(),
            ],
            Signer::Keyless { identity, issuer } => vec![
                "--certificate-identity".into(),
                identity.into(),
                "--certificate-oidc-issuer".into(),
                issuer.into(),
            ],
        };
        args.extend(self.registry_args());
        args
    }

    fn registry_args(&self) -> Vec<OsString> {
        if self.insecure {
            vec![
                "--allow-insecure-registry".into(),
                "--allow-http-registry".into(),
            ]
        } else {
            Vec::new()
        }
    }

    pub fn sign(&self, sh: &Shell, subject: &str) -> anyhow::Result<()> {
        let (program, mut args) = (self.program, self.signing_args());
        if self.recursive {
            args.push("--recursive".into());
        }
        process::run(cmd!(sh, "{program} sign {args...} {subject}")).with_context(|| {
            format!(
                "cosign could not sign {subject} ({})",
                self.signer.describe()
            )
        })
    }

    pub fn attest(
        &self,
        sh: &Shell,
        subject: &str,
        predicate: &Path,
        kind: &str,
    ) -> anyhow::Result<()> {
        let (program, args) = (self.program, self.signing_args());
        process::run(cmd!(
            sh,
            "{program} attest {args...} --type {kind} --predicate {predicate} {subject}"
        ))
        .with_context(|| {
            format!(
                "cosign could not attest {} to {subject}",
                predicate.display()
            )
        })
    }

    /// The manifest digests the verified signatures name.
    pub fn verify(&self, sh: &Shell, subject: &str) -> anyhow::Result<Vec<String>> {
        let (program, args) = (self.program, self.verifying_args());
        let output =
            process::read(cmd!(sh, "{program} verify {args...} {subject}")).with_context(|| {
                format!(
                    "the signature of {subject} does not verify ({})",
                    self.signer.describe()
                )
            })?;
        signed_digests(&output)
    }

    /// The subjects' digests and the predicate type of the verified
    /// attestations of `kind`.
    pub fn verify_attestation(
        &self,
        sh: &Shell,
        subject: &str,
        kind: &str,
    ) -> anyhow::Result<Vec<Statement>> {
        let (program, args) = (self.program, self.verifying_args());
        let output = process::read(cmd!(
            sh,
            "{program} verify-attestation {args...} --type {kind} {subject}"
        ))
        .with_context(|| format!("the {kind} attestation of {subject} does not verify"))?;
        attested_statements(&output)
    }
}

/// `cosign verify` prints a JSON array of simple-signing payloads.
fn signed_digests(output: &str) -> anyhow::Result<Vec<String>> {
    let payloads: Vec<serde_json::Value> = output
        .lines()
        .filter(|line| line.trim_start().starts_with('['))
        .map(serde_json::from_str::<Vec<serde_json::Value>>)
        .collect::<Result<Vec<_>, _>>()
        .context("cosign verify printed no signature payloads")?
        .into_iter()
        .flatten()
        .collect();
    let digests: Vec<String> = payloads
        .iter()
        .filter_map(|p| p["critical"]["image"]["docker-manifest-digest"].as_str())
        .map(str::to_owned)
        .collect();
    if digests.is_empty() {
        anyhow::bail!("cosign verify named no image digest");
    }
    Ok(digests)
}

/// One verified in-toto statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub predicate_type: String,
    pub subject_digests: Vec<String>,
    pub predicate: serde_json::Value,
}

/// `cosign verify-attestation` prints one DSSE envelope per line, whose
/// base64 payload is the in-toto statement.
fn attested_statements(output: &str) -> anyhow::Result<Vec<Statement>> {
    let mut statements = Vec::new();
    for line in output
        .lines()
        .filter(|line| line.trim_start().starts_with('{'))
    {
        let envelope: serde_json::Value =
            serde_json::from_str(line).context("cosign printed a malformed envelope")?;
        let payload = envelope["payload"]
            .as_str()
            .context("an attestation envelope has no payload")?;
        let statement: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(payload)
                .context("an attestation payload is not base64")?,
        )
        .context("an attestation payload is not JSON")?;
        statements.push(Statement {
            predicate_type: statement["predicateType"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            subject_digests: statement["subject"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["digest"]["sha256"].as_str())
                .map(|hex| format!("sha256:{hex}"))
                .collect(),
            predicate: statement["predicate"].clone(),
        });
    }
    if statements.is_empty() {
        anyhow::bail!("cosign verify-attestation printed no attestation");
    }
    Ok(statements)
}

/// `cosign verify` of `subject` judged: a valid signature of `digest`.
pub(crate) fn signature_check(
    name: &str,
    sh: &Shell,
    cosign: &Cosign<'_>,
    subject: &str,
    digest: &str,
) -> Check {
    match cosign.verify(sh, subject) {
        Ok(verified) => Check::judge(
            name,
            verified.iter().any(|d| d == digest),
            verified
                .iter()
                .map(|d| output::digest(d))
                .collect::<Vec<_>>()
                .join(", "),
            format!(
                "a valid signature of {} for {subject}",
                output::digest(digest)
            ),
        ),
        Err(error) => {
            Check::judge(name, false, "no", "a valid signature").because(format!("{error:#}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn a_key_signs_without_the_public_log_and_verifies_with_its_twin() {
        let signer = Signer::Key {
            private: "cosign.key".into(),
            public: "cosign.pub".into(),
        };
        let cosign = Cosign {
            program: Path::new("cosign"),
            signer: &signer,
            insecure: true,
            recursive: false,
        };
        assert_eq!(
            words(&cosign.signing_args()),
            [
                "--yes",
                "--key",
                "cosign.key",
                "--tlog-upload=false",
                "--allow-insecure-registry",
                "--allow-http-registry"
            ]
        );
        assert_eq!(
            words(&cosign.verifying_args())[..3],
            ["--key", "cosign.pub", "--insecure-ignore-tlog=true"]
        );
    }

    #[test]
    fn keyless_verifies_the_workflow_identity() {
        let signer = Signer::Keyless {
            identity: "https://github.com/acme/svc/.github/workflows/ci.yml@refs/heads/main".into(),
            issuer: GITHUB_ISSUER.into(),
        };
        let cosign = Cosign {
            program: Path::new("cosign"),
            signer: &signer,
            insecure: false,
            recursive: false,
        };
        assert_eq!(words(&cosign.signing_args()), ["--yes"]);
        let verify = cosign.verifying_args();
        let verify = words(&verify);
        assert!(
            verify
                .windows(2)
                .any(|w| w[0] == "--certificate-oidc-issuer" && w[1] == GITHUB_ISSUER)
        );
    }

    #[test]
    fn a_private_key_without_a_public_twin_is_refused() {
        let error = Signer::key("env://COSIGN_PRIVATE_KEY", None).unwrap_err();
        assert!(error.to_string().contains("--public-key"), "{error}");
        let error = Signer::key("/nonexistent/cosign.key", None).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/cosign.pub"),
            "{error}"
        );
    }

    #[test]
    fn reads_the_digest_cosign_verified() {
        let output = r#"
[{"critical":{"identity":{"docker-reference":"127.0.0.1:5055/server"},"image":{"docker-manifest-digest":"sha256:a6a8"},"type":"cosign container image signature"},"optional":null}]
"#;
        assert_eq!(signed_digests(output).unwrap(), ["sha256:a6a8"]);
        assert!(signed_digests("[]").is_err());
        assert!(signed_digests("").is_err());
    }

    #[test]
    fn reads_the_statement_inside_an_attestation_envelope() {
        let statement = r#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[{"name":"127.0.0.1:5055/server","digest":{"sha256":"a6a8"}}],"predicate":{}}"#;
        let payload = base64::engine::general_purpose::STANDARD.encode(statement);
        let output = format!(
            "{{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"{payload}\",\"signatures\":[]}}\n"
        );
        assert_eq!(
            attested_statements(&output).unwrap(),
            [Statement {
                predicate: serde_json::json!({}),
                predicate_type: "https://spdx.dev/Document".into(),
                subject_digests: vec!["sha256:a6a8".into()],
            }]
        );
        assert!(attested_statements("{\"payload\":\"!!\"}").is_err());
    }
}

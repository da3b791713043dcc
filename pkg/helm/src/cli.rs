//! Driving the Helm 3 CLI as a subprocess.
//!
//! Every call is an argument vector (never a shell string) run with `tokio::process`, killed
//! when the runner is cancelled. The cluster and storage are passed explicitly: `--kubeconfig`
//! when `KUBECONFIG` names one file (otherwise Helm reads `KUBECONFIG`, or the in-cluster
//! configuration, itself), `--namespace`, `--timeout`, and `HELM_DRIVER` /
//! `HELM_REPOSITORY_CACHE` in its environment. Values only ever reach Helm in files.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use action_runner::RunnerError;
use action_runner::error::one_line;

/// Replaces secrets (the string leaves of the values) in text shown to the user.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Values shorter than this are not redacted: replacing every `a` or `80` in a message would
/// make it unreadable without hiding anything worth hiding.
pub const MIN_SECRET_LEN: usize = 4;

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Adds every string leaf of `value` (at least [`MIN_SECRET_LEN`] characters; numbers and
    /// booleans too when that long) as a secret.
    pub fn add_values(&mut self, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(s) => self.add(s),
            serde_json::Value::Number(n) => self.add(&n.to_string()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| self.add_values(v)),
            serde_json::Value::Object(m) => m.values().for_each(|v| self.add_values(v)),
            _ => {}
        }
    }

    /// Adds one secret; each of its lines counts separately too (Helm may show one line).
    pub fn add(&mut self, secret: &str) {
        for s in std::iter::once(secret).chain(secret.lines()) {
            let s = s.trim();
            if s.chars().count() >= MIN_SECRET_LEN && !self.secrets.iter().any(|x| x == s) {
                self.secrets.push(s.to_string());
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

/// How to run helm.
#[derive(Debug, Clone)]
pub struct Helm {
    /// The helm binary.
    pub binary: PathBuf,
    /// `HELM_DRIVER`.
    pub driver: String,
    /// `HELM_REPOSITORY_CACHE`.
    pub repository_cache: PathBuf,
    /// `--kubeconfig`, when `KUBECONFIG` names a single file.
    pub kubeconfig: Option<PathBuf>,
    /// `--timeout`, from `RUNNER_TIMEOUT`.
    pub timeout: Option<Duration>,
    /// Applied to everything Helm prints before it is shown.
    pub redactor: Redactor,
}

/// Which exit code a failed Helm call maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The cluster refused the credentials or the request for good (exit 3).
    Cluster,
    /// The cluster could not be reached or was briefly unable to answer (exit 4: retrying may
    /// help).
    Unavailable,
    /// Anything else: the operation failed (exit 1).
    Failed,
}

/// Classifies Helm's error text. Helm exits 1 for every error, so its message is read: the
/// texts of [`Failure::Unavailable`] come from client-go and Go's `net` package (dial errors,
/// TLS, DNS), Helm's `Kubernetes cluster unreachable` and the API server's 503; those of
/// [`Failure::Cluster`] are the API server's answers to bad or insufficient credentials.
pub fn classify(message: &str) -> Failure {
    const UNAVAILABLE: [&str; 10] = [
        "kubernetes cluster unreachable",
        "connection refused",
        "no such host",
        "i/o timeout",
        "tls handshake timeout",
        "connection reset by peer",
        "network is unreachable",
        "no route to host",
        "unable to connect to the server",
        "the server is currently unable to handle the request",
    ];
    const CLUSTER: [&str; 3] = [
        "the server has asked for the client to provide credentials",
        "unauthorized",
        "is forbidden",
    ];
    let lower = message.to_ascii_lowercase();
    if CLUSTER.iter().any(|p| lower.contains(p)) {
        Failure::Cluster
    } else if UNAVAILABLE.iter().any(|p| lower.contains(p)) {
        Failure::Unavailable
    } else {
        Failure::Failed
    }
}

/// Helm's error output as one line: `Error: ` prefixes dropped, lines joined with `; `.
pub fn error_text(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Use --debug flag"))
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .collect();
    one_line(&lines.join("\n"))
}

impl Helm {
    /// The base command: binary, environment, no stdin, piped output, killed on drop.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.env("HELM_DRIVER", &self.driver)
            .env("HELM_REPOSITORY_CACHE", &self.repository_cache)
            .env_remove("HELM_DEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// The flags that point helm at the cluster: `--kubeconfig` (if any), `--namespace`, and
    /// `--timeout` (if `RUNNER_TIMEOUT` is set, in milliseconds, a Go duration).
    pub fn cluster_args(&self, namespace: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(kc) = &self.kubeconfig {
            args.push("--kubeconfig".into());
            args.push(kc.clone().into());
        }
        args.push("--namespace".into());
        args.push(namespace.into());
        if let Some(t) = self.timeout {
            args.push("--timeout".into());
            args.push(format!("{}ms", t.as_millis().max(1)).into());
        }
        args
    }

    /// Runs `helm <args>`; returns its standard output. `what` prefixes errors (for example
    /// `helm install`).
    ///
    /// # Errors
    /// [`ErrorKind::Cluster`](action_runner::error::ErrorKind) when helm cannot be started or
    /// the cluster refuses the credentials, [`ErrorKind::Unavailable`](action_runner::error::ErrorKind)
    /// when it cannot be reached, [`ErrorKind::Failed`](action_runner::error::ErrorKind) for other
    /// failures; the message is Helm's, redacted.
    pub async fn run(&self, what: &str, args: &[OsString]) -> Result<Vec<u8>, RunnerError> {
        tracing::debug!(command = %self.redactor.redact(&format!("{} {}", self.binary.display(),
            args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "))), "running helm");
        let out = self.command().args(args).output().await.map_err(|e| {
            RunnerError::cluster(format!("{what}: cannot run {}", self.binary.display())).because(e)
        })?;
        let stderr = self.redactor.redact(&String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
                tracing::debug!(helm = %line, "{what}: helm said");
            }
            return Ok(out.stdout);
        }
        let text = match error_text(&stderr) {
            t if t.is_empty() => format!("helm exited with {}", out.status),
            t => t,
        };
        Err(match classify(&text) {
            Failure::Cluster => RunnerError::cluster(format!("{what}: {text}")),
            Failure::Unavailable => RunnerError::unavailable(format!("{what}: {text}")),
            Failure::Failed => RunnerError::failed(format!("{what}: {text}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_values() {
        let mut r = Redactor::default();
        r.add_values(
            &json!({"db": {"password": "hunter22", "port": 5432, "short": "ab"},
            "list": ["tok-123456"], "multi": "line one\nline two"}),
        );
        let text = "failed: hunter22 and tok-123456 on 5432 ab line two";
        assert_eq!(
            r.redact(text),
            "failed: <redacted> and <redacted> on <redacted> ab <redacted>"
        );
    }

    #[test]
    fn classifies_helm_errors() {
        for (msg, want) in [
            (
                "INSTALLATION FAILED: Kubernetes cluster unreachable: Get \"https://127.0.0.1:1/version\": dial tcp 127.0.0.1:1: connect: connection refused",
                Failure::Unavailable,
            ),
            (
                "INSTALLATION FAILED: secrets is forbidden: User \"x\" cannot list resource",
                Failure::Cluster,
            ),
            (
                "INSTALLATION FAILED: YAML parse error on x/templates/a.yaml",
                Failure::Failed,
            ),
            (
                "chart \"c\" version \"9.9.9\" not found in http://127.0.0.1:1 repository",
                Failure::Failed,
            ),
        ] {
            assert_eq!(classify(msg), want, "{msg}");
        }
    }

    #[test]
    fn error_text_is_one_line() {
        assert_eq!(
            error_text(
                "Error: INSTALLATION FAILED: a\nb\nUse --debug flag to render out invalid YAML\n"
            ),
            "INSTALLATION FAILED: a; b"
        );
    }
}

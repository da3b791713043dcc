//! Errors of the framework and of runners, and the exit code each one maps to.

use std::process::ExitCode;

/// Exit codes of a runner process. Documented in the README; stable across releases.
///
/// | code | meaning |
/// |------|---------|
/// | 0    | the action succeeded |
/// | 1    | the action ran and failed, or `RUNNER_TIMEOUT` elapsed |
/// | 2    | invalid input or configuration; nothing was written to the cluster |
/// | 3    | cluster or API error (unreachable, no kubeconfig, forbidden, ...) |
/// | 130  | stopped by SIGINT (128 + 2) |
/// | 143  | stopped by SIGTERM (128 + 15), as Kubernetes sends it when a pod is deleted |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0: the action succeeded.
    Succeeded = 0,
    /// 1: the action ran and failed, or timed out.
    Failed = 1,
    /// 2: invalid input or configuration; nothing was written to the cluster.
    InvalidInput = 2,
    /// 3: cluster or API error.
    Cluster = 3,
    /// 130: SIGINT.
    Interrupted = 130,
    /// 143: SIGTERM.
    Terminated = 143,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error a runner (or the framework) returns. The variant decides the exit code; the text is
/// a single line shown to the user, so it must name the variable, file or field at fault and must
/// never contain secrets (Helm values, tokens).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The input manifest or the configuration is invalid (exit code 2). Returned only before
    /// anything was written to the cluster.
    #[error("{0}")]
    InvalidInput(String),
    /// The cluster could not be reached, or answered with an error other than one caused by the
    /// input (exit code 3).
    #[error("{0}")]
    Cluster(String),
    /// The action ran and failed (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl RunnerError {
    /// The process exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            RunnerError::InvalidInput(_) => Exit::InvalidInput,
            RunnerError::Cluster(_) => Exit::Cluster,
            RunnerError::Failed(_) => Exit::Failed,
        }
    }

    /// Classifies an error from the Kubernetes API, prefixing it with `what` (for example
    /// `create Workflow default/x`). The API server's answers `400 BadRequest` and
    /// `422 Invalid` are about the object sent, so they become [`RunnerError::InvalidInput`]
    /// (the API server wrote nothing); everything else is a [`RunnerError::Cluster`] error.
    /// The API server's own message is kept, since it names the verb and resource of a
    /// `403 Forbidden`.
    pub fn from_kube(what: &str, err: &kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if matches!(status.code, 400 | 422) => {
                RunnerError::InvalidInput(format!("{what}: {}", one_line(&status.message)))
            }
            kube::Error::Api(status) => RunnerError::Cluster(format!(
                "{what}: {} ({} {})",
                one_line(&status.message),
                status.code,
                status.reason
            )),
            other => RunnerError::Cluster(format!("{what}: {}", one_line(&error_chain(other)))),
        }
    }
}

/// `err` and its sources, joined with `: ` (for example `ServiceError: client error (Connect):
/// tcp connect error: Connection refused (os error 111)`), without repeating a source whose text
/// its parent already includes.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Folds a possibly multi-line message into one line (newlines become `; `).
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

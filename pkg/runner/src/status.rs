//! The status document a runner reports, and where it is reported to.

use std::future::Future;
use std::time::Duration;

use backon::Retryable;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::error::RunnerError;

/// Key of the status ConfigMap under which the status JSON is stored.
pub const STATUS_KEY: &str = "status";

/// Overall phase of an action, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Started; waiting for completion.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished unsuccessfully, timed out, was cancelled, or could not be observed.
    Failed,
}

/// Why an action is in its phase (set once it has finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The action finished; `phase` tells how.
    Completed,
    /// `RUNNER_TIMEOUT` elapsed before the action finished (the action is left running).
    DeadlineExceeded,
    /// The runner received SIGTERM or SIGINT and stopped waiting.
    Cancelled,
    /// The runner could not start the action or observe its outcome.
    Error,
}

/// The status document, stored as JSON under key `status` of the status ConfigMap.
///
/// Example, at the end of a successful Argo run:
/// `{"runner":"argo","contextName":"act-1","phase":"Succeeded","reason":"Completed",
/// "message":"...","dryRun":false,"startedAt":"2026-11-21T10:00:00Z",
/// "finishedAt":"2026-11-21T10:00:09Z","runnerStatus":{"argoWorkflowRef":{...}}}`.
/// Times are RFC 3339 in UTC with second precision, like Kubernetes' `metav1.Time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionStatus {
    /// The runner's [`name`](crate::ActionRunner::name).
    pub runner: String,
    /// `RUNNER_CONTEXT_NAME`.
    pub context_name: String,
    /// Overall phase.
    pub phase: Phase,
    /// Set once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// One-line human-readable message (empty while running).
    #[serde(default)]
    pub message: String,
    /// `RUNNER_CONTEXT_DRY_RUN`.
    pub dry_run: bool,
    /// When the runner started the action.
    pub started_at: String,
    /// When the runner saw the action finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The runner's own start status ([`StartOutput::status`](crate::StartOutput)); `null` when
    /// the action could not be started.
    #[serde(default)]
    pub runner_status: serde_json::Value,
}

/// Current time as RFC 3339 UTC with second precision (`2026-11-21T10:00:00Z`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Where the [`Manager`](crate::Manager) reports status.
pub trait StatusReporter: Send + Sync {
    /// Checks, before anything is created, that reporting can work (for example that the status
    /// ConfigMap exists). Must not write.
    ///
    /// # Errors
    /// A [`RunnerError`] naming what is missing.
    fn check(&self) -> impl Future<Output = Result<(), RunnerError>> + Send {
        async { Ok(()) }
    }

    /// Reports `status`, replacing what was reported before.
    ///
    /// # Errors
    /// [`ErrorKind::Cluster`](crate::error::ErrorKind) when the status could not be written.
    fn report(&self, status: &ActionStatus)
    -> impl Future<Output = Result<(), RunnerError>> + Send;
}

/// Reports nothing; for runners that are not driven by an engine that reads status.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopReporter;

impl StatusReporter for NoopReporter {
    async fn report(&self, _status: &ActionStatus) -> Result<(), RunnerError> {
        Ok(())
    }
}

/// Writes the status as JSON under key `status` of the ConfigMap named `RUNNER_CONTEXT_NAME` in
/// the platform namespace. The ConfigMap must exist (the engine creates it). Writes are JSON
/// merge patches of that one key, so concurrent writers of other keys never conflict (no
/// `resourceVersion` precondition, hence no 409). Needs `get` and `patch` on that ConfigMap.
#[derive(Clone)]
pub struct ConfigMapReporter {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    retry_for: Duration,
}

impl ConfigMapReporter {
    /// A reporter for ConfigMap `namespace/name`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        ConfigMapReporter {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            name: name.into(),
            retry_for: REPORT_RETRY_FOR,
        }
    }

    /// The same reporter, retrying a write that gets no answer for at most `pauses` of pauses
    /// in all (default [`REPORT_RETRY_FOR`]).
    pub fn retrying_for(mut self, pauses: Duration) -> Self {
        self.retry_for = pauses;
        self
    }

    fn what(&self) -> String {
        format!("status ConfigMap {}/{}", self.namespace, self.name)
    }

    /// `op`, retried as [`report_backoff`] says while its error is [`transient`]; each retry
    /// is one `WARN` line saying what (`doing`) failed.
    async fn retried<T, Fut>(&self, doing: &str, op: impl FnMut() -> Fut) -> Result<T, kube::Error>
    where
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        op.retry(report_backoff(self.retry_for))
            .when(transient)
            .notify(|e, after| {
                tracing::warn!(error = %e, ?after, "{doing} failed; retrying");
            })
            .await
    }
}

/// How long a status write that gets no answer is retried by default (the pauses between its
/// attempts, added up).
pub const REPORT_RETRY_FOR: Duration = Duration::from_secs(60);

/// How a status write is retried: 200 ms doubling to at most 5 s apart, with jitter, for at
/// most `pauses` in all (by default [`REPORT_RETRY_FOR`]), only for what kube's client does not already retry (see
/// [`transient`]). 60 s outlasts an API server restart (measured: docs/faults.md), so the
/// final status is not lost to one; a progress write is bounded far shorter by the Manager,
/// which carries on without it.
fn report_backoff(pauses: Duration) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .with_total_delay(Some(pauses))
        .with_jitter()
}

impl StatusReporter for ConfigMapReporter {
    /// Retried as a status write is ([`report_backoff`], [`transient`]): a pod that starts
    /// while the API server is unreachable (a restart, a node reboot) waits for it rather than
    /// exiting 4 at once, which would spend one of the Job's `backoffLimit` retries in well
    /// under a second.
    async fn check(&self) -> Result<(), RunnerError> {
        let read = self
            .retried("reading the status ConfigMap", || {
                self.api.get_metadata_opt(&self.name)
            })
            .await;
        match read {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(RunnerError::invalid_input(format!(
                "{} not found: create it before running the runner (it receives the status)",
                self.what()
            ))),
            Err(e) => Err(RunnerError::from_kube(format!("get {}", self.what()), e)),
        }
    }

    async fn report(&self, status: &ActionStatus) -> Result<(), RunnerError> {
        let json = serde_json::to_string(status).expect("status serializes");
        let patch = serde_json::json!({ "data": { STATUS_KEY: json } });
        let params = PatchParams {
            field_manager: Some(format!("{}-runner", status.runner)),
            ..PatchParams::default()
        };
        let merge = Patch::Merge(&patch);
        // When the first attempt failed, so that a write that never gets through says since
        // when the cluster did not answer. Recorded by the attempt itself: with jitter, the
        // backoff may give up before its first pause, and then never notifies.
        let first_failure = std::sync::Mutex::new(None::<(String, std::time::Instant)>);
        let write = || async {
            let written = self.api.patch(&self.name, &params, &merge).await;
            if written.is_err() {
                first_failure
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert_with(|| (now_rfc3339(), std::time::Instant::now()));
            }
            written
        };
        let written = self.retried("reporting status", write).await;
        match written {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(RunnerError::cluster(format!("{} not found", self.what())))
            }
            Err(e) => {
                let since = match first_failure.into_inner().expect("not poisoned") {
                    Some((at, t)) => format!(
                        " (failing since {at}, retried for {} s)",
                        t.elapsed().as_secs()
                    ),
                    None => String::new(),
                };
                Err(RunnerError::from_kube(
                    format!("patch {}{since}", self.what()),
                    e,
                ))
            }
        }
    }
}

/// Whether a failed status write is worth retrying here: no answer at all (connection refused
/// or reset while the API server restarts), or a `500`/`502`. kube's client already retries
/// `429`, `503` and `504` itself (`kube::client::retry::RetryPolicy`), so retrying those here
/// would retry twice.
pub fn transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 500 | 502),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    /// A status write to an API server that never answers (a closed loopback port) is retried
    /// for its bound, then fails as retryable (exit 4), saying since when it failed.
    #[tokio::test]
    async fn a_write_that_never_gets_an_answer_says_since_when() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let reporter =
            ConfigMapReporter::new(client, "ns", "act").retrying_for(Duration::from_millis(300));
        let status: ActionStatus = serde_json::from_value(serde_json::json!({
            "runner": "test", "contextName": "act", "phase": "Running", "dryRun": false,
            "startedAt": now_rfc3339()
        }))
        .unwrap();
        let e = reporter.report(&status).await.unwrap_err();
        assert_eq!(e.exit(), Exit::Unavailable, "{e}");
        // The check before anything is written waits the same way, then says the same.
        let c = reporter.check().await.unwrap_err();
        assert_eq!(c.exit(), Exit::Unavailable, "{c}");
        let text = e.to_string();
        assert!(
            text.contains("status ConfigMap ns/act (failing since 20"),
            "{text}"
        );
    }
}

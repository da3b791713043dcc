//! `RUNNER_ARGO_LOGS=true`: the logs of the Workflow's pods' `main` containers, followed into
//! the runner's own log while it waits, one log event (a JSON line, unless
//! `RUNNER_LOGGER_DEV_MODE`) per line the step printed, with the node's and the pod's names, as
//! `argo submit --log` does.
//!
//! The pods are found with a watch on Argo's label `workflows.argoproj.io/workflow=<name>`; a
//! pod is followed once its `main` container has started (running or terminated). Needs `get`,
//! `list` and `watch` on `pods` and `get` on `pods/log` in the namespace (an opt-in Role in
//! `deploy/argo-runner/logs/`); without them one warning is logged and the wait goes on.
//! Following logs never fails the run.

use std::collections::HashSet;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Argo's label naming a pod's Workflow (`workflow/common/common.go`, `LabelKeyWorkflow`).
pub const WORKFLOW_LABEL: &str = "workflows.argoproj.io/workflow";
/// Argo's annotation naming a pod's node (`AnnotationKeyNodeName`).
pub const NODE_NAME_ANNOTATION: &str = "workflows.argoproj.io/node-name";
/// The container of a Workflow's pod that runs the step (Argo's `common.MainContainerName`).
pub const MAIN_CONTAINER: &str = "main";

/// How long, once the Workflow has finished, the streams still open may take to end (the last
/// lines of pods that just stopped) before they are cut.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest log line passed on, in bytes: 16 KiB, the length at which containerd splits a
/// container's log lines (`max_container_log_line_size`, 16384 by default; the kubelet joins the
/// pieces again when it serves the log). A longer line is cut there and marked (`... [line cut at
/// 16384 bytes]`); the rest of it is read and dropped, so one line without a line break never
/// fills the runner's memory (64Mi in `deploy/`).
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// The log follower of one Workflow; [`finish`](Self::finish) it when the wait is over.
pub struct LogFollower {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts following the logs of Workflow `workflow`'s pods in `namespace`.
pub fn follow(client: kube::Client, namespace: &str, workflow: &str) -> LogFollower {
    let (stop, stopped) = watch::channel(false);
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let task = tokio::spawn(run(pods, workflow.to_string(), stopped));
    LogFollower { stop, task }
}

impl LogFollower {
    /// Stops looking for new pods and gives the open streams [`DRAIN_TIMEOUT`] to end.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// Whether `pod`'s main container has started, so that its log can be read.
fn main_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == MAIN_CONTAINER)
        .filter_map(|c| c.state.as_ref())
        .any(|s| s.running.is_some() || s.terminated.is_some())
}

async fn run(pods: Api<Pod>, workflow: String, mut stopped: watch::Receiver<bool>) {
    let config = watcher::Config::default().labels(&format!("{WORKFLOW_LABEL}={workflow}"));
    let mut events = watcher::watcher(pods.clone(), config)
        .backoff(action_runner::client::watch_backoff())
        .applied_objects()
        .boxed();
    let mut followed = HashSet::new();
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            event = events.next() => match event {
                Some(Ok(pod)) => {
                    let Some(name) = pod.metadata.name.clone() else { continue };
                    if !main_started(&pod) || !followed.insert(name.clone()) {
                        continue;
                    }
                    let node = pod
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(NODE_NAME_ANNOTATION).cloned())
                        .unwrap_or_default();
                    streams.spawn(stream(pods.clone(), name, node));
                }
                Some(Err(e)) => {
                    if let watcher::Error::InitialListFailed(kube::Error::Api(s))
                    | watcher::Error::WatchStartFailed(kube::Error::Api(s)) = &e
                        && matches!(s.code, 401 | 403)
                    {
                        tracing::warn!(error = %s.message, "RUNNER_ARGO_LOGS: cannot watch the Workflow's pods; not following their logs (grant the Role in deploy/argo-runner/logs)");
                        return;
                    }
                    tracing::debug!(error = %e, "watching the Workflow's pods; resuming");
                }
                None => break,
            },
        }
    }
    drop(events);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while streams.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        streams.abort_all();
    }
}

/// Whether `line` is the executor's own (Argo's emissary wraps the step's command in the main
/// container and logs there too, in logfmt with `argo=true`), not the step's. Argo 3 logs
/// through logrus (`time="2026-11-22T10:58:00.375Z" level=info msg="sub-process exited"
/// argo=true error="<nil>"`), Argo 4 through Go's `log/slog` text handler
/// (`time=2026-11-29T19:35:15.534Z level=INFO msg="sub-process exited" argo=true error=<nil>`).
fn is_executor_line(line: &str) -> bool {
    line.starts_with("time=") && line.contains(" level=") && line.contains(" argo=true")
}

/// Follows pod `pod`'s main container's log to its end, one event per line.
async fn stream(pods: Api<Pod>, pod: String, node: String) {
    let params = LogParams {
        container: Some(MAIN_CONTAINER.into()),
        follow: true,
        ..LogParams::default()
    };
    let reader = match pods.log_stream(&pod, &params).await {
        Ok(reader) => reader,
        Err(e) => {
            tracing::warn!(pod = %pod, error = %e, "RUNNER_ARGO_LOGS: cannot read the pod's log");
            return;
        }
    };
    let mut reader = std::pin::pin!(reader);
    let mut buf = Vec::new();
    loop {
        match next_line(&mut reader, &mut buf).await {
            Ok(Some(cut)) => {
                let line = String::from_utf8_lossy(&buf);
                if is_executor_line(&line) {
                    continue;
                }
                let mark = if cut {
                    format!("... [line cut at {MAX_LOG_LINE_BYTES} bytes]")
                } else {
                    String::new()
                };
                tracing::info!(target: "workflow", node = %node, pod = %pod, "{line}{mark}");
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(pod = %pod, error = %e, "RUNNER_ARGO_LOGS: the pod's log stream broke");
                break;
            }
        }
    }
}

/// Reads the next line of `reader` into `line` (without its `\n` or `\r\n`), at most
/// [`MAX_LOG_LINE_BYTES`] of it; the rest of a longer line is read and dropped. `Some(cut)`:
/// a line was read, `cut` when it was longer; `None`: the end of the stream.
async fn next_line<R>(reader: &mut R, line: &mut Vec<u8>) -> std::io::Result<Option<bool>>
where
    R: futures::AsyncBufRead + Unpin,
{
    line.clear();
    let mut cut = false;
    let mut read_any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(read_any.then_some(cut));
        }
        read_any = true;
        let (content, used, ended) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = MAX_LOG_LINE_BYTES.saturating_sub(line.len());
        cut |= content.len() > room;
        line.extend_from_slice(&content[..content.len().min(room)]);
        reader.consume_unpin(used);
        if ended {
            if !cut && line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Lines are read up to their limit; a longer one is cut and the rest of it dropped, even
    /// when it never ends with a line break.
    #[tokio::test]
    async fn a_log_line_is_bounded() {
        let long = "x".repeat(3 * MAX_LOG_LINE_BYTES);
        let text = format!("first\r\n{long}\nlast\n{long}");
        let mut reader = futures::io::BufReader::with_capacity(1000, text.as_bytes());
        let mut line = Vec::new();
        let mut got = Vec::new();
        while let Some(cut) = next_line(&mut reader, &mut line).await.unwrap() {
            got.push((line.len(), cut));
            assert!(line.len() <= MAX_LOG_LINE_BYTES);
        }
        assert_eq!(
            got,
            [
                (5, false),
                (MAX_LOG_LINE_BYTES, true),
                (4, false),
                (MAX_LOG_LINE_BYTES, true)
            ]
        );
    }

    #[test]
    fn the_executors_own_lines_are_left_out() {
        assert!(is_executor_line(
            r#"time="2026-11-22T10:58:00.375Z" level=info msg="sub-process exited" argo=true error="<nil>""#
        ));
        assert!(is_executor_line(
            r#"time=2026-11-29T19:35:15.534Z level=INFO msg="sub-process exited" argo=true error=<nil>"#
        ));
        assert!(!is_executor_line("hello world"));
        assert!(!is_executor_line("time=now argo=true"));
        assert!(!is_executor_line("time=\"x\" level=info msg=mine"));
    }

    #[test]
    fn a_pod_is_followed_once_its_main_container_has_started() {
        let pod = |state: serde_json::Value| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "status": {"containerStatuses": [
                    {"name": "wait", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                     "state": {"running": {}}},
                    {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                     "state": state},
                ]},
            }))
            .unwrap()
        };
        assert!(!main_started(&pod(
            json!({"waiting": {"reason": "ContainerCreating"}})
        )));
        assert!(main_started(&pod(json!({"running": {}}))));
        assert!(main_started(&pod(json!({"terminated": {"exitCode": 0}}))));
    }
}

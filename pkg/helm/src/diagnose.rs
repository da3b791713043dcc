//! Why `--wait` failed: which of the release's workloads were not ready, and why their pods
//! were not, read from the API when helm's wait fails or is stopped.
//!
//! Helm says only that the wait timed out (Helm 3: `context deadline exceeded`; Helm 4: the
//! kstatus watcher's `resource not ready, name: ..., kind: ..., status: InProgress`). The runner
//! reads the workloads of the release's manifest (Deployments, StatefulSets, DaemonSets, Jobs,
//! Pods), decides which are not ready by the rules Helm's `ReadyChecker` (Helm 3,
//! `pkg/kube/ready.go`) and kstatus (Helm 4) use, and for each lists its pods (`matchLabels` of
//! its selector) and says what holds each one back: the scheduler's reason (`Unschedulable`,
//! with its message), a container's waiting reason (`ImagePullBackOff`, `ErrImagePull`,
//! `CrashLoopBackOff`, `CreateContainerConfigError`, ...) and message, its last exit (code and
//! reason), or a running container that its readiness probe keeps out.
//!
//! Needs `get` on the chart's workload kinds (Helm's wait needs it too) and `list` on pods in
//! the release's namespace; what it may not read is named in the result, never an error.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

/// Workloads reported at most (the rest are counted).
pub const MAX_WORKLOADS: usize = 8;
/// Pods reported at most per workload.
pub const MAX_PODS: usize = 3;

/// A workload of the release that was not ready, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotReady {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job` or `Pod`.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// Its state in a few words, e.g. `0/3 available`, `not found`, `Failed: BackoffLimitExceeded`.
    pub state: String,
    /// Its pods that are not ready (at most [`MAX_PODS`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodProblem>,
}

/// Why one pod is not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodProblem {
    /// The pod's name.
    pub pod: String,
    /// The container at fault, when it is one container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Kubernetes' reason: `Unschedulable`, `ImagePullBackOff`, `CrashLoopBackOff`, `Error`,
    /// `OOMKilled`, `NotReady` (running, readiness probe failing), `Pending`, ...
    pub reason: String,
    /// Kubernetes' message, when there is one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The container's last exit code, when it exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// An object of the release's manifest: `apiVersion`, `kind`, `metadata.name`,
/// `metadata.namespace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestObject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: ManifestMeta,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ManifestMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// The workloads (`(kind, namespace, name)`) of a release's `manifest` (the YAML documents Helm
/// stores with the release, `manifest` of its JSON), in manifest order; objects in no
/// namespace are in `namespace`. Documents that are not objects are skipped.
pub fn workloads(manifest: &str, namespace: &str) -> Vec<(String, String, String)> {
    let docs: Vec<Option<ManifestObject>> =
        serde_saphyr::from_multiple(manifest).unwrap_or_default();
    docs.into_iter()
        .flatten()
        .filter(|o| {
            matches!(
                o.kind.as_str(),
                "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "Pod"
            ) && !o.metadata.name.is_empty()
        })
        .map(|o| {
            let ns = o.metadata.namespace.unwrap_or_else(|| namespace.into());
            (o.kind, ns, o.metadata.name)
        })
        .collect()
}

/// Reads the release's workloads and returns those not ready, at most [`MAX_WORKLOADS`], and
/// how many more were left out. Every read error is folded into the `state` of its workload.
pub async fn not_ready(
    client: &kube::Client,
    manifest: &str,
    namespace: &str,
) -> (Vec<NotReady>, usize) {
    let mut out = Vec::new();
    let mut more = 0;
    for (kind, ns, name) in workloads(manifest, namespace) {
        let Some(found) = check(client, &kind, &ns, &name).await else {
            continue;
        };
        if out.len() < MAX_WORKLOADS {
            out.push(found);
        } else {
            more += 1;
        }
    }
    (out, more)
}

/// One workload: `None` when it is ready.
async fn check(client: &kube::Client, kind: &str, ns: &str, name: &str) -> Option<NotReady> {
    let report = |state: String| NotReady {
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
        state,
        pods: Vec::new(),
    };
    let (state, selector) = match kind {
        "Deployment" => {
            standing(client, ns, name, |d: Deployment| {
                (deployment_state(&d), Some(d.spec.selector))
            })
            .await
        }
        "StatefulSet" => {
            standing(client, ns, name, |s: StatefulSet| {
                (stateful_set_state(&s), Some(s.spec.selector))
            })
            .await
        }
        "DaemonSet" => {
            standing(client, ns, name, |d: DaemonSet| {
                (daemon_set_state(&d), Some(d.spec.selector))
            })
            .await
        }
        "Job" => {
            standing(client, ns, name, |j: Job| {
                (job_state(&j), job_selector(j, name))
            })
            .await
        }
        _ => match get::<Pod>(client, ns, name).await {
            Ok(p) => {
                let problem = pod_problem(&p)?;
                let mut r = report("not ready".into());
                r.pods.push(problem);
                return Some(r);
            }
            Err(state) => (Some(state), None),
        },
    };
    let mut r = report(state?);
    if let Some(selector) = selector
        .and_then(|s| s.match_labels)
        .filter(|m| !m.is_empty())
    {
        r.pods = pods(client, ns, &selector).await;
    }
    Some(r)
}

/// How a workload stands: what keeps it from being ready (`None`: it is ready), and the
/// selector of its pods.
type Standing = (Option<String>, Option<LabelSelector>);

/// How workload `name` of kind `K` in `ns` stands, as `read` finds it; one that is not found or
/// cannot be read stands so.
async fn standing<K>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    read: impl FnOnce(K) -> Standing,
) -> Standing
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    get::<K>(client, ns, name)
        .await
        .map_or_else(|state| (Some(state), None), read)
}

/// Object `name` of kind `K` in `ns`; when there is none, the state that says so: `not found`,
/// or why it could not be read.
async fn get<K>(client: &kube::Client, ns: &str, name: &str) -> Result<K, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    match Api::<K>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err("not found".into()),
        Err(e) => Err(format!("could not be read ({})", short(&e))),
    }
}

/// The selector of Job `name`'s pods: its own, else the label Kubernetes gives them,
/// `job-name` (and `batch.kubernetes.io/job-name`).
fn job_selector(job: Job, name: &str) -> Option<LabelSelector> {
    job.spec.and_then(|s| s.selector).or_else(|| {
        Some(LabelSelector {
            match_labels: Some([("job-name".to_string(), name.to_string())].into()),
            ..LabelSelector::default()
        })
    })
}

/// The pods that `match_labels` selects in `ns` and are not ready, at most [`MAX_PODS`]; a
/// failed list is one entry saying why.
async fn pods(
    client: &kube::Client,
    ns: &str,
    match_labels: &BTreeMap<String, String>,
) -> Vec<PodProblem> {
    let selector = match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    match Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => list
            .items
            .iter()
            .filter_map(pod_problem)
            .take(MAX_PODS)
            .collect(),
        Err(e) => vec![PodProblem {
            pod: String::new(),
            container: None,
            reason: "PodsNotListed".into(),
            message: format!("the runner could not list the pods ({})", short(&e)),
            exit_code: None,
        }],
    }
}

/// `forbidden`, `not found`, or the error's text, short.
fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.reason.to_lowercase(),
        other => other.to_string(),
    }
}

/// `None` when the Deployment's rollout is done (Helm 3's `deploymentReady`, kstatus' Current):
/// the controller observed the latest generation and every replica is updated and available.
pub fn deployment_state(d: &Deployment) -> Option<String> {
    let want = d.spec.replicas.unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    let observed = s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = s.updated_replicas.unwrap_or(0);
    let available = s.available_replicas.unwrap_or(0);
    if observed && updated >= want && available >= want {
        return None;
    }
    Some(format!("{available}/{want} available, {updated} updated"))
}

/// `None` when every replica of the StatefulSet is updated and ready.
pub fn stateful_set_state(s: &StatefulSet) -> Option<String> {
    let want = s.spec.replicas.unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    replicas_state(want, ready, st.updated_replicas.unwrap_or(0))
}

/// `None` when the DaemonSet's pods are scheduled, updated and ready on every node it wants.
pub fn daemon_set_state(d: &DaemonSet) -> Option<String> {
    let s = d.status.clone().unwrap_or_default();
    let want = s.desired_number_scheduled;
    replicas_state(
        want,
        s.number_ready,
        s.updated_number_scheduled.unwrap_or(0),
    )
}

/// `None` when `ready` and `updated` replicas (or pods) reach the `want`ed number; else the
/// counts.
fn replicas_state(want: i32, ready: i32, updated: i32) -> Option<String> {
    if ready >= want && updated >= want {
        return None;
    }
    Some(format!("{ready}/{want} ready, {updated} updated"))
}

/// `None` when the Job completed; else `Failed: <reason>` or the counts of its pods.
pub fn job_state(j: &Job) -> Option<String> {
    let s = j.status.clone().unwrap_or_default();
    for c in s.conditions.iter().flatten() {
        if c.status == "True" && c.type_ == "Complete" {
            return None;
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Some(format!("Failed: {}", c.reason.clone().unwrap_or_default()));
        }
    }
    Some(format!(
        "not complete ({} active, {} failed)",
        s.active.unwrap_or(0),
        s.failed.unwrap_or(0)
    ))
}

/// Why `pod` is not ready, or `None` when it is ready (or completed). The first cause found, in
/// this order: not scheduled (the `PodScheduled` condition's reason and message); a container
/// (init containers first) waiting, with its reason, message and last exit code; a container
/// that exited; a running container that is not ready (its readiness probe); else the pod's
/// phase.
pub fn pod_problem(pod: &Pod) -> Option<PodProblem> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t);
    if status.phase.as_deref() == Some("Succeeded")
        || condition("Ready").is_some_and(|c| c.status == "True")
    {
        return None;
    }
    let problem = |container: Option<String>, reason: String, message: String, exit_code| {
        Some(PodProblem {
            pod: name.clone(),
            container,
            reason,
            message,
            exit_code,
        })
    };
    if let Some(c) = condition("PodScheduled").filter(|c| c.status == "False") {
        return problem(
            None,
            c.reason.clone().unwrap_or_else(|| "NotScheduled".into()),
            c.message.clone().unwrap_or_default(),
            None,
        );
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let mut not_ready = None;
    for c in containers {
        if let Some((reason, message, exit_code)) = container_problem(c) {
            return problem(Some(c.name.clone()), reason, message, exit_code);
        }
        let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
        if running && !c.ready && not_ready.is_none() {
            not_ready = Some(c.name.clone());
        }
    }
    if let Some(container) = not_ready {
        return problem(
            Some(container),
            "NotReady".into(),
            "running, but its readiness probe does not pass".into(),
            None,
        );
    }
    problem(
        None,
        status.phase.unwrap_or_else(|| "Pending".into()),
        condition("Ready")
            .and_then(|c| c.message.clone())
            .unwrap_or_default(),
        None,
    )
}

/// Why container `c` holds its pod back, when it waits or exited with an error: the reason
/// (`ImagePullBackOff`, `CrashLoopBackOff`, `Error`, ...), the message (with the last exit code
/// and its reason, for a waiting container) and the exit code.
fn container_problem(c: &ContainerStatus) -> Option<(String, String, Option<i32>)> {
    let state = c.state.clone().unwrap_or_default();
    let last_exit = c
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(|t| (t.exit_code, t.reason.clone().unwrap_or_default()));
    if let Some(w) = &state.waiting {
        let mut message = w.message.clone().unwrap_or_default();
        if let Some((code, reason)) = &last_exit {
            let sep = if message.is_empty() { "" } else { "; " };
            let _ = write!(message, "{sep}last exit code {code}");
            if !reason.is_empty() {
                let _ = write!(message, " ({reason})");
            }
        }
        let reason = w.reason.clone().unwrap_or_else(|| "Waiting".into());
        return Some((reason, message, last_exit.map(|(code, _)| code)));
    }
    let t = state.terminated.as_ref().filter(|t| t.exit_code != 0)?;
    let mut message = t.message.clone().unwrap_or_default();
    let sep = if message.is_empty() { "" } else { "; " };
    let _ = write!(message, "{sep}exit code {}", t.exit_code);
    let reason = t.reason.clone().unwrap_or_else(|| "Error".into());
    Some((reason, message, Some(t.exit_code)))
}

/// One line: `not ready: Deployment ns/web (0/1 available, 1 updated): pod web-abc container
/// web ImagePullBackOff (Back-off pulling image "x"); ...`, with `and N more` for what was left
/// out.
pub fn describe(not_ready: &[NotReady], more: usize) -> String {
    let mut out = String::from("not ready:");
    for (i, w) in not_ready.iter().enumerate() {
        let sep = if i == 0 { " " } else { "; " };
        let _ = write!(
            out,
            "{sep}{} {}/{} ({})",
            w.kind, w.namespace, w.name, w.state
        );
        for p in &w.pods {
            out.push_str(if p.pod.is_empty() { ": " } else { ": pod " });
            out.push_str(&p.pod);
            if let Some(c) = &p.container {
                let _ = write!(out, " container {c}");
            }
            let _ = write!(out, " {}", p.reason);
            if !p.message.is_empty() {
                let _ = write!(out, " ({})", p.message);
            }
        }
    }
    if more > 0 {
        let _ = write!(out, "; and {more} more");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-1"}, "status": status})).unwrap()
    }

    #[test]
    fn workloads_of_a_manifest() {
        let manifest = "---\n# Source: web/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n---\n# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: db\n";
        assert_eq!(
            workloads(manifest, "apps"),
            [
                ("Deployment".into(), "apps".into(), "web".into()),
                ("Job".into(), "db".into(), "migrate".into())
            ]
        );
        assert!(workloads("", "apps").is_empty());
    }

    #[test]
    fn why_a_pod_is_not_ready() {
        let unschedulable = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu."}]}),
        );
        assert_eq!(
            pod_problem(&unschedulable).unwrap(),
            PodProblem {
                pod: "web-1".into(),
                container: None,
                reason: "Unschedulable".into(),
                message: "0/1 nodes are available: 1 Insufficient cpu.".into(),
                exit_code: None
            }
        );
        let crashing = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "web",
            "ready": false, "restartCount": 3, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}),
        );
        let p = pod_problem(&crashing).unwrap();
        assert_eq!(
            (p.reason.as_str(), p.exit_code, p.message.as_str()),
            (
                "CrashLoopBackOff",
                Some(3),
                "back-off 40s; last exit code 3 (Error)"
            )
        );
        let probe = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "web",
            "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"running": {}}}]}),
        );
        assert_eq!(pod_problem(&probe).unwrap().reason, "NotReady");
        let ready =
            pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(pod_problem(&ready), None);
    }

    #[test]
    fn a_deployment_is_ready_when_its_rollout_is_done() {
        let d = |status: serde_json::Value| -> Deployment {
            serde_json::from_value(json!({"metadata": {"name": "web", "generation": 2},
                "spec": {"replicas": 2, "selector": {}, "template": {}}, "status": status}))
            .unwrap()
        };
        assert_eq!(
            deployment_state(&d(
                json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2})
            )),
            None
        );
        assert_eq!(
            deployment_state(&d(
                json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 1})
            )),
            Some("1/2 available, 2 updated".into())
        );
        assert!(
            deployment_state(&d(
                json!({"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2})
            ))
            .is_some()
        );
    }

    #[test]
    fn one_line() {
        let w = NotReady {
            kind: "Deployment".into(),
            namespace: "apps".into(),
            name: "web".into(),
            state: "0/1 available, 1 updated".into(),
            pods: vec![PodProblem {
                pod: "web-1".into(),
                container: Some("web".into()),
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"nope:1\"".into(),
                exit_code: None,
            }],
        };
        assert_eq!(
            describe(&[w], 2),
            "not ready: Deployment apps/web (0/1 available, 1 updated): pod web-1 container web \
             ImagePullBackOff (Back-off pulling image \"nope:1\"); and 2 more"
        );
    }
}

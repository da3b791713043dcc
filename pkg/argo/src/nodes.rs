//! What the runner tells of a Workflow from its `status`: why it failed (the failed nodes and
//! the exit handler), how far it has got (progress, the nodes running now) and what it produced
//! (its global outputs).
//!
//! Shapes from Argo Workflows v3.7 (`pkg/apis/workflow/v1alpha1/workflow_types.go`: `NodeStatus`,
//! `Outputs`); every field is optional here, so a field a later Argo adds or drops costs nothing.
//! Pod names follow Argo's `workflow/util/pod_name.go` (see [`pod_name`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One node of `status.nodes` (Argo's `NodeStatus`), as far as the runner reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Unique node ID (the key in `status.nodes`).
    #[serde(default)]
    pub id: String,
    /// Full name, e.g. `my-wf[0].step-a(1)`.
    #[serde(default)]
    pub name: String,
    /// Short name, e.g. `step-a(1)`.
    #[serde(default)]
    pub display_name: String,
    /// `Pod`, `Container`, `Steps`, `StepGroup`, `DAG`, `TaskGroup`, `Retry`, `Skipped`,
    /// `Suspend`, `HTTP`, `Plugin`.
    #[serde(default, rename = "type")]
    pub node_type: String,
    /// The template the node ran (when not through a `templateRef`).
    #[serde(default)]
    pub template_name: Option<String>,
    /// The WorkflowTemplate's template the node ran (`{name, template, clusterScope}`).
    #[serde(default)]
    pub template_ref: Option<TemplateRef>,
    /// `Pending`, `Running`, `Succeeded`, `Skipped`, `Failed`, `Error`, `Omitted`.
    #[serde(default)]
    pub phase: Option<String>,
    /// Argo's message (for a failed pod, e.g. `Error (exit code 1)`).
    #[serde(default)]
    pub message: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// IDs of the child nodes (a Retry node's children are its attempts, in order).
    #[serde(default)]
    pub children: Vec<String>,
    /// The node's outputs (`exitCode`, `parameters`, `artifacts`, `result`).
    #[serde(default)]
    pub outputs: Option<Value>,
    /// Argo 4: how many times the controller replaced the node's pod because it failed before
    /// its main container started (evicted, node shut down; the controller's
    /// `failedPodRestart` setting). Absent (0) under Argo 3.7.
    #[serde(default)]
    pub failed_pod_restarts: u32,
    /// Argo 4: the UID of the failed pod being replaced right now; cleared once the
    /// replacement runs. Absent under Argo 3.7.
    #[serde(default, rename = "restartingPodUID")]
    pub restarting_pod_uid: Option<String>,
}

/// A reference to a template of a (Cluster)WorkflowTemplate (Argo's `TemplateRef`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// The (Cluster)WorkflowTemplate's name.
    #[serde(default)]
    pub name: String,
    /// The template's name in it.
    #[serde(default)]
    pub template: String,
    /// Whether it is a ClusterWorkflowTemplate.
    #[serde(default)]
    pub cluster_scope: bool,
}

impl NodeStatus {
    fn phase(&self) -> &str {
        self.phase.as_deref().unwrap_or("Pending")
    }

    fn failed(&self) -> bool {
        matches!(self.phase(), "Failed" | "Error")
    }

    /// The template it ran: `template_ref.template` or `template_name` (Argo's
    /// `GetTemplateFromNode`).
    pub fn template(&self) -> Option<&str> {
        match &self.template_ref {
            Some(r) if !r.template.is_empty() => Some(&r.template),
            _ => self.template_name.as_deref(),
        }
    }

    /// Whether Argo 4 is replacing the node's pod now ([`NodeStatus::restarting_pod_uid`]).
    fn restarting(&self) -> bool {
        self.restarting_pod_uid
            .as_deref()
            .is_some_and(|u| !u.is_empty())
    }

    /// How Argo 4's pod restarts read in a message: `pod restarted 2 times by Argo` (with
    /// `restarting: ` first while a replacement is under way), `None` without restarts.
    fn restarts(&self) -> Option<String> {
        let n = self.failed_pod_restarts;
        let times = match n {
            0 => return None,
            1 => "once".to_string(),
            n => format!("{n} times"),
        };
        Some(if self.restarting() {
            format!(
                "restarting its pod, which failed before starting (pod restarted {times} by Argo)"
            )
        } else {
            format!("pod restarted {times} by Argo")
        })
    }

    fn exit_code(&self) -> Option<String> {
        match self.outputs.as_ref()?.get("exitCode")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A node that failed, as reported (`runnerStatus.failedNodes[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedNode {
    /// The node's display name (`B`, `step-a(2)`).
    pub display_name: String,
    /// The node's full name.
    pub name: String,
    /// `Failed` or `Error`.
    pub phase: String,
    /// The template it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The pod it ran in (for `Pod` nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The main container's exit code, as Argo recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<String>,
    /// Argo's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For the last attempt of a retried node: which attempt it was (1-based) of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// Argo 4: how many times Argo replaced the node's pod because it failed before starting
    /// ([`NodeStatus::failed_pod_restarts`]); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_restarts: Option<u32>,
}

/// How the exit handler (`spec.onExit`, node `<workflow>.onExit`) ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitHandler {
    /// Its phase.
    pub phase: String,
    /// Argo's message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Which pod-name scheme the Workflow uses: annotation `workflows.argoproj.io/pod-name-format`
/// (`v1`: the node ID; `v2`, Argo's default since v3.4: see [`pod_name`]).
pub const POD_NAME_FORMAT_ANNOTATION: &str = "workflows.argoproj.io/pod-name-format";

/// The pod of node `node` of Workflow `workflow` under Argo's pod-name scheme v2
/// (`workflow/util/pod_name.go`, `GeneratePodName`): the Workflow's name when the node is the
/// Workflow itself; otherwise `<workflow>-<template>-<h>`, the prefix cut to 242 bytes and `h`
/// the 32-bit FNV-1a hash of the node's full name, in decimal. With `v1` (`v2 == false`), the
/// node ID.
pub fn pod_name(workflow: &str, node: &NodeStatus, v2: bool) -> String {
    if !v2 {
        return node.id.clone();
    }
    if node.name == workflow {
        return workflow.to_string();
    }
    // 253 (a name's longest) - 10 (the hash's digits) - 1 (the dash).
    const MAX_PREFIX: usize = 253 - 10 - 1;
    let mut prefix = match node.template() {
        Some(t) if !t.is_empty() => format!("{workflow}-{t}"),
        _ => workflow.to_string(),
    };
    if prefix.len() > MAX_PREFIX {
        let mut cut = MAX_PREFIX;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    format!("{prefix}-{}", fnv1a32(node.name.as_bytes()))
}

/// The 32-bit FNV-1a hash (offset basis 2166136261, prime 16777619), as Go's `hash/fnv`.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Argo's node types that only group other nodes (`NodeType` in Argo's
/// `pkg/apis/workflow/v1alpha1/workflow_types.go`): they fail because a node below them did.
const GROUP_TYPES: [&str; 5] = ["Steps", "StepGroup", "DAG", "TaskGroup", "Retry"];

/// The nodes that explain a failure: failed or errored nodes that are not groups (the steps
/// that actually failed, not the Steps/DAG groups that failed because of them; a DAG task's
/// `children` are the tasks that depend on it, so a failed task with dependents is one of
/// these), oldest first; of a retried node only its last attempt. Nodes of the exit handler are left out (see
/// [`exit_handler`]).
pub fn failed_nodes(
    workflow: &str,
    nodes: &BTreeMap<String, NodeStatus>,
    v2: bool,
) -> Vec<FailedNode> {
    // Each attempt of a Retry node -> (its 1-based number, the number of attempts).
    let mut attempts: HashMap<&str, (usize, usize)> = HashMap::new();
    for n in nodes.values().filter(|n| n.node_type == "Retry") {
        for (i, child) in n.children.iter().enumerate() {
            attempts.insert(child, (i + 1, n.children.len()));
        }
    }
    let exit_handler = format!("{workflow}.onExit");
    let mut failed: Vec<&NodeStatus> = nodes
        .values()
        .filter(|n| n.failed() && !GROUP_TYPES.contains(&n.node_type.as_str()))
        .filter(|n| !n.name.starts_with(&exit_handler))
        .filter(|n| attempts.get(n.id.as_str()).is_none_or(|(i, of)| i == of))
        .collect();
    failed.sort_by(|a, b| {
        (a.finished_at.as_deref(), &a.name).cmp(&(b.finished_at.as_deref(), &b.name))
    });
    failed
        .into_iter()
        .map(|n| FailedNode {
            display_name: if n.display_name.is_empty() {
                n.name.clone()
            } else {
                n.display_name.clone()
            },
            name: n.name.clone(),
            phase: n.phase().to_string(),
            template: n.template().map(str::to_string),
            pod: (n.node_type == "Pod").then(|| pod_name(workflow, n, v2)),
            exit_code: n.exit_code(),
            message: n.message.clone().filter(|m| !m.is_empty()),
            attempt: attempts
                .get(n.id.as_str())
                .filter(|(_, of)| *of > 1)
                .map(|(i, of)| format!("{i}/{of}")),
            pod_restarts: Some(n.failed_pod_restarts).filter(|r| *r > 0),
        })
        .collect()
}

/// The exit handler's outcome, when the Workflow has one that ran (node `<workflow>.onExit`).
pub fn exit_handler(workflow: &str, nodes: &BTreeMap<String, NodeStatus>) -> Option<ExitHandler> {
    let name = format!("{workflow}.onExit");
    nodes
        .values()
        .find(|n| n.name == name)
        .map(|n| ExitHandler {
            phase: n.phase().to_string(),
            message: n.message.clone().filter(|m| !m.is_empty()),
        })
}

/// The `Pod` nodes whose pod Argo 4 is replacing now, in name order, at most `limit`:
/// `A (restart 2)`, for the progress ([`NodeStatus::restarting_pod_uid`]).
pub fn restarting_nodes(nodes: &BTreeMap<String, NodeStatus>, limit: usize) -> Vec<String> {
    let mut restarting: Vec<&NodeStatus> = nodes
        .values()
        .filter(|n| n.node_type == "Pod" && n.restarting())
        .collect();
    restarting.sort_by(|a, b| a.name.cmp(&b.name));
    restarting
        .into_iter()
        .take(limit)
        .map(|n| format!("{} (restart {})", n.display_name, n.failed_pod_restarts))
        .collect()
}

/// The display names of the `Pod` nodes running now, in name order, at most `limit`.
pub fn running_nodes(nodes: &BTreeMap<String, NodeStatus>, limit: usize) -> Vec<String> {
    let mut running: Vec<&NodeStatus> = nodes
        .values()
        .filter(|n| n.node_type == "Pod" && n.phase() == "Running")
        .collect();
    running.sort_by(|a, b| a.name.cmp(&b.name));
    running
        .into_iter()
        .take(limit)
        .map(|n| n.display_name.clone())
        .collect()
}

/// What a Workflow still waits on: each unfinished `Pod` node (phase `Pending` or `Running`, or
/// none yet), oldest name first, at most `limit`, as `step "B" (pod wf-echo-1234): Pending:
/// ImagePullBackOff: ...` — Argo's node message carries the pod's waiting reason while it is
/// pending. Without such a node, the unfinished nodes of any other type (a `Suspend` node, a
/// DAG whose tasks are not scheduled yet). The second value counts those left out.
pub fn waiting_on(
    workflow: &str,
    nodes: &BTreeMap<String, NodeStatus>,
    v2: bool,
    limit: usize,
) -> (Vec<Waiting>, usize) {
    let unfinished = |n: &&NodeStatus| matches!(n.phase(), "Pending" | "Running" | "");
    let mut waiting: Vec<&NodeStatus> = nodes
        .values()
        .filter(unfinished)
        .filter(|n| n.node_type == "Pod")
        .collect();
    if waiting.is_empty() {
        waiting = nodes
            .values()
            .filter(unfinished)
            .filter(|n| n.children.is_empty() && n.name != workflow)
            .collect();
    }
    waiting.sort_by(|a, b| a.name.cmp(&b.name));
    let more = waiting.len().saturating_sub(limit);
    let described = waiting
        .into_iter()
        .take(limit)
        .map(|n| {
            let mut s = format!("step {:?}", n.display_name);
            let pod = (n.node_type == "Pod").then(|| pod_name(workflow, n, v2));
            if let Some(pod) = &pod {
                s.push_str(&format!(" (pod {pod})"));
            } else if !n.node_type.is_empty() {
                s.push_str(&format!(" ({})", n.node_type));
            }
            let phase = match n.phase() {
                "" => "not started",
                p => p,
            };
            s.push_str(&format!(": {phase}"));
            if let Some(r) = n.restarts() {
                s.push_str(&format!(", {r}"));
            }
            if let Some(m) = n.message.as_deref().filter(|m| !m.is_empty()) {
                s.push_str(&format!(": {m}"));
            }
            Waiting { text: s, pod }
        })
        .collect();
    (described, more)
}

/// One node a Workflow still waits on ([`waiting_on`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// `step "B" (pod wf-echo-1234): Pending: <Argo's node message>`.
    pub text: String,
    /// The node's pod, for a `Pod` node.
    pub pod: Option<String>,
}

/// What a pod's status says about why it has not finished, e.g. `Pending, sandbox not ready
/// (PodReadyToStartContainers False), container "main" waiting: PodInitializing`: its phase,
/// the `PodReadyToStartContainers` condition when it is false (the kubelet has no sandbox for
/// it, as after a node reboot), and its first containers (init containers first) that are
/// not running, with the reason Kubernetes gives (at most two).
pub fn pod_state(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    let Some(status) = &pod.status else {
        return "no status yet".into();
    };
    let mut parts = vec![status.phase.clone().unwrap_or_else(|| "no phase".into())];
    let no_sandbox = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "PodReadyToStartContainers" && c.status == "False");
    if no_sandbox {
        parts.push("sandbox not ready (PodReadyToStartContainers False)".into());
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        })
        .chain(status.container_statuses.iter().flatten());
    let mut shown = 0;
    for c in containers {
        let Some(state) = &c.state else { continue };
        let said = if let Some(w) = &state.waiting {
            match w.reason.as_deref() {
                Some(r) => format!("container {:?} waiting: {r}", c.name),
                None => format!("container {:?} waiting", c.name),
            }
        } else if let Some(t) = &state.terminated {
            format!(
                "container {:?} terminated: {} (exit code {})",
                c.name,
                t.reason.as_deref().unwrap_or("no reason"),
                t.exit_code
            )
        } else {
            continue;
        };
        parts.push(said);
        shown += 1;
        if shown == 2 {
            break;
        }
    }
    parts.join(", ")
}

impl FailedNode {
    /// One clause: `step "B" (template echo, pod diamond-echo-1234, exit code 1, attempt 3/3):
    /// Error (exit code 1)`.
    pub fn describe(&self) -> String {
        let mut facts = Vec::new();
        if let Some(t) = &self.template {
            facts.push(format!("template {t}"));
        }
        if let Some(p) = &self.pod {
            facts.push(format!("pod {p}"));
        }
        if let Some(c) = &self.exit_code {
            facts.push(format!("exit code {c}"));
        }
        if let Some(a) = &self.attempt {
            facts.push(format!("attempt {a}"));
        }
        match self.pod_restarts {
            Some(1) => facts.push("pod restarted once by Argo".into()),
            Some(n) => facts.push(format!("pod restarted {n} times by Argo")),
            None => {}
        }
        let mut s = format!("{:?}", self.display_name);
        if !facts.is_empty() {
            s.push_str(&format!(" ({})", facts.join(", ")));
        }
        match &self.message {
            Some(m) => format!("{s}: {m}"),
            None => format!("{s}: {}", self.phase),
        }
    }
}

/// The one-line explanation of a failed Workflow: Argo's message (unless it is a failed node's
/// own), then the failed nodes (at
/// most `limit`, and how many more), then the exit handler's outcome, e.g.
/// `child 'x' failed; failed node "B" (template echo, pod wf-echo-1, exit code 1): Error (exit
/// code 1); exit handler Succeeded`.
pub fn failure_message(
    argo_message: &str,
    failed: &[FailedNode],
    exit_handler: Option<&ExitHandler>,
    limit: usize,
) -> String {
    let mut parts = Vec::new();
    // Argo often repeats the failed node's own message as the Workflow's: say it once.
    let repeated = failed
        .iter()
        .any(|f| f.message.as_deref() == Some(argo_message));
    if !argo_message.is_empty() && !repeated {
        parts.push(argo_message.to_string());
    }
    if !failed.is_empty() {
        let shown: Vec<String> = failed
            .iter()
            .take(limit)
            .map(FailedNode::describe)
            .collect();
        let noun = if failed.len() == 1 {
            "failed node"
        } else {
            "failed nodes"
        };
        let mut s = format!("{noun} {}", shown.join(", "));
        if failed.len() > limit {
            s.push_str(&format!(" and {} more", failed.len() - limit));
        }
        parts.push(s);
    }
    if let Some(h) = exit_handler {
        match &h.message {
            Some(m) => parts.push(format!("exit handler {}: {m}", h.phase)),
            None => parts.push(format!("exit handler {}", h.phase)),
        }
    }
    parts.join("; ")
}

/// The Workflow's global outputs (`status.outputs`: `parameters` `[{name, value}]` and
/// `artifacts`, each `{name, s3: {bucket, endpoint, key}}` as [`crate::artifacts::locate`]
/// completes it with `repository`), without the fields that say nothing to a reader
/// (`exitCode`, `result` of the Workflow itself stay).
pub fn global_outputs(outputs: Option<&Value>, repository: Option<&Value>) -> Value {
    let Some(Value::Object(o)) = outputs else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    for key in ["parameters", "result", "exitCode"] {
        if let Some(v) = o.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(arts) = o.get("artifacts").and_then(Value::as_array) {
        let located: Vec<Value> = arts
            .iter()
            .map(|a| match crate::artifacts::locate(a, repository) {
                Some(mut location) => {
                    location.insert("name".into(), a.get("name").cloned().unwrap_or_default());
                    Value::Object(location)
                }
                None => json!({"name": a.get("name")}),
            })
            .collect();
        out.insert("artifacts".into(), Value::Array(located));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, name: &str, ty: &str, phase: &str) -> NodeStatus {
        NodeStatus {
            id: id.into(),
            name: name.into(),
            display_name: name.rsplit('.').next().unwrap().into(),
            node_type: ty.into(),
            phase: Some(phase.into()),
            ..Default::default()
        }
    }

    fn map(nodes: Vec<NodeStatus>) -> BTreeMap<String, NodeStatus> {
        nodes.into_iter().map(|n| (n.id.clone(), n)).collect()
    }

    #[test]
    fn fnv1a32_matches_the_reference_values() {
        // From the FNV reference test vectors (draft-eastlake-fnv).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn pod_names_follow_argos_v2_scheme() {
        let mut n = node("wf-1", "wf[0].step", "Pod", "Failed");
        n.template_name = Some("echo".into());
        assert_eq!(
            pod_name("wf", &n, true),
            format!("wf-echo-{}", fnv1a32(b"wf[0].step"))
        );
        assert_eq!(pod_name("wf", &n, false), "wf-1");
        n.template_ref = Some(TemplateRef {
            name: "lib".into(),
            template: "say".into(),
            cluster_scope: false,
        });
        assert!(pod_name("wf", &n, true).starts_with("wf-say-"));
        let root = node("wf", "wf", "Pod", "Failed");
        assert_eq!(pod_name("wf", &root, true), "wf");
        let long = "x".repeat(300);
        let mut n = node("id", "n", "Pod", "Failed");
        n.template_name = Some(long);
        let name = pod_name("wf", &n, true);
        assert_eq!(name.len(), 242 + 1 + fnv1a32(b"n").to_string().len());
    }

    /// A DAG task that errored before its dependents ran (they are its `children`, `Omitted`):
    /// the task explains the failure, with the executor's message (here: the API server
    /// unreachable while the pod reported its result).
    #[test]
    fn a_failed_dag_task_with_dependents_explains_the_failure() {
        let mut dag = node("wf", "wf", "DAG", "Error");
        dag.children = vec!["a".into()];
        let mut a = node("a", "wf.A", "Pod", "Error");
        a.children = vec!["b".into()];
        a.message = Some("wait: Error (exit code 64): dial tcp: connection refused".into());
        let b = node("b", "wf.B", "Skipped", "Omitted");
        let failed = failed_nodes("wf", &map(vec![dag, a, b]), true);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].display_name, "A");
        let line = failure_message("", &failed, None, 3);
        assert!(line.contains("connection refused"), "{line}");
    }

    #[test]
    fn only_the_leaves_that_failed_and_the_last_attempt_of_a_retry() {
        let mut steps = node("wf", "wf", "Steps", "Failed");
        steps.children = vec!["g".into()];
        let mut group = node("g", "wf[0]", "StepGroup", "Failed");
        group.children = vec!["r".into(), "ok".into()];
        let mut retry = node("r", "wf[0].flaky", "Retry", "Failed");
        retry.children = vec!["a1".into(), "a2".into()];
        let mut a1 = node("a1", "wf[0].flaky(0)", "Pod", "Failed");
        a1.finished_at = Some("2026-11-22T10:00:01Z".into());
        let mut a2 = node("a2", "wf[0].flaky(1)", "Pod", "Failed");
        a2.finished_at = Some("2026-11-22T10:00:05Z".into());
        a2.template_name = Some("flaky".into());
        a2.message = Some("Error (exit code 3)".into());
        a2.outputs = Some(json!({"exitCode": "3"}));
        let ok = node("ok", "wf[0].fine", "Pod", "Succeeded");
        let mut handler = node("h", "wf.onExit", "Pod", "Failed");
        handler.message = Some("Error (exit code 2)".into());
        let nodes = map(vec![steps, group, retry, a1, a2, ok, handler]);

        let failed = failed_nodes("wf", &nodes, true);
        assert_eq!(failed.len(), 1, "{failed:?}");
        let f = &failed[0];
        assert_eq!(f.display_name, "flaky(1)");
        assert_eq!(f.exit_code.as_deref(), Some("3"));
        assert_eq!(f.attempt.as_deref(), Some("2/2"));
        assert_eq!(
            f.pod.as_deref(),
            Some(pod_name("wf", &nodes["a2"], true).as_str())
        );
        let h = exit_handler("wf", &nodes).unwrap();
        assert_eq!(h.phase, "Failed");
        let line = failure_message("child 'r' failed", &failed, Some(&h), 5);
        assert_eq!(
            line,
            format!(
                "child 'r' failed; failed node \"flaky(1)\" (template flaky, pod {}, exit code 3, \
                 attempt 2/2): Error (exit code 3); exit handler Failed: Error (exit code 2)",
                f.pod.as_deref().unwrap()
            )
        );
    }

    #[test]
    fn many_failures_are_counted_not_listed() {
        let nodes = map((0..8)
            .map(|i| node(&format!("n{i}"), &format!("wf.t{i}"), "Pod", "Error"))
            .collect());
        let failed = failed_nodes("wf", &nodes, true);
        assert_eq!(failed.len(), 8);
        let line = failure_message("", &failed, None, 3);
        assert!(line.starts_with("failed nodes \"t0\""), "{line}");
        assert!(line.ends_with("and 5 more"), "{line}");
    }

    #[test]
    fn what_a_workflow_waits_on() {
        let node = |name: &str, ty: &str, phase: &str, message: &str| NodeStatus {
            id: name.into(),
            name: format!("wf.{name}"),
            display_name: name.into(),
            node_type: ty.into(),
            template_name: Some("t".into()),
            phase: Some(phase.into()).filter(|p: &String| !p.is_empty()),
            message: Some(message.into()).filter(|m: &String| !m.is_empty()),
            ..NodeStatus::default()
        };
        let nodes: BTreeMap<String, NodeStatus> = [
            node("a", "Pod", "Succeeded", ""),
            node(
                "b",
                "Pod",
                "Pending",
                "ImagePullBackOff: Back-off pulling image \"x\"",
            ),
            node("c", "Pod", "Running", ""),
            node("d", "Steps", "Running", ""),
        ]
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
        let (waiting, more) = waiting_on("wf", &nodes, true, 1);
        assert_eq!(more, 1);
        assert_eq!(waiting[0].pod, Some(pod_name("wf", &nodes["b"], true)));
        let waiting: Vec<String> = waiting.into_iter().map(|w| w.text).collect();
        assert_eq!(
            waiting,
            [format!(
                "step \"b\" (pod {}): Pending: ImagePullBackOff: Back-off pulling image \"x\"",
                pod_name("wf", &nodes["b"], true)
            )]
        );
        let suspended: BTreeMap<String, NodeStatus> = [node("approve", "Suspend", "Running", "")]
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        assert_eq!(
            waiting_on("wf", &suspended, true, 5),
            (
                vec![Waiting {
                    text: "step \"approve\" (Suspend): Running".to_string(),
                    pod: None
                }],
                0
            )
        );
    }

    /// Argo 4's pod restarts: a node whose pod failed before starting and is being replaced
    /// says so while waiting and in the progress, and a node that failed after restarts says
    /// how many; Argo 3.7's nodes (no such fields) read as before.
    #[test]
    fn argo_4_pod_restarts_are_said() {
        let nodes: BTreeMap<String, NodeStatus> = serde_json::from_value(json!({
            "a": {"id": "a", "name": "wf.a", "displayName": "a", "type": "Pod", "phase": "Pending",
                  "message": "Pod auto-restarting due to Evicted: The node was low on resource: memory.",
                  "failedPodRestarts": 2, "restartingPodUID": "5d1c"},
            "b": {"id": "b", "name": "wf.b", "displayName": "b", "type": "Pod", "phase": "Failed",
                  "message": "Evicted", "failedPodRestarts": 3, "templateName": "t"},
            "c": {"id": "c", "name": "wf.c", "displayName": "c", "type": "Pod", "phase": "Running"},
        }))
        .unwrap();
        let (waiting, _) = waiting_on("wf", &nodes, true, 5);
        assert_eq!(
            waiting[0].text,
            format!(
                "step \"a\" (pod {}): Pending, restarting its pod, which failed before starting \
                 (pod restarted 2 times by Argo): Pod auto-restarting due to Evicted: The node was \
                 low on resource: memory.",
                pod_name("wf", &nodes["a"], true)
            )
        );
        assert_eq!(restarting_nodes(&nodes, 5), ["a (restart 2)"]);
        let failed = failed_nodes("wf", &nodes, true);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].pod_restarts, Some(3));
        assert!(
            failed[0]
                .describe()
                .contains("pod restarted 3 times by Argo): Evicted"),
            "{}",
            failed[0].describe()
        );
        // Argo 3.7: no fields, nothing said.
        let v3: BTreeMap<String, NodeStatus> = serde_json::from_value(json!({
            "b": {"id": "b", "name": "wf.b", "displayName": "b", "type": "Pod", "phase": "Failed",
                  "message": "Evicted"},
        }))
        .unwrap();
        let failed = failed_nodes("wf", &v3, true);
        assert_eq!(failed[0].pod_restarts, None);
        assert!(!failed[0].describe().contains("restart"));
        assert!(restarting_nodes(&v3, 5).is_empty());
    }

    /// A step's pod after a node reboot: init done, no sandbox, its containers waiting.
    #[test]
    fn a_pods_state_says_why_it_has_not_finished() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "wf-echo-1"},
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodReadyToStartContainers", "status": "False"}],
                "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "",
                    "ready": true, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [
                    {"name": "wait", "image": "x", "imageID": "", "ready": false,
                     "restartCount": 0, "state": {"waiting": {}}},
                    {"name": "main", "image": "x", "imageID": "", "ready": false,
                     "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]
            }
        }))
        .unwrap();
        assert_eq!(
            pod_state(&pod),
            "Pending, sandbox not ready (PodReadyToStartContainers False), container \"wait\" \
             waiting, container \"main\" waiting: PodInitializing"
        );
    }

    #[test]
    fn running_nodes_are_the_pods_running_now() {
        let nodes = map(vec![
            node("a", "wf.A", "Pod", "Succeeded"),
            node("b", "wf.B", "Pod", "Running"),
            node("c", "wf.C", "Pod", "Running"),
            node("d", "wf", "DAG", "Running"),
        ]);
        assert_eq!(running_nodes(&nodes, 10), ["B", "C"]);
        assert_eq!(running_nodes(&nodes, 1), ["B"]);
    }

    #[test]
    fn global_outputs_keep_parameters_and_artifact_references() {
        let out = json!({
            "parameters": [{"name": "p", "value": "v"}],
            "artifacts": [{"name": "a", "s3": {"key": "k"}}],
        });
        assert_eq!(global_outputs(Some(&out), None), out);
        assert_eq!(global_outputs(None, None), json!({}));
        let repo = json!({"s3": {"bucket": "b", "accessKeySecret": {"name": "s", "key": "k"}}});
        assert_eq!(
            global_outputs(Some(&out), Some(&repo))["artifacts"],
            json!([{"name": "a", "s3": {"bucket": "b", "key": "k"}}])
        );
    }
}

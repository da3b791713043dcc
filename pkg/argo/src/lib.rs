//! The Argo Workflows action runner: creates the `Workflow` named `RUNNER_CONTEXT_NAME` in the
//! platform namespace and waits, with a watch, until it has finished.
//!
//! Rules taken from Argo Workflows v3 (`pkg/apis/workflow/v1alpha1`): a Workflow has finished
//! when `status.finishedAt` is set or `status.phase` is `Succeeded`, `Failed` or `Error`; it
//! succeeded iff the phase is `Succeeded`; `status.message` explains a failure.

#![warn(missing_docs)]

pub mod artifacts;
pub mod logs;
pub mod manifest;
pub mod nodes;
pub mod references;
pub mod templates;

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};

use action_runner::InputDigest;
use action_runner::identity::{self, INPUT_DIGEST_LABEL, Sameness};
use action_runner::{
    ActionRunner, Config, ExecutionContext, Progress, Required, RunnerError, StartInput,
    StartOutput, Variable, WaitForCompletionInput, WaitForCompletionOutput, validation, vars,
};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::core::Request;
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use manifest::WorkflowManifest;

/// Label every Workflow created by this runner carries (`app.kubernetes.io/managed-by`).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "argo-runner";
/// Label holding `RUNNER_CONTEXT_NAME`; with [`MANAGED_BY_LABEL`] it tells a retried Job pod
/// that an existing Workflow is its own.
pub const CONTEXT_LABEL: &str = "action-runners.io/context-name";
/// Field manager recorded on what the runner writes.
pub const FIELD_MANAGER: &str = "argo-runner";

/// Phases after which Argo never changes a Workflow again (`WorkflowPhase.Completed()`).
const TERMINAL_PHASES: [&str; 3] = ["Succeeded", "Failed", "Error"];

/// The Workflow resource, `workflows.argoproj.io/v1alpha1`.
pub fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", manifest::KIND),
        "workflows",
    )
}

/// Runs an Argo Workflow. Holds, between start and wait, the UID of the Workflow it created
/// or adopted.
#[derive(Debug, Default)]
pub struct ArgoRunner {
    uid: Option<String>,
    dry_run: bool,
    on_cancel: OnCancel,
    /// `RUNNER_OUTPUT_ARGO_WORKFLOW_FILE_PATH`.
    output: Option<PathBuf>,
    /// `RUNNER_ARGO_LOGS`.
    follow_logs: bool,
}

/// argo-runner's own variables, as the Manager reads them ([`ActionRunner::Config`]): text,
/// parsed by [`ArgoRunner`]'s `prepare` so that a bad value is an error naming the variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ArgoVars {
    /// [`ON_CANCEL_VAR`] ([`OnCancel`]).
    pub argo_on_cancel: Option<String>,
    /// [`LOGS_VAR`].
    pub argo_logs: Option<String>,
    /// [`OUTPUT_FILE_VAR`].
    pub output_argo_workflow_file_path: Option<String>,
}

/// Environment variable naming the file the runner writes the finished Workflow's summary to
/// (see [`WorkflowSummary`]); unset or empty: no file.
pub const OUTPUT_FILE_VAR: &str = "RUNNER_OUTPUT_ARGO_WORKFLOW_FILE_PATH";

/// Environment variable that turns on following the Workflow's pods' logs (`true`/`false`,
/// default `false`; see [`logs`]).
pub const LOGS_VAR: &str = "RUNNER_ARGO_LOGS";

/// Environment variable saying what happens to the Workflow when the runner is cancelled or
/// times out ([`OnCancel`]).
pub const ON_CANCEL_VAR: &str = "RUNNER_ARGO_ON_CANCEL";

/// The variables argo-runner reads besides the common ones: what `argo-runner --help` lists and
/// `docs/argo.md`'s table shows (a test checks that the table is this one).
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: ON_CANCEL_VAR,
        required: Required::No,
        default: Some("`leave`"),
        meaning: "`leave`, `stop` or `terminate`: what happens to the Workflow when the runner is \
                  cancelled or times out",
    },
    Variable {
        name: LOGS_VAR,
        required: Required::No,
        default: Some("`false`"),
        meaning: "follow the Workflow's pods' logs into the runner's log",
    },
    Variable {
        name: OUTPUT_FILE_VAR,
        required: Required::No,
        default: Some("no file"),
        meaning: "where to write the finished Workflow's summary (YAML: its outputs, and its \
                  artifacts with their bucket and key)",
    },
];

/// How many failed nodes the one-line message names (all of them, up to
/// [`MAX_FAILED_NODES`], are in the status).
pub const FAILED_NODES_IN_MESSAGE: usize = 3;
/// How many failed nodes the status and the output file list.
pub const MAX_FAILED_NODES: usize = 20;
/// How many running nodes the progress lists.
pub const MAX_RUNNING_NODES: usize = 10;

/// `RUNNER_ARGO_ON_CANCEL`: what happens to the Workflow when the runner stops waiting before it
/// finished (SIGTERM or SIGINT, or `RUNNER_TIMEOUT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnCancel {
    /// `leave` (default): the Workflow runs on.
    #[default]
    Leave,
    /// `stop`: sets `spec.shutdown: Stop`; Argo runs no new steps but lets exit handlers run.
    Stop,
    /// `terminate`: sets `spec.shutdown: Terminate`; Argo stops the running steps at once and runs
    /// no exit handler. (Argo's `ShutdownStrategy`, `pkg/apis/workflow/v1alpha1`.)
    Terminate,
}

impl OnCancel {
    /// Reads `RUNNER_ARGO_ON_CANCEL` from `value` (unset or empty is `leave`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the variable.
    pub fn parse(value: Option<&str>) -> Result<Self, RunnerError> {
        match value.map(str::trim).unwrap_or_default() {
            "" | "leave" => Ok(OnCancel::Leave),
            "stop" => Ok(OnCancel::Stop),
            "terminate" => Ok(OnCancel::Terminate),
            other => Err(vars::invalid_value(
                ON_CANCEL_VAR,
                other,
                "must be leave, stop or terminate",
            )),
        }
    }

    fn shutdown(self) -> Option<&'static str> {
        match self {
            OnCancel::Leave => None,
            OnCancel::Stop => Some("Stop"),
            OnCancel::Terminate => Some("Terminate"),
        }
    }
}

impl ArgoRunner {
    /// A new runner.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Builds the Workflow object the runner submits: `input`'s spec and labels, named and
/// namespaced from `ctx`, labelled as created by this runner for this input (`digest`: the
/// manifest's [`InputDigest`], to which the spec as submitted is added; the label
/// [`INPUT_DIGEST_LABEL`] holds the result), `spec.serviceAccountName` set from the context when
/// the spec has none, and the context's owner reference.
pub fn build_workflow(
    ctx: &ExecutionContext,
    input: &WorkflowManifest,
    mut digest: InputDigest,
) -> Value {
    let mut labels = input.labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(CONTEXT_LABEL.into(), ctx.name.clone());
    let mut spec = input.spec.clone();
    if let Some(sa) = &ctx.platform.service_account_name {
        spec.entry("serviceAccountName")
            .or_insert_with(|| Value::String(sa.clone()));
    }
    let spec_json = serde_json::to_vec(&spec).expect("a spec serializes");
    digest.add("spec", &spec_json);
    labels.insert(INPUT_DIGEST_LABEL.into(), digest.finish());
    let mut metadata = json!({
        "name": ctx.name,
        "namespace": ctx.platform.namespace,
        "labels": labels,
    });
    if !input.annotations.is_empty() {
        metadata["annotations"] = json!(input.annotations);
    }
    if let Some(owner) = &ctx.platform.owner_reference {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({
        "apiVersion": manifest::API_VERSION,
        "kind": manifest::KIND,
        "metadata": metadata,
        "spec": spec,
    })
}

/// Whether `existing` (a Workflow named after this action) is this action's own, from an
/// earlier attempt: made by argo-runner under this context name, with the same controller owner
/// (none on both sides, or the same uid) and the same input digest as `wanted`, the Workflow
/// this attempt would create ([`identity`](action_runner::identity)).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) (exit 2; nothing was written)
/// saying whose it is and what to change: not made by argo-runner for this context, made for
/// another owner, or for another input.
fn check_ours(existing: &DynamicObject, wanted: &Value, what: &str) -> Result<(), RunnerError> {
    let labels: &BTreeMap<String, String> = existing
        .metadata
        .labels
        .as_ref()
        .unwrap_or(const { &BTreeMap::new() });
    let wanted_label = |k: &str| wanted["metadata"]["labels"][k].as_str().unwrap_or_default();
    let context = wanted_label(CONTEXT_LABEL);
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY)
        || labels.get(CONTEXT_LABEL).map(String::as_str) != Some(context)
    {
        return Err(RunnerError::invalid_input(format!(
            "{what} already exists and was not created by argo-runner for this context (labels \
             {MANAGED_BY_LABEL}={MANAGED_BY}, {CONTEXT_LABEL}={context}); choose another \
             RUNNER_CONTEXT_NAME or delete it"
        )));
    }
    let controller = |refs: Option<&Vec<OwnerReference>>| {
        refs.into_iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| (r.kind.clone(), r.name.clone(), r.uid.clone()))
    };
    let stored_owner = controller(existing.metadata.owner_references.as_ref());
    let wanted_refs: Option<Vec<OwnerReference>> =
        serde_json::from_value(wanted["metadata"]["ownerReferences"].clone()).ok();
    let owner = controller(wanted_refs.as_ref());
    let sameness = identity::compare(
        stored_owner.as_ref().map(|o| o.2.as_str()),
        labels.get(INPUT_DIGEST_LABEL).map(String::as_str),
        owner.as_ref().map(|o| o.2.as_str()),
        wanted_label(INPUT_DIGEST_LABEL),
    );
    let named = |o: &Option<(String, String, String)>| match o {
        Some((kind, name, uid)) => format!("{kind} {name} (uid {uid})"),
        None => "no owner".into(),
    };
    match sameness {
        Sameness::Same => Ok(()),
        Sameness::OtherOwner { .. } => Err(RunnerError::invalid_input(format!(
            "{what} already exists and belongs to another action: its owner is {}, this runner's \
             is {}; two Jobs cannot be one action: give this one its own RUNNER_CONTEXT_NAME",
            named(&stored_owner),
            named(&owner)
        ))),
        Sameness::OtherInput { digest } => Err(RunnerError::invalid_input(format!(
            "{what} already exists for another input of this action (input digest {}, this \
             run's {}): a changed input is a new action; give it another RUNNER_CONTEXT_NAME, \
             or delete the Workflow to run it again under this one",
            digest.as_deref().unwrap_or("none"),
            wanted_label(INPUT_DIGEST_LABEL)
        ))),
    }
}

/// What the runner reads of a Workflow's `status` (Argo's `WorkflowStatus`,
/// `pkg/apis/workflow/v1alpha1/workflow_types.go`); every other field is left alone. The spec
/// stays opaque JSON, so no field of any Argo version is lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Error`.
    #[serde(default)]
    pub phase: Option<String>,
    /// Set once the Workflow has finished (RFC 3339).
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it failed, in Argo's words.
    #[serde(default)]
    pub message: Option<String>,
    /// Set when the controller started it (RFC 3339).
    #[serde(default)]
    pub started_at: Option<String>,
    /// `done/total` of its pod nodes, e.g. `3/5` (Argo's `Progress`).
    #[serde(default)]
    pub progress: Option<String>,
    /// Every node, by ID.
    #[serde(default)]
    pub nodes: BTreeMap<String, nodes::NodeStatus>,
    /// Its global outputs (`parameters`, `artifacts`).
    #[serde(default)]
    pub outputs: Option<Value>,
    /// The artifact repository Argo resolved for it (`{namespace, configMap, key, default,
    /// artifactRepository: {s3: {...}}}`; see [`artifacts::repository`]).
    #[serde(default)]
    pub artifact_repository_ref: Option<Value>,
}

/// A Workflow as the runner watches it: opaque spec, typed status.
pub type Workflow = kube::core::Object<Value, WorkflowStatus>;

/// The outcome of a Workflow, if it has finished: `(succeeded, phase, message)`.
pub fn outcome(wf: &Workflow) -> Option<(bool, String, String)> {
    let status = wf.status.as_ref()?;
    let phase = status.phase.as_deref().unwrap_or_default();
    if status.finished_at.is_none() && !TERMINAL_PHASES.contains(&phase) {
        return None;
    }
    let message = status.message.clone().unwrap_or_default();
    Some((phase == "Succeeded", phase.to_string(), message))
}

fn phase_of(wf: &Workflow) -> String {
    wf.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into())
}

/// Whether Argo names the Workflow's pods with its scheme v2 (the default) rather than v1.
fn pod_names_v2(wf: &Workflow) -> bool {
    wf.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(nodes::POD_NAME_FORMAT_ANNOTATION))
        .is_none_or(|v| v != "v1")
}

/// The progress the runner reports while a Workflow runs, under `runnerStatus.workflow`:
/// `{"phase": "Running", "progress": "1/3", "runningNodes": ["B", "C"]}` (at most
/// [`MAX_RUNNING_NODES`] names), and, under Argo 4, `"restartingNodes": ["A (restart 2)"]`
/// while Argo replaces a pod that failed before starting ([`nodes::restarting_nodes`]).
pub fn progress_of(wf: &Workflow) -> Value {
    let status = wf.status.clone().unwrap_or_default();
    let mut workflow = json!({
        "phase": phase_of(wf),
        "progress": status.progress,
        "runningNodes": nodes::running_nodes(&status.nodes, MAX_RUNNING_NODES),
    });
    let restarting = nodes::restarting_nodes(&status.nodes, MAX_RUNNING_NODES);
    if !restarting.is_empty() {
        workflow["restartingNodes"] = json!(restarting);
    }
    json!({ "workflow": workflow })
}

/// What the runner tells of a finished Workflow: in the final status (`runnerStatus.workflow`)
/// and, when [`OUTPUT_FILE_VAR`] is set, as YAML in that file.
///
/// Example (YAML): `name: act-1`, `namespace: ns`, `uid: ...`, `phase: Failed`,
/// `progress: 1/2`, `startedAt`/`finishedAt` (RFC 3339), `message` (Argo's),
/// `failedNodes: [{displayName, name, phase, template, pod, exitCode, message, attempt}]`,
/// `exitHandler: {phase, message}`, `outputs: {parameters: [{name, value}], artifacts: [...]}`,
/// `artifacts: {items: [{node, name, s3: {bucket, endpoint, key}}], omitted}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    /// The Workflow's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `Succeeded`, `Failed` or `Error`.
    pub phase: String,
    /// `done/total` of its pod nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Argo's `status.message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The nodes that failed (see [`nodes::failed_nodes`]), at most [`MAX_FAILED_NODES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_nodes: Vec<nodes::FailedNode>,
    /// The exit handler's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_handler: Option<nodes::ExitHandler>,
    /// The global outputs (see [`nodes::global_outputs`]).
    #[serde(default)]
    pub outputs: Value,
    /// Every output artifact its pods saved, where it is (see [`artifacts::output_artifacts`]).
    #[serde(default, skip_serializing_if = "artifacts::Artifacts::is_empty")]
    pub artifacts: artifacts::Artifacts,
}

impl WorkflowSummary {
    /// The summary of finished Workflow `wf`.
    pub fn of(wf: &Workflow) -> Self {
        let status = wf.status.clone().unwrap_or_default();
        let name = wf.metadata.name.clone().unwrap_or_default();
        let mut failed_nodes = nodes::failed_nodes(&name, &status.nodes, pod_names_v2(wf));
        failed_nodes.truncate(MAX_FAILED_NODES);
        let repository = artifacts::repository(status.artifact_repository_ref.as_ref());
        WorkflowSummary {
            exit_handler: nodes::exit_handler(&name, &status.nodes),
            namespace: wf.metadata.namespace.clone().unwrap_or_default(),
            uid: wf.metadata.uid.clone(),
            phase: phase_of(wf),
            progress: status.progress,
            started_at: status.started_at,
            finished_at: status.finished_at,
            message: status.message.filter(|m| !m.is_empty()),
            failed_nodes,
            outputs: nodes::global_outputs(status.outputs.as_ref(), repository),
            artifacts: artifacts::output_artifacts(&status.nodes, repository),
            name,
        }
    }

    /// The one-line outcome: `Workflow ns/name Succeeded`, or for a failure the phase, Argo's
    /// message, the failed nodes (at most [`FAILED_NODES_IN_MESSAGE`]) and the exit handler's
    /// outcome (see [`nodes::failure_message`]).
    pub fn message(&self, what: &str) -> String {
        let argo = self.message.as_deref().unwrap_or_default();
        if self.phase == "Succeeded" {
            return if argo.is_empty() {
                format!("{what} Succeeded")
            } else {
                argo.to_string()
            };
        }
        let details = nodes::failure_message(
            argo,
            &self.failed_nodes,
            self.exit_handler.as_ref(),
            FAILED_NODES_IN_MESSAGE,
        );
        if details.is_empty() {
            format!("{what} {}", self.phase)
        } else {
            format!("{what} {}: {details}", self.phase)
        }
    }
}

impl ActionRunner for ArgoRunner {
    type Config = ArgoVars;
    type Args = WorkflowManifest;

    fn name(&self) -> &'static str {
        "argo"
    }

    fn prepare(
        &mut self,
        config: &Config,
        own: ArgoVars,
        args: &WorkflowManifest,
    ) -> Result<(), RunnerError> {
        let ctx = &config.context;
        // Argo labels each pod of a Workflow with the Workflow's name
        // (`workflows.argoproj.io/workflow`), so the name must also be a valid label value.
        validation::dns1123_label(&ctx.name).map_err(|e| {
            vars::invalid_value(
                "RUNNER_CONTEXT_NAME",
                &ctx.name,
                format!("{e} (Argo labels the Workflow's pods with its name)"),
            )
        })?;
        if let Some(ns) = &args.namespace
            && ns != &ctx.platform.namespace
        {
            return Err(RunnerError::invalid_input(format!(
                "input manifest: metadata.namespace {ns:?} differs from \
                 RUNNER_CONTEXT_PLATFORM_NAMESPACE {:?}",
                ctx.platform.namespace
            )));
        }
        self.on_cancel = OnCancel::parse(own.argo_on_cancel.as_deref())?;
        self.output = own
            .output_argo_workflow_file_path
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        self.follow_logs = vars::boolean(LOGS_VAR, own.argo_logs)?;
        if let Some(broken) = references::broken_reference(&args.spec) {
            return Err(RunnerError::invalid_input(format!(
                "input manifest: {broken}"
            )));
        }
        Ok(())
    }

    async fn start(
        &mut self,
        input: StartInput<WorkflowManifest>,
    ) -> Result<StartOutput, RunnerError> {
        let ctx = &input.ctx;
        let ns = &ctx.platform.namespace;
        let what = format!("Workflow {ns}/{}", ctx.name);
        let ar = workflow_resource();
        let workflow = build_workflow(ctx, &input.args, input.digest.clone());
        self.dry_run = ctx.dry_run;
        // The (Cluster)WorkflowTemplates it refers to exist and have the templates named
        // (nothing is written before this passes).
        input
            .activity
            .set(format!("checking the WorkflowTemplates {what} refers to"));
        templates::check(&input.client, ns, &input.args.spec).await?;
        input.activity.set(format!("creating {what}"));
        let (created, adopted) = create_or_adopt(&input.client, ctx, &workflow, &what).await?;
        self.uid = if ctx.dry_run && !adopted {
            None
        } else {
            created.metadata.uid.clone()
        };
        if ctx.dry_run {
            tracing::info!(workflow = %what, "dry run: the API server accepted the Workflow; nothing was persisted");
        } else if !adopted {
            tracing::info!(workflow = %what, uid = self.uid.as_deref().unwrap_or_default(), "Workflow created");
        }
        let objects = if ctx.dry_run {
            Vec::new()
        } else {
            vec![k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(format!("{}/{}", ar.group, ar.version)),
                kind: Some(ar.kind.clone()),
                name: Some(ctx.name.clone()),
                namespace: Some(ns.to_string()),
                uid: self.uid.clone(),
                ..Default::default()
            }]
        };
        Ok(StartOutput {
            status: json!({
                "argoWorkflowRef": { "name": ctx.name, "namespace": ns, "uid": self.uid },
                "adopted": adopted,
            }),
            objects,
            adopted,
        })
    }

    async fn wait_for_completion(
        &mut self,
        input: WaitForCompletionInput,
    ) -> Result<WaitForCompletionOutput, RunnerError> {
        let ctx = &input.ctx;
        let what = format!("Workflow {}/{}", ctx.platform.namespace, ctx.name);
        if self.dry_run {
            return Ok(WaitForCompletionOutput {
                succeeded: true,
                message: format!("dry run: the API server accepted {what}; nothing was persisted"),
                ..Default::default()
            });
        }
        let api: Api<Workflow> = Api::namespaced_with(
            input.client.clone(),
            &ctx.platform.namespace,
            &workflow_resource(),
        );
        let logs = self
            .follow_logs
            .then(|| logs::follow(input.client.clone(), &ctx.platform.namespace, &ctx.name));
        let waited =
            wait_for_workflow(api, &ctx.name, self.uid.as_deref(), &what, &input.progress).await;
        if let Some(logs) = logs {
            logs.finish().await;
        }
        let wf = waited?;
        let summary = WorkflowSummary::of(&wf);
        let succeeded = summary.phase == "Succeeded";
        let message = summary.message(&what);
        if let Some(path) = &self.output {
            write_output(path, &summary)?;
        }
        Ok(WaitForCompletionOutput {
            succeeded,
            message,
            status: json!({ "workflow": summary }),
        })
    }

    /// With `RUNNER_ARGO_ON_CANCEL` `stop` or `terminate`, sets the Workflow's `spec.shutdown`
    /// (a JSON merge patch; needs `patch` on `workflows.argoproj.io`), so that a cancelled Job
    /// leaves no Workflow running.
    async fn cancel(
        &mut self,
        input: WaitForCompletionInput,
    ) -> Result<Option<String>, RunnerError> {
        if self.dry_run || self.uid.is_none() {
            return Ok(None);
        }
        let ctx = &input.ctx;
        let what = format!("Workflow {}/{}", ctx.platform.namespace, ctx.name);
        let waiting = waiting_note(&input, &what).await;
        let Some(strategy) = self.on_cancel.shutdown() else {
            return Ok(waiting);
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(input.client, &ctx.platform.namespace, &workflow_resource());
        let params = kube::api::PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let patch = kube::api::Patch::Merge(json!({"spec": {"shutdown": strategy}}));
        api.patch(&ctx.name, &params, &patch)
            .await
            .map_err(|e| RunnerError::from_kube(format!("patch {what} spec.shutdown"), e))?;
        tracing::info!(workflow = %what, shutdown = strategy, "asked Argo to shut the Workflow down");
        let shutdown = format!("set {what} spec.shutdown: {strategy} (RUNNER_ARGO_ON_CANCEL)");
        Ok(Some(match waiting {
            Some(w) => format!("{w}; {shutdown}"),
            None => shutdown,
        }))
    }
}

/// Creates `workflow` (named `what` in messages) in `ctx`'s namespace, or, when a Workflow of its
/// name exists and is this action's own ([`check_ours`]: a retried pod), adopts it: the
/// Workflow and whether it was adopted.
///
/// # Errors
/// The API server's, as [`RunnerError::from_kube`] classifies them; [`check_ours`]'s.
async fn create_or_adopt(
    client: &kube::Client,
    ctx: &ExecutionContext,
    workflow: &Value,
    what: &str,
) -> Result<(DynamicObject, bool), RunnerError> {
    let ns = &ctx.platform.namespace;
    let ar = workflow_resource();
    // POST with fieldValidation=Strict: a field unknown to the installed CRD is an error,
    // never silently pruned. (kube's PostParams has no fieldValidation, so the query is added
    // here.)
    let params = PostParams {
        dry_run: ctx.dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let body = serde_json::to_vec(workflow).expect("Workflow serializes");
    let mut request = Request::new(DynamicObject::url_path(&ar, Some(ns)))
        .create(&params, body)
        .map_err(|e| RunnerError::cluster(format!("create {what}")).because(e))?;
    let uri = format!("{}&fieldValidation=Strict", request.uri());
    *request.uri_mut() = uri.parse().expect("valid URI");

    let created = match client.request::<DynamicObject>(request).await {
        Ok(obj) => obj,
        Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let existing = api
                .get(&ctx.name)
                .await
                .map_err(|e| RunnerError::from_kube(format!("get {what}"), e))?;
            check_ours(&existing, workflow, what)?;
            tracing::info!(workflow = %what, "Workflow already exists and is ours (a retried run); attaching to it");
            return Ok((existing, true));
        }
        Err(e) => return Err(RunnerError::from_kube(format!("create {what}"), e)),
    };
    Ok((created, false))
}

/// How many unfinished nodes [`waiting_note`] names at the most.
const WAITING_NODES: usize = 5;

/// What the Workflow was waiting on when the wait was cut short (`RUNNER_TIMEOUT` or a signal),
/// read from the API (one GET; its nodes' phases and Argo's messages, which carry a pending pod's
/// reason): `Workflow ns/x was waiting on step "b" (pod x-t-123): Pending: ImagePullBackOff: ...`.
/// `None` when it cannot be read or nothing is unfinished.
async fn waiting_note(input: &WaitForCompletionInput, what: &str) -> Option<String> {
    let ctx = &input.ctx;
    let api: Api<Workflow> = Api::namespaced_with(
        input.client.clone(),
        &ctx.platform.namespace,
        &workflow_resource(),
    );
    let wf = match api.get(&ctx.name).await {
        Ok(wf) => wf,
        Err(e) => {
            tracing::warn!(workflow = %what, error = %e, "could not read what the Workflow waits on");
            return None;
        }
    };
    let status = wf.status.as_ref()?;
    let (waiting, more) =
        nodes::waiting_on(&ctx.name, &status.nodes, pod_names_v2(&wf), WAITING_NODES);
    if waiting.is_empty() {
        return None;
    }
    // Each waiting pod's own state, where the runner may read pods (the `logs` component of
    // deploy/argo-runner grants it): what the kubelet says, which Argo's node may not yet.
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(input.client.clone(), &ctx.platform.namespace);
    let mut described = Vec::new();
    let mut may_read_pods = true;
    for w in waiting {
        let mut text = w.text;
        if let (Some(pod), true) = (&w.pod, may_read_pods) {
            match pods.get_opt(pod).await {
                Ok(Some(p)) => text.push_str(&format!(" [pod {}]", nodes::pod_state(&p))),
                Ok(None) => text.push_str(" [pod not found]"),
                Err(kube::Error::Api(s)) if s.code == 403 => may_read_pods = false,
                Err(_) => {}
            }
        }
        described.push(text);
    }
    let mut note = format!("{what} was waiting on {}", described.join(", "));
    if more > 0 {
        note.push_str(&format!(" and {more} more"));
    }
    Some(note)
}

/// Watches Workflow `name` until it finishes and returns it, with kube-runtime's
/// `watch_object` (a list, then a watch from its `resourceVersion` with a field selector on
/// the name) and the runners' backoff ([`action_runner::client::watch_backoff`]: at most 5 s
/// apart): a dropped connection resumes the watch, `410 Gone` relists, and other errors are
/// retried with backoff, except `401`, `403` and `404`, which are returned. Every change before the end is passed to `progress` ([`progress_of`]). A Workflow
/// that disappears (`watch_object` yields nothing: a delete event, or absent from a relist) or
/// comes back with another `uid` fails the wait.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) if the Workflow was deleted before it
/// finished; [`ErrorKind::Cluster`](action_runner::error::ErrorKind) if it cannot be watched.
pub async fn wait_for_workflow(
    api: Api<Workflow>,
    name: &str,
    uid: Option<&str>,
    what: &str,
    progress: &Progress,
) -> Result<Workflow, RunnerError> {
    let mut events = watcher::watch_object(api, name)
        .backoff(action_runner::client::watch_backoff())
        .boxed();
    let mut last_phase = String::new();
    while let Some(event) = events.next().await {
        let wf = match event {
            Ok(Some(wf)) => wf,
            Ok(None) => {
                return Err(RunnerError::failed(format!(
                    "{what} was deleted before it finished"
                )));
            }
            Err(e) => {
                if let Some((code, message)) = fatal(&e) {
                    return Err(RunnerError::cluster(format!(
                        "watch {what}: {message} ({code})"
                    )));
                }
                tracing::warn!(workflow = %what, error = %e, "watch interrupted; resuming");
                continue;
            }
        };
        if let (Some(expected), Some(actual)) = (uid, wf.metadata.uid.as_deref())
            && expected != actual
        {
            return Err(RunnerError::failed(format!(
                "{what} was deleted and replaced by another object (uid {actual}, expected {expected})"
            )));
        }
        let phase = phase_of(&wf);
        if phase != last_phase {
            tracing::info!(workflow = %what, phase = %phase, "Workflow phase");
            last_phase = phase;
        }
        if outcome(&wf).is_some() {
            return Ok(wf);
        }
        progress.set(progress_of(&wf));
    }
    Err(RunnerError::unavailable(format!(
        "watch {what}: the watch stream ended"
    )))
}

/// Writes `summary` as YAML to `path` ([`OUTPUT_FILE_VAR`]).
fn write_output(path: &Path, summary: &WorkflowSummary) -> Result<(), RunnerError> {
    let text = serde_saphyr::to_string(summary).expect("the summary serializes");
    std::fs::write(path, text).map_err(|e| {
        RunnerError::failed(format!(
            "writing the output file {} ({OUTPUT_FILE_VAR}) failed",
            path.display()
        ))
        .because(e)
    })
}

/// The HTTP status and the API server's message of a watch error that retrying cannot fix
/// (unauthenticated, forbidden, or the resource is not served, e.g. Argo's CRD is missing).
fn fatal(err: &watcher::Error) -> Option<(u16, String)> {
    let (code, message) = match err {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => (s.code, &s.message),
        watcher::Error::WatchError(s) => (s.code, &s.message),
        _ => return None,
    };
    matches!(code, 401 | 403 | 404).then(|| (code, message.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Workflow named after the action is adopted only when the owner and the input match.
    #[test]
    fn only_this_actions_own_workflow_is_adopted() {
        let ctx = |uid: Option<&str>| ExecutionContext {
            name: "act".into(),
            dry_run: false,
            timeout: None,
            platform: action_runner::KubernetesPlatform {
                namespace: "ns".into(),
                service_account_name: None,
                owner_reference: uid.map(|uid| OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: format!("job-{uid}"),
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }),
            },
        };
        let manifest = |entry: &str| WorkflowManifest {
            spec: serde_json::from_value(json!({"entrypoint": entry})).unwrap(),
            ..Default::default()
        };
        let digest = || {
            let mut d = InputDigest::new();
            d.add("manifest", b"m");
            d
        };
        let stored = |c: &ExecutionContext, m: &WorkflowManifest| -> DynamicObject {
            serde_json::from_value(build_workflow(c, m, digest())).unwrap()
        };
        let first = stored(&ctx(Some("u1")), &manifest("main"));
        let again = build_workflow(&ctx(Some("u1")), &manifest("main"), digest());
        assert!(check_ours(&first, &again, "Workflow ns/act").is_ok());

        let other_job = build_workflow(&ctx(Some("u2")), &manifest("main"), digest());
        let e = check_ours(&first, &other_job, "Workflow ns/act").unwrap_err();
        assert_eq!(e.exit(), action_runner::Exit::InvalidInput);
        assert!(e.to_string().contains("Job job-u1 (uid u1)"), "{e}");
        assert!(e.to_string().contains("RUNNER_CONTEXT_NAME"), "{e}");

        let other_input = build_workflow(&ctx(Some("u1")), &manifest("other"), digest());
        let e = check_ours(&first, &other_input, "Workflow ns/act").unwrap_err();
        assert!(e.to_string().contains("another input"), "{e}");

        // By hand, no owner: the same input adopts, another input is refused.
        let by_hand = stored(&ctx(None), &manifest("main"));
        let again = build_workflow(&ctx(None), &manifest("main"), digest());
        assert!(check_ours(&by_hand, &again, "w").is_ok());
        let changed = build_workflow(&ctx(None), &manifest("other"), digest());
        assert!(check_ours(&by_hand, &changed, "w").is_err());
        // A Job after a by-hand run under the same name: another input of the name, refused.
        let job = build_workflow(&ctx(Some("u1")), &manifest("main"), digest());
        assert!(check_ours(&by_hand, &job, "w").is_err());
    }

    /// `prepare` reads argo-runner's variables from the configuration it is handed, and names
    /// a bad one.
    #[test]
    fn prepare_reads_the_variables_it_is_handed() {
        let config = Config::from_vars(&[
            ("RUNNER_INPUT_MANIFEST_PATH".into(), "/in.yaml".into()),
            ("RUNNER_CONTEXT_NAME".into(), "act".into()),
            ("RUNNER_CONTEXT_PLATFORM_NAMESPACE".into(), "ns".into()),
        ])
        .unwrap();
        let manifest = WorkflowManifest {
            spec: serde_json::from_value(json!({
                "entrypoint": "main",
                "templates": [{"name": "main", "container": {"image": "busybox"}}],
            }))
            .unwrap(),
            ..Default::default()
        };
        let mut runner = ArgoRunner::new();
        let own = ArgoVars {
            argo_on_cancel: Some("terminate".into()),
            argo_logs: Some("true".into()),
            output_argo_workflow_file_path: Some("/tmp/wf.yaml".into()),
        };
        runner.prepare(&config, own, &manifest).unwrap();
        assert_eq!(runner.on_cancel, OnCancel::Terminate);
        assert!(runner.follow_logs);
        assert_eq!(runner.output, Some(PathBuf::from("/tmp/wf.yaml")));

        for (own, named) in [
            (
                ArgoVars {
                    argo_on_cancel: Some("halt".into()),
                    ..ArgoVars::default()
                },
                "invalid configuration: RUNNER_ARGO_ON_CANCEL=\"halt\" must be leave, stop or \
                 terminate",
            ),
            (
                ArgoVars {
                    argo_logs: Some("yes".into()),
                    ..ArgoVars::default()
                },
                "invalid configuration: RUNNER_ARGO_LOGS=\"yes\" is not a boolean (true or false)",
            ),
        ] {
            let e = ArgoRunner::new()
                .prepare(&config, own, &manifest)
                .unwrap_err();
            assert_eq!(e.to_string(), named);
        }
    }
}

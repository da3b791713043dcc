//! The Argo Workflows action runner: creates the `Workflow` named `RUNNER_CONTEXT_NAME` in the
//! platform namespace and waits, with a watch, until it has finished.
//!
//! Rules taken from Argo Workflows v3 (`pkg/apis/workflow/v1alpha1`): a Workflow has finished
//! when `status.finishedAt` is set or `status.phase` is `Succeeded`, `Failed` or `Error`; it
//! succeeded iff the phase is `Succeeded`; `status.message` explains a failure.

pub mod manifest;
pub mod references;

use std::collections::BTreeMap;

use action_runner::{
    ActionRunner, ExecutionContext, RunnerError, StartInput, StartOutput, WaitForCompletionInput,
    WaitForCompletionOutput, validation,
};
use futures::StreamExt;
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
}

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
            other => Err(RunnerError::invalid_input(format!(
                "invalid configuration: RUNNER_ARGO_ON_CANCEL={other:?} must be leave, stop or \
                 terminate"
            ))),
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
/// namespaced from `ctx`, labelled as created by this runner, `spec.serviceAccountName` set from
/// the context when the spec has none, and the context's owner reference.
pub fn build_workflow(ctx: &ExecutionContext, input: &WorkflowManifest) -> Value {
    let mut labels = input.labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(CONTEXT_LABEL.into(), ctx.name.clone());
    let mut spec = input.spec.clone();
    if let Some(sa) = &ctx.platform.service_account_name {
        spec.entry("serviceAccountName")
            .or_insert_with(|| Value::String(sa.clone()));
    }
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

fn is_ours(obj: &DynamicObject, ctx: &ExecutionContext) -> bool {
    let labels: &BTreeMap<String, String> = obj
        .metadata
        .labels
        .as_ref()
        .unwrap_or(const { &BTreeMap::new() });
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && labels.get(CONTEXT_LABEL) == Some(&ctx.name)
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

impl ActionRunner for ArgoRunner {
    type Args = WorkflowManifest;

    fn name(&self) -> &'static str {
        "argo"
    }

    fn prepare(
        &mut self,
        ctx: &ExecutionContext,
        args: &WorkflowManifest,
    ) -> Result<(), RunnerError> {
        // Argo labels each pod of a Workflow with the Workflow's name
        // (`workflows.argoproj.io/workflow`), so the name must also be a valid label value.
        validation::dns1123_label(&ctx.name).map_err(|e| {
            RunnerError::invalid_input(format!(
                "invalid configuration: RUNNER_CONTEXT_NAME={:?} {e} (Argo labels the Workflow's \
                 pods with its name)",
                ctx.name
            ))
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
        self.on_cancel = OnCancel::parse(std::env::var("RUNNER_ARGO_ON_CANCEL").ok().as_deref())?;
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
        let workflow = build_workflow(ctx, &input.args);
        self.dry_run = ctx.dry_run;

        // POST with fieldValidation=Strict: a field unknown to the installed CRD is an error,
        // never silently pruned. (kube's PostParams has no fieldValidation, so the query is added
        // here.)
        let params = PostParams {
            dry_run: ctx.dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(&workflow).expect("Workflow serializes");
        let mut request = Request::new(DynamicObject::url_path(&ar, Some(ns)))
            .create(&params, body)
            .map_err(|e| RunnerError::cluster(format!("create {what}")).because(e))?;
        let uri = format!("{}&fieldValidation=Strict", request.uri());
        *request.uri_mut() = uri.parse().expect("valid URI");

        let mut adopted = false;
        let created = match input.client.request::<DynamicObject>(request).await {
            Ok(obj) => obj,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let api: Api<DynamicObject> = Api::namespaced_with(input.client.clone(), ns, &ar);
                let existing = api
                    .get(&ctx.name)
                    .await
                    .map_err(|e| RunnerError::from_kube(format!("get {what}"), e))?;
                if !is_ours(&existing, ctx) {
                    return Err(RunnerError::invalid_input(format!(
                        "{what} already exists and was not created by argo-runner for this \
                         context (labels {MANAGED_BY_LABEL}={MANAGED_BY}, {CONTEXT_LABEL}={}); \
                         choose another RUNNER_CONTEXT_NAME or delete it",
                        ctx.name
                    )));
                }
                tracing::info!(workflow = %what, "Workflow already exists and is ours (a retried run); attaching to it");
                adopted = true;
                existing
            }
            Err(e) => return Err(RunnerError::from_kube(format!("create {what}"), e)),
        };
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
                status: None,
            });
        }
        let api: Api<Workflow> =
            Api::namespaced_with(input.client, &ctx.platform.namespace, &workflow_resource());
        wait_for_workflow(api, &ctx.name, self.uid.as_deref(), &what).await
    }

    /// With `RUNNER_ARGO_ON_CANCEL` `stop` or `terminate`, sets the Workflow's `spec.shutdown`
    /// (a JSON merge patch; needs `patch` on `workflows.argoproj.io`), so that a cancelled Job
    /// leaves no Workflow running.
    async fn cancel(
        &mut self,
        input: WaitForCompletionInput,
    ) -> Result<Option<String>, RunnerError> {
        let Some(strategy) = self.on_cancel.shutdown() else {
            return Ok(None);
        };
        if self.dry_run || self.uid.is_none() {
            return Ok(None);
        }
        let ctx = &input.ctx;
        let what = format!("Workflow {}/{}", ctx.platform.namespace, ctx.name);
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
        Ok(Some(format!(
            "set {what} spec.shutdown: {strategy} (RUNNER_ARGO_ON_CANCEL)"
        )))
    }
}

/// Watches Workflow `name` until it finishes, with kube-runtime's `watch_object` (a list, then a
/// watch from its `resourceVersion` with a field selector on the name) and its default backoff:
/// a dropped connection resumes the watch, `410 Gone` relists, and other errors are retried
/// with backoff, except `401`, `403` and `404`, which are returned. A Workflow that disappears
/// (`watch_object` yields nothing: a delete event, or absent from a relist) or comes back with
/// another `uid` fails the wait.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) if the Workflow was deleted before it
/// finished; [`ErrorKind::Cluster`](action_runner::error::ErrorKind) if it cannot be watched.
pub async fn wait_for_workflow(
    api: Api<Workflow>,
    name: &str,
    uid: Option<&str>,
    what: &str,
) -> Result<WaitForCompletionOutput, RunnerError> {
    let mut events = watcher::watch_object(api, name).default_backoff().boxed();
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
        if let Some(done) = outcome(&wf) {
            return Ok(finished(what, done));
        }
    }
    Err(RunnerError::unavailable(format!(
        "watch {what}: the watch stream ended"
    )))
}

fn finished(
    what: &str,
    (succeeded, phase, message): (bool, String, String),
) -> WaitForCompletionOutput {
    let message = if message.is_empty() {
        format!("{what} {phase}")
    } else {
        message
    };
    WaitForCompletionOutput {
        succeeded,
        message,
        status: None,
    }
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

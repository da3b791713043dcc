//! Stand-ins for controllers, for the bare control plane where none runs: Argo's workflow
//! controller (it patches a Workflow's `status` as Argo's does) and the Deployment controller,
//! just enough for Helm's `--wait`. On the local cluster the real ones run.

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

/// The Workflow API in `namespace`.
pub fn workflows(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &action_runner_argo::workflow_resource(),
    )
}

/// How the stand-in Argo controller ends a Workflow.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Phase `Succeeded`.
    Succeeded,
    /// Phase `Failed` with this `status.message`.
    Failed(String),
}

/// Current time, RFC 3339 UTC, second precision.
pub fn now() -> String {
    action_runner::status::now_rfc3339()
}

/// Waits until Workflow `namespace/name` exists (watching it), then returns it.
///
/// # Errors
/// On API errors or after `timeout`.
pub async fn wait_for_workflow(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<DynamicObject> {
    let api = workflows(client, namespace);
    let cond =
        kube::runtime::wait::await_condition(api, name, |o: Option<&DynamicObject>| o.is_some());
    let obj = tokio::time::timeout(timeout, cond)
        .await
        .context("Workflow did not appear")??;
    obj.context("Workflow vanished")
}

/// Patches Workflow `namespace/name`'s status (a JSON merge patch of `status`, as Argo's
/// controller updates the whole object: its CRD has no status subresource).
///
/// # Errors
/// On API errors.
pub async fn patch_workflow_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: serde_json::Value,
) -> Result<()> {
    workflows(client, namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// Plays Argo's workflow controller for one Workflow: waits until it exists, sets phase
/// `Running`, waits `running_for`, then ends it with `outcome` (and `finishedAt`).
///
/// # Errors
/// On API errors or if the Workflow does not appear within 60 s.
pub async fn play_argo_controller(
    client: kube::Client,
    namespace: String,
    name: String,
    running_for: Duration,
    outcome: Outcome,
) -> Result<()> {
    wait_for_workflow(&client, &namespace, &name, Duration::from_secs(60)).await?;
    let started = now();
    patch_workflow_status(
        &client,
        &namespace,
        &name,
        json!({"phase": "Running", "startedAt": started}),
    )
    .await?;
    tokio::time::sleep(running_for).await;
    let (phase, message) = match outcome {
        Outcome::Succeeded => ("Succeeded", None),
        Outcome::Failed(m) => ("Failed", Some(m)),
    };
    patch_workflow_status(
        &client,
        &namespace,
        &name,
        json!({"phase": phase, "startedAt": started, "finishedAt": now(), "message": message}),
    )
    .await
}

/// Plays the Deployment and ReplicaSet controllers and the kubelet in `namespace`, just enough
/// for Helm's `--wait`: for each Deployment whose `status.observedGeneration` lags its
/// `metadata.generation`, creates the ReplicaSet of its current pod template (owned by it,
/// labelled with a `pod-template-hash`), marks all its replicas ready, and sets the
/// Deployment's status as the controller would, `rollout` after it saw the change (a stand-in
/// for the time a real rollout takes). No Pod is created.
///
/// Helm 4's `--wait=watcher` (kstatus) also reads the `Progressing` and `Available` conditions,
/// which are set as the Deployment controller sets them at the end of a rollout.
///
/// Helm v3's readiness rule (`pkg/kube/ready.go`, `deploymentReady`): the newest ReplicaSet
/// whose template equals the Deployment's (ignoring `pod-template-hash`) has observed its
/// generation and has at least `replicas - maxUnavailable` ready replicas, and the Deployment
/// has observed its generation. Runs until the task is aborted.
///
/// # Errors
/// On API errors.
pub async fn play_deployment_controller(
    client: kube::Client,
    namespace: String,
    rollout: Duration,
) -> Result<()> {
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use std::hash::{Hash, Hasher};

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, &namespace);
    let mut events = kube::runtime::watcher(deployments.clone(), Default::default()).boxed();
    while let Some(event) = events.next().await {
        let (kube::runtime::watcher::Event::Apply(d) | kube::runtime::watcher::Event::InitApply(d)) =
            event?
        else {
            continue;
        };
        let generation = d.metadata.generation.unwrap_or(0);
        if d.status.as_ref().and_then(|s| s.observed_generation) == Some(generation) {
            continue;
        }
        let (Some(name), Some(uid)) = (d.metadata.name.clone(), d.metadata.uid.clone()) else {
            continue;
        };
        let spec = &d.spec;
        let replicas = spec.replicas.unwrap_or(1);
        let template = serde_json::to_value(&spec.template)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        template.to_string().hash(&mut hasher);
        let hash = format!("{:x}", hasher.finish() & 0xff_ffff_ffff);
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(hash);
        let mut rs_template = template.clone();
        rs_template["metadata"]["labels"] = labels.clone();
        let mut selector = serde_json::to_value(&spec.selector)?;
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let rs_name = format!("{name}-{hash}");
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {
                "name": rs_name,
                "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
        }))?;
        tokio::time::sleep(rollout).await;
        let rs = match replica_sets.create(&PostParams::default(), &rs).await {
            Ok(rs) => rs,
            Err(kube::Error::Api(e)) if e.code == 409 => replica_sets.get(&rs_name).await?,
            Err(e) => return Err(e.into()),
        };
        let ready = json!({"replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "fullyLabeledReplicas": replicas,
            "observedGeneration": rs.metadata.generation});
        replica_sets
            .patch_status(
                &rs_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": ready})),
            )
            .await?;
        // The conditions the Deployment controller sets once a rollout is complete: Helm 4's
        // `--wait=watcher` (kstatus, `deploymentConditions` in fluxcd/cli-utils) requires
        // `Progressing` with reason `NewReplicaSetAvailable` and `Available`, since the API
        // server defaults `progressDeadlineSeconds`.
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let condition = |type_: &str, reason: &str| {
            json!({"type": type_, "status": "True", "reason": reason, "message": reason,
                "lastUpdateTime": now, "lastTransitionTime": now})
        };
        let status = json!({"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [condition("Progressing", "NewReplicaSetAvailable"),
                condition("Available", "MinimumReplicasAvailable")]});
        deployments
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
    }
    Ok(())
}

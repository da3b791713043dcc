//! `deploy/` as the tests see it: its objects in the order its `kustomization.yaml` lists them,
//! applied with server-side apply, and the assertions on what its Jobs leave behind. The same
//! functions serve every place the Jobs run: the bare API server (`rbac_e2e.rs`, where the test
//! starts the binary in the pod's place), the local cluster (`cluster_e2e.rs`, real pods) and
//! kind (`hack/kind-e2e.sh`).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, ValidationDirective};
use kube::discovery::Scope;
use serde_json::{Value, json};

use crate::controllers::workflows;
use crate::test_env::reported_status;
use crate::tools::repo_root;
use action_runner::status::{Phase, Reason};

/// Field manager of what the tests apply.
pub const MANAGER: &str = "kar-tests";

/// `deploy/<runner>`.
pub fn deploy_dir(runner: &str) -> PathBuf {
    repo_root().join("deploy").join(runner)
}

/// Every object of `deploy/<runner>`, in the order its `kustomization.yaml` lists the files,
/// with the file each came from. Checks that the kustomization lists exactly the YAML files of
/// the directory, so that `kubectl apply -k` and this test see the same objects.
pub fn deploy_objects(runner: &str) -> Vec<(String, Value)> {
    let dir = deploy_dir(runner);
    let kustomization: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    let listed: Vec<String> = kustomization["resources"]
        .as_array()
        .expect("kustomization.yaml: resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        on_disk,
        "{}/kustomization.yaml must list every manifest",
        dir.display()
    );
    let mut objects = Vec::new();
    for file in listed {
        let text = std::fs::read_to_string(dir.join(&file)).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text)
            .unwrap_or_else(|e| panic!("{runner}/{file}: {e}"));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            objects.push((format!("{runner}/{file}"), doc));
        }
    }
    objects
}

/// The objects (`resources`) of the opt-in kustomize Component `deploy/<runner>/components/<name>`
/// (its patches are left to the caller), with the file each came from.
pub fn component_objects(runner: &str, name: &str) -> Vec<(String, Value)> {
    let dir = deploy_dir(runner).join("components").join(name);
    let kustomization: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    assert_eq!(kustomization["kind"], "Component", "{}", dir.display());
    let mut objects = Vec::new();
    for file in kustomization["resources"].as_array().into_iter().flatten() {
        let file = file.as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        objects.push((
            format!("{runner}/components/{name}/{file}"),
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}")),
        ));
    }
    objects
}

/// `kind` of a manifest object.
pub fn kind_of(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of a manifest object.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| kind_of(o) == kind && name_of(o) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/"))
}

/// Server-side applies `obj` into namespace `ns` (with strict field validation, so an unknown or
/// misspelled field is an error), as a dry run or for real.
pub async fn apply(
    client: &kube::Client,
    ns: &str,
    obj: &Value,
    dry_run: bool,
) -> anyhow::Result<DynamicObject> {
    let (group, version) = match obj["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .split_once('/')
    {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            obj["apiVersion"].as_str().unwrap().to_string(),
        ),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, kind_of(obj));
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
    anyhow::ensure!(
        caps.scope == Scope::Namespaced,
        "{} {} is cluster-scoped: deploy/ holds only namespaced objects",
        kind_of(obj),
        name_of(obj)
    );
    let mut obj = obj.clone();
    obj["metadata"]["namespace"] = json!(ns);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let params = PatchParams {
        dry_run,
        force: true,
        field_manager: Some(MANAGER.into()),
        field_validation: Some(ValidationDirective::Strict),
    };
    Ok(api
        .patch(name_of(&obj), &params, &Patch::Apply(&obj))
        .await?)
}

/// What a successful run of `deploy/argo-runner`'s Job leaves behind, wherever it ran (here,
/// on the local cluster (`cluster_e2e.rs`), or on kind through `hack/kind-e2e.sh`): status `Succeeded` /
/// `Completed` reported by the argo runner for its context, and the Workflow owned by the Job
/// (`job_name`, `job_uid`) and run as the Workflow ServiceAccount.
pub async fn assert_argo_job_outcome(
    client: &kube::Client,
    ns: &str,
    job_name: &str,
    job_uid: &str,
) {
    let objects = deploy_objects("argo-runner");
    let d = find(&objects, "Job", job_name);
    let name = context_of(d);
    let status = reported_status(client, ns, &name).await.unwrap().unwrap();
    assert_eq!(status.runner, "argo", "{status:?}");
    assert_eq!(status.context_name, name.as_str(), "{status:?}");
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert_eq!(status.reason, Some(Reason::Completed), "{status:?}");
    assert_eq!(
        status.runner_status["argoWorkflowRef"]["name"],
        name.as_str(),
        "{status:?}"
    );
    let wf = workflows(client, ns).get(&name).await.unwrap();
    let owner = &wf.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Job", job_name, job_uid)
    );
    assert_eq!(wf.data["spec"]["serviceAccountName"], "argo-workflow");
}

/// What a successful run of `deploy/helm-runner`'s Job leaves behind: status `Succeeded` /
/// `Completed` reported by the helm runner, and the chart's ConfigMap with the input's value.
pub async fn assert_helm_job_outcome(client: &kube::Client, ns: &str) {
    let objects = deploy_objects("helm-runner");
    let name = context_of(find(&objects, "Job", "helm-runner-hello-release"));
    let status = reported_status(client, ns, &name).await.unwrap().unwrap();
    assert_eq!(status.context_name, name.as_str(), "{status:?}");
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert_eq!(status.reason, Some(Reason::Completed), "{status:?}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let greeting = cms.get("hello-release-greeting").await.unwrap();
    assert_eq!(greeting.data.unwrap()["greeting"], "hello from helm-runner");
}

/// `RUNNER_CONTEXT_NAME` of a Job in `deploy/`.
pub fn context_of(job: &Value) -> String {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "RUNNER_CONTEXT_NAME")
        .and_then(|e| e["value"].as_str())
        .expect("the Job sets RUNNER_CONTEXT_NAME")
        .to_string()
}

/// The Job of `deploy/<runner>`.
///
/// # Panics
/// When `deploy/<runner>` holds no Job.
pub fn job_of(runner: &str) -> Value {
    deploy_objects(runner)
        .into_iter()
        .map(|(_, o)| o)
        .find(|o| kind_of(o) == "Job")
        .unwrap_or_else(|| panic!("deploy/{runner} has no Job"))
}

/// Both Jobs of `deploy/` ran to completion in namespace `ns`, wherever they ran (the local
/// cluster, kind): each succeeded once and left what [`assert_argo_job_outcome`] and
/// [`assert_helm_job_outcome`] check.
///
/// # Panics
/// When they did not.
pub async fn assert_deploy_jobs_completed(client: &kube::Client, ns: &str) {
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), ns);
    for runner in ["argo-runner", "helm-runner"] {
        let job_name = name_of(&job_of(runner)).to_string();
        let job = jobs.get(&job_name).await.unwrap();
        let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        assert_eq!(succeeded, 1, "Job {ns}/{job_name}: {:?}", job.status);
        if runner == "argo-runner" {
            let uid = job.metadata.uid.clone().unwrap();
            assert_argo_job_outcome(client, ns, &job_name, &uid).await;
        } else {
            assert_helm_job_outcome(client, ns).await;
        }
    }
}

/// Applies every object of `deploy/<runner>` into namespace `ns` for real, in the order its
/// kustomization lists them (the Job last, so its Role exists when its pod starts), each after
/// `edit` has changed it; returns the applied Job.
///
/// # Errors
/// On API errors, naming the file.
pub async fn apply_deploy(
    client: &kube::Client,
    ns: &str,
    runner: &str,
    edit: impl Fn(&mut Value),
) -> anyhow::Result<DynamicObject> {
    let mut job = None;
    for (file, obj) in deploy_objects(runner) {
        let mut obj = obj;
        edit(&mut obj);
        let applied = apply(client, ns, &obj, false)
            .await
            .map_err(|e| anyhow::anyhow!("apply {file}: {e}"))?;
        if kind_of(&obj) == "Job" {
            job = Some(applied);
        }
    }
    job.ok_or_else(|| anyhow::anyhow!("deploy/{runner} has no Job"))
}

/// Sets variable `name` of the first container of Job manifest `job` to `value` (added if
/// missing).
///
/// # Panics
/// When `job` has no container.
pub fn set_env(job: &mut Value, name: &str, value: &str) {
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("the Job's container has env");
    env.retain(|e| e["name"] != name);
    env.push(json!({"name": name, "value": value}));
}

/// An edit of `deploy/helm-runner` that makes its release slow to become ready: the chart is one
/// Deployment (image `busybox`) whose pod becomes Ready 20 s after it starts, the input asks for
/// `wait: true`, and the Role grants what the chart and helm's `--wait` need. For tests that act
/// while helm waits (a pod deleted, a fault).
pub fn slow_helm_release(busybox: &str) -> impl Fn(&mut Value) + Clone + use<> {
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: \"{{{{ .Release.Name }}}}-slow\"}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: slow}}}}\n  template:\n    metadata: {{labels: {{app: slow}}}}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n      - name: main\n        image: {busybox}\n        imagePullPolicy: IfNotPresent\n        command: [sh, -c, \"sleep 20; touch /tmp/ready; exec sleep 3600\"]\n        readinessProbe: {{exec: {{command: [cat, /tmp/ready]}}, periodSeconds: 1}}\n"
    );
    move |obj: &mut Value| match (kind_of(obj), name_of(obj)) {
        ("ConfigMap", "hello-release-chart") => {
            obj["data"]["configmap.yaml"] = json!(deployment);
        }
        ("ConfigMap", "hello-release-input") => {
            obj["data"]["manifest.yaml"] =
                json!("name: hello-release\nchart: {name: /runner/chart}\nwait: true\n");
        }
        ("Role", _) => {
            let rules = obj["rules"].as_array_mut().expect("a Role has rules");
            rules.push(json!({"apiGroups": ["apps"], "resources": ["deployments"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}));
            rules.push(json!({"apiGroups": ["apps"], "resources": ["replicasets"],
                "verbs": ["get", "list", "watch"]}));
            rules.push(json!({"apiGroups": [""], "resources": ["pods"],
                "verbs": ["get", "list", "watch"]}));
        }
        _ => {}
    }
}

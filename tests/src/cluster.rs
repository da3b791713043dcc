//! The real one-node cluster that `hack/cluster.sh up` starts on this machine: a kubelet with
//! containerd and runc running real pods, the Job and garbage collector controllers of a real
//! kube-controller-manager, and Argo's real workflow-controller. Tests that need pods to run
//! use it ([`TestEnv::local_cluster`]); they share it and isolate by namespace. Also what tests
//! do with Jobs there: apply `deploy/`'s, wait for them to end ([`TestEnv::job_ended`]), read
//! their pods.
//!
//! Where it is: `KAR_CLUSTER_KUBECONFIG` (an administrator's kubeconfig), as
//! `eval "$(hack/cluster.sh env)"` sets it. Without it the cluster tests skip, saying so, unless
//! `KAR_REQUIRE_CLUSTER=1`, which `hack/test.sh` sets whenever it started the cluster, so a run
//! that was meant to use it cannot pass by skipping.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Event, Namespace, Pod};
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::control_plane::client_from;
use crate::deploy::{apply, apply_deploy, deploy_objects, job_of, kind_of, name_of};
use crate::test_env::TestEnv;

/// How long a Job of the tests may take on the local cluster (a pod starts in about 1 s there;
/// a Workflow of Argo's examples takes 5 to 15 s).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(240);

/// The local cluster's coordinates.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// An administrator's kubeconfig (`system:masters`).
    pub kubeconfig: PathBuf,
    /// Its state directory (`logs/` holds every component's log).
    pub dir: PathBuf,
    /// The image every Workflow step of Argo's examples runs (busybox, also tagged as the
    /// `alpine` tags the examples name).
    pub busybox_image: String,
    /// busybox `httpd` on port 8080, serving `index.html` at `/`, as a non-root user.
    pub httpd_image: String,
}

/// Records that the test `what` skipped for want of a cluster: one line appended to the file
/// `KAR_SKIPPED_FILE` names (set by `hack/test.sh`, whose summary counts skipped tests apart
/// from passed ones), and a line on stdout.
pub fn record_skip(what: &str) {
    record_skip_because(what, "no local cluster (KAR_CLUSTER_KUBECONFIG is not set)");
}

/// [`record_skip`] for another reason `why` (what the test lacks).
pub fn record_skip_because(what: &str, why: &str) {
    println!("skipped: {what}: {why}");
    if let Some(path) = std::env::var_os("KAR_SKIPPED_FILE") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{what}"));
        if let Err(e) = appended {
            panic!("cannot record a skipped test in KAR_SKIPPED_FILE: {e}");
        }
    }
}

impl Cluster {
    /// The cluster named by `KAR_CLUSTER_KUBECONFIG`, or `None` when it is unset.
    ///
    /// # Panics
    /// When it is unset but `KAR_REQUIRE_CLUSTER=1`.
    pub fn get() -> Option<&'static Cluster> {
        static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
        CLUSTER
            .get_or_init(|| {
                let Some(kubeconfig) = std::env::var_os("KAR_CLUSTER_KUBECONFIG") else {
                    assert!(
                        std::env::var("KAR_REQUIRE_CLUSTER").as_deref() != Ok("1"),
                        "KAR_REQUIRE_CLUSTER=1 but KAR_CLUSTER_KUBECONFIG is not set"
                    );
                    return None;
                };
                let var = |k: &str, default: &str| std::env::var(k).unwrap_or(default.into());
                Some(Cluster {
                    kubeconfig: kubeconfig.into(),
                    dir: var("KAR_CLUSTER_DIR", "").into(),
                    busybox_image: var(
                        "KAR_CLUSTER_BUSYBOX_IMAGE",
                        "docker.io/library/busybox:latest",
                    ),
                    httpd_image: var("KAR_CLUSTER_HTTPD_IMAGE", "localhost/kar/httpd:1"),
                })
            })
            .as_ref()
    }

    /// An administrator client.
    ///
    /// # Errors
    /// When the kubeconfig cannot be loaded.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from(&self.kubeconfig).await
    }

    /// Checks, once per test process, that the cluster's workflow-controller is the Argo the
    /// tests read CRDs and examples of (`KAR_ARGO_VERSION`, from `hack/install-tools.sh
    /// --print`), so that a phase meant to run under one Argo cannot pass under the other.
    /// Without `KAR_ARGO_VERSION` nothing is checked.
    ///
    /// # Panics
    /// When the Deployment `argo/workflow-controller` runs another image tag, or cannot be read.
    pub async fn check_argo_version(&self, client: &kube::Client) {
        static CHECKED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        let Ok(want) = std::env::var("KAR_ARGO_VERSION") else {
            return;
        };
        CHECKED
            .get_or_init(|| async {
                let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(
                    client.clone(),
                    &std::env::var("KAR_CLUSTER_ARGO_NAMESPACE").unwrap_or("argo".into()),
                );
                let d = deployments
                    .get("workflow-controller")
                    .await
                    .expect("read Deployment argo/workflow-controller");
                let image = d
                    .spec
                    .template
                    .spec
                    .and_then(|s| s.containers.into_iter().next())
                    .and_then(|c| c.image)
                    .unwrap_or_default();
                assert!(
                    image.ends_with(&format!(":{want}")),
                    "the cluster runs Argo's workflow-controller {image}, but the tests use Argo \
                     {want} (KAR_ARGO_VERSION): run hack/cluster.sh argo with KAR_ARGO_MAJOR set"
                );
            })
            .await;
    }

    /// Creates a fresh namespace `<prefix>-<pid>-<n>` (unique across test processes sharing the
    /// cluster) and returns its name.
    ///
    /// # Errors
    /// On API errors.
    pub async fn namespace(&self, client: &kube::Client, prefix: &str) -> Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns).await?;
        // Pods need the namespace's default ServiceAccount, which the controller manager makes.
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        let made =
            kube::runtime::wait::await_condition(sas, "default", |o: Option<&_>| o.is_some());
        tokio::time::timeout(Duration::from_secs(30), made)
            .await
            .context("the default ServiceAccount did not appear")??;
        Ok(name)
    }
}

/// `Complete` or `Failed` once Job `job` has finished (its condition of that type is `True`).
pub fn job_outcome(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"].into_iter().find(|t| {
        conditions
            .iter()
            .any(|c| c.type_ == *t && c.status == "True")
    })
}

/// Watches Job `namespace/name` until it has finished, at most `timeout`, and returns it.
///
/// # Errors
/// On API errors, or when it has not finished in time (the error then describes the Job's
/// pods and the namespace's Events).
pub async fn wait_for_job(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let done = kube::runtime::wait::await_condition(api, name, |j: Option<&Job>| {
        j.is_some_and(|j| job_outcome(j).is_some())
    });
    match tokio::time::timeout(timeout, done).await {
        Ok(job) => job?.context("the Job vanished"),
        Err(_) => bail!(
            "Job {namespace}/{name} did not finish within {timeout:?}\n{}",
            describe(client, namespace).await
        ),
    }
}

/// The pods of Job `job_name`, oldest first.
///
/// # Errors
/// On API errors.
pub async fn job_pods(client: &kube::Client, namespace: &str, job_name: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job_name}"));
    let mut pods = api.list(&lp).await?.items;
    pods.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    });
    Ok(pods)
}

/// How the first container of `pod` terminated, if it has.
pub fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()
}

/// Fails if any container of `pods` (init containers too) was killed for exceeding its memory
/// limit (`OOMKilled`, in its current or last state), naming the pod, container and limit.
///
/// # Errors
/// When one was.
pub fn assert_none_oom_killed(pods: &[Pod]) -> Result<()> {
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let status = pod.status.as_ref();
        let statuses = status
            .and_then(|s| s.container_statuses.clone())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.init_container_statuses.clone())
                    .into_iter()
                    .flatten(),
            );
        for cs in statuses {
            let reasons = [
                cs.state.as_ref().and_then(|s| s.terminated.as_ref()),
                cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
            ];
            if reasons
                .iter()
                .flatten()
                .any(|t| t.reason.as_deref() == Some("OOMKilled"))
            {
                let limit = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.iter().find(|c| c.name == cs.name))
                    .and_then(|c| {
                        c.resources
                            .as_ref()?
                            .limits
                            .as_ref()?
                            .get("memory")
                            .cloned()
                    })
                    .map(|q| q.0)
                    .unwrap_or_else(|| "none".into());
                bail!(
                    "OOMKilled: pod {name}, container {} (memory limit {limit})",
                    cs.name
                );
            }
        }
    }
    Ok(())
}

/// The `main` container logs of Workflow `workflow`'s pods, by node (pod annotation
/// `workflows.argoproj.io/node-name`, e.g. `steps-x[0].hello1`), as Argo's executor left them.
///
/// # Errors
/// On API errors.
pub async fn workflow_logs(
    client: &kube::Client,
    namespace: &str,
    workflow: &str,
) -> Result<BTreeMap<String, String>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("workflows.argoproj.io/workflow={workflow}"));
    let mut logs = BTreeMap::new();
    for pod in api.list(&lp).await?.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let node = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("workflows.argoproj.io/node-name").cloned())
            .unwrap_or_else(|| name.clone());
        let params = LogParams {
            container: Some("main".into()),
            ..LogParams::default()
        };
        let text = api
            .logs(&name, &params)
            .await
            .with_context(|| format!("logs of {namespace}/{name}"))?;
        logs.insert(node, text);
    }
    Ok(logs)
}

/// Waits (at most `timeout`) until a pod of Job `job_name` runs, and returns it.
///
/// # Errors
/// On API errors or when none runs in time.
pub async fn wait_for_running_job_pod(
    client: &kube::Client,
    namespace: &str,
    job_name: &str,
    timeout: Duration,
) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let config =
        watcher::Config::default().labels(&format!("batch.kubernetes.io/job-name={job_name}"));
    let mut pods = watcher(api, config)
        .applied_objects()
        .try_filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            std::future::ready(phase == Some("Running"))
        })
        .boxed();
    match tokio::time::timeout(timeout, pods.try_next()).await {
        Ok(pod) => pod?.context("the watch ended"),
        Err(_) => bail!(
            "no pod of Job {namespace}/{job_name} ran within {timeout:?}\n{}",
            describe(client, namespace).await
        ),
    }
}

/// A few lines on what went on in `namespace`: each pod's phase and container states, and the
/// Events, for a failing test's message.
pub async fn describe(client: &kube::Client, namespace: &str) -> String {
    let mut out = String::new();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = pods.list(&ListParams::default()).await {
        for p in list.items {
            let status = p.status.unwrap_or_default();
            out.push_str(&format!(
                "pod {}: {:?} {}\n",
                p.metadata.name.unwrap_or_default(),
                status.phase,
                serde_json::to_string(&status.container_statuses).unwrap_or_default()
            ));
        }
    }
    let workflows = crate::controllers::workflows(client, namespace);
    if let Ok(list) = workflows.list(&ListParams::default()).await {
        for w in list.items {
            let status = &w.data["status"];
            out.push_str(&format!(
                "workflow {}: {} {} progress {} nodes {}\n",
                w.metadata.name.unwrap_or_default(),
                status["phase"],
                status["message"],
                status["progress"],
                serde_json::to_string(&status["nodes"]).unwrap_or_default()
            ));
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = events.list(&ListParams::default()).await {
        for e in list.items {
            out.push_str(&format!(
                "event {} {}: {} {}\n",
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            ));
        }
    }
    out
}

/// Edits `deploy/argo-runner` so that its input ConfigMap holds `manifest`.
pub fn with_argo_input(manifest: String) -> impl Fn(&mut Value) {
    move |obj: &mut Value| {
        if kind_of(obj) == "ConfigMap" && name_of(obj) == "hello-world-input" {
            obj["data"]["manifest.yaml"] = json!(manifest);
        }
    }
}

impl TestEnv {
    /// Applies `deploy/argo-runner` with `manifest` as its input ([`with_argo_input`]) and
    /// returns the Job's name.
    ///
    /// # Panics
    /// On API errors.
    pub async fn apply_argo_job(&self, manifest: String) -> String {
        let job = apply_deploy(
            &self.client,
            &self.ns,
            "argo-runner",
            with_argo_input(manifest),
        )
        .await
        .unwrap();
        job.metadata.name.expect("the Job's name")
    }

    /// Applies both runners' `deploy/` as they ship and waits until both Jobs are `Complete`
    /// (on the local cluster, where pods run).
    ///
    /// # Panics
    /// On API errors, or as [`TestEnv::job_ended`].
    pub async fn run_deploy_jobs_as_shipped(&self) {
        for runner in ["argo-runner", "helm-runner"] {
            apply_deploy(&self.client, &self.ns, runner, |_| {})
                .await
                .unwrap();
        }
        for runner in ["argo-runner", "helm-runner"] {
            self.job_ended(name_of(&job_of(runner)), "Complete").await;
        }
    }

    /// Waits (at most [`JOB_TIMEOUT`]) for Job `name` to end and returns it with its pods.
    ///
    /// # Panics
    /// With a description of the namespace ([`describe`]) unless it ended `outcome`
    /// (`Complete` or `Failed`), or if any of its pods was OOM-killed.
    pub async fn job_ended(&self, name: &str, outcome: &str) -> (Job, Vec<Pod>) {
        let job = wait_for_job(&self.client, &self.ns, name, JOB_TIMEOUT)
            .await
            .unwrap();
        let pods = job_pods(&self.client, &self.ns, name).await.unwrap();
        if let Err(e) = assert_none_oom_killed(&pods) {
            panic!("{e}\n{}", describe(&self.client, &self.ns).await);
        }
        if job_outcome(&job) != Some(outcome) {
            panic!(
                "Job {}/{name} ended {:?}, expected {outcome}: {:?}\n{}",
                self.ns,
                job_outcome(&job),
                job.status,
                describe(&self.client, &self.ns).await
            );
        }
        (job, pods)
    }

    /// Applies the ServiceAccount the Workflows' pods run as, from `deploy/argo-runner`
    /// (Argo's executor records results in WorkflowTaskResults).
    ///
    /// # Panics
    /// On API errors.
    pub async fn apply_workflow_service_account(&self) {
        let objects = deploy_objects("argo-runner");
        for (file, obj) in objects
            .iter()
            .filter(|(f, _)| f.ends_with("workflow-serviceaccount.yaml"))
        {
            apply(&self.client, &self.ns, obj, false)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}

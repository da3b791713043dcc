//! Scale as users run it (`bench --cluster`): on the real one-node cluster of `hack/cluster.sh`,
//! N Jobs at once, each submitting Argo's `hello-world` as a Workflow of its own that Argo's real
//! controller runs on real pods, and waiting for it: N `deploy/argo-runner` Jobs, then N Jobs of
//! the Argo CLI (`argo submit --wait`, in an image built as ours: `hack/cluster.sh images`), with
//! the same ServiceAccount, Role and `podFailurePolicy`.
//!
//! Per run: wall time from the first Job's creation until every Job has finished; failures; the
//! node's CPU (all cores, from `/proc/stat`) and the API server's (from `/proc/<pid>/stat`) over
//! the run; the node's peak memory in use (`MemTotal - MemAvailable`, sampled every 250 ms) above
//! what it was before; and where the time went, medians over the N Jobs: pod start (Job pod
//! created until its container started), until the Workflow was created, the controller (the
//! Workflow created until Argo set `finishedAt`), and the notice (`finishedAt` until the Job's
//! container exited). Timestamps are Kubernetes' own, at one-second precision, so the phases
//! are coarse; the wall time is measured here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use action_runner_tests::cluster::{Cluster, job_outcome};
use action_runner_tests::controllers::workflows;
use action_runner_tests::deploy::{apply, deploy_objects, job_of, kind_of, set_env};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::measure::{median, ms};

/// The two sides.
#[derive(Debug, Clone, Copy)]
enum Tool {
    Ours,
    ArgoCli,
}

impl Tool {
    fn key(self) -> &'static str {
        match self {
            Tool::Ours => "argo-runner",
            Tool::ArgoCli => "argo-cli",
        }
    }
}

/// How long one run of N Jobs may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs N Jobs of each side for each N of `scale`; returns `{"argo-runner": {"10": {...}}, ...}`.
pub async fn run(scale: &[usize]) -> Result<Value> {
    let Some(cluster) = Cluster::get() else {
        bail!("--cluster needs the local cluster: hack/cluster.sh up, then eval its exports");
    };
    let client = cluster.client().await?;
    let argo_version =
        std::env::var("KAR_ARGO_CLI_VERSION").context("KAR_ARGO_CLI_VERSION is not set")?;
    let mut out = serde_json::Map::new();
    for tool in [Tool::Ours, Tool::ArgoCli] {
        let mut by_n = serde_json::Map::new();
        for &n in scale {
            eprintln!("bench: cluster: {n} {} Jobs at once", tool.key());
            let r = one(cluster, &client, tool, n, &argo_version).await?;
            eprintln!("bench: cluster: {r}");
            by_n.insert(n.to_string(), r);
        }
        out.insert(tool.key().into(), Value::Object(by_n));
    }
    Ok(Value::Object(out))
}

/// The Jobs' shared objects of `deploy/argo-runner` (ServiceAccounts, Role, RoleBinding), the
/// Role's ConfigMap rule widened from `hello-world` to every status ConfigMap of the run.
async fn setup(client: &kube::Client, ns: &str, n: usize) -> Result<Value> {
    for (file, mut obj) in deploy_objects("argo-runner") {
        match kind_of(&obj) {
            "Job" => continue,
            "ConfigMap" if file.ends_with("status-configmap.yaml") => continue,
            "Role" => {
                for rule in obj["rules"].as_array_mut().unwrap() {
                    if rule.get("resourceNames").is_some() {
                        rule["resourceNames"] = json!((0..n).map(context).collect::<Vec<_>>());
                    }
                }
            }
            _ => {}
        }
        apply(client, ns, &obj, false)
            .await
            .with_context(|| format!("apply {file}"))?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for i in 0..n {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": context(i)}}))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    Ok(job_of("argo-runner"))
}

fn context(i: usize) -> String {
    format!("hello-{i}")
}

/// Job `i` of `tool`, from `deploy/argo-runner`'s Job.
fn job(template: &Value, tool: Tool, i: usize, ns: &str, argo_version: &str) -> Result<Job> {
    let mut job = template.clone();
    let name = context(i);
    job["metadata"]["name"] = json!(format!("{}-{name}", tool.key()));
    match tool {
        Tool::Ours => set_env(&mut job, "RUNNER_CONTEXT_NAME", &name),
        Tool::ArgoCli => {
            let c = &mut job["spec"]["template"]["spec"]["containers"][0];
            c["image"] = json!(format!("quay.io/argoproj/argocli:{argo_version}"));
            c["args"] = json!([
                "submit",
                "--wait",
                "--namespace",
                ns,
                "--name",
                name,
                "--serviceaccount",
                "argo-workflow",
                "/runner/input/manifest.yaml"
            ]);
            c["env"] = json!([]);
            c["volumeMounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "tmp", "mountPath": "/tmp"}));
            job["spec"]["template"]["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "tmp", "emptyDir": {}}));
        }
    }
    Ok(serde_json::from_value(job)?)
}

/// Busy and total jiffies of all cores (`/proc/stat`, first line).
fn node_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU time of the process whose pid is in `run/<name>.pid` of the cluster's state directory.
fn component_cpu(cluster: &Cluster, name: &str) -> Duration {
    std::fs::read_to_string(cluster.dir.join("run").join(format!("{name}.pid")))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .map(crate::measure::process_cpu)
        .unwrap_or_default()
}

fn mem_in_use_kib() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("MemTotal:").saturating_sub(field("MemAvailable:"))
}

fn time_of(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<i64> {
    t.map(|t| t.0.as_second())
}

async fn one(
    cluster: &Cluster,
    client: &kube::Client,
    tool: Tool,
    n: usize,
    argo_version: &str,
) -> Result<Value> {
    let ns = cluster
        .namespace(client, &format!("scale-{}-{n}", tool.key()))
        .await?;
    let template = setup(client, &ns, n).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let mem_before = mem_in_use_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(mem_before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(mem_in_use_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let (busy0, total0) = node_jiffies();
    let api0 = component_cpu(cluster, "kube-apiserver");
    let t0 = Instant::now();
    for i in 0..n {
        jobs.create(
            &PostParams::default(),
            &job(&template, tool, i, &ns, argo_version)?,
        )
        .await?;
    }
    // Until every Job has finished (Complete or Failed), as a watch sees them.
    let mut finished: BTreeMap<String, bool> = BTreeMap::new();
    let mut events = watcher(jobs.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let waited = tokio::time::timeout(RUN_TIMEOUT, async {
        while let Some(job) = events.next().await {
            let job = job?;
            if let Some(outcome) = job_outcome(&job) {
                finished.insert(
                    job.metadata.name.clone().unwrap_or_default(),
                    outcome == "Complete",
                );
            }
            if finished.len() == n {
                return anyhow::Ok(());
            }
        }
        bail!("the Job watch ended")
    })
    .await;
    let wall = t0.elapsed();
    let api_cpu = component_cpu(cluster, "kube-apiserver").saturating_sub(api0);
    let (busy1, total1) = node_jiffies();
    sampler.abort();
    waited.context("not every Job finished in time")??;
    let failures = finished.values().filter(|ok| !**ok).count();

    // Where the time went, from the objects' own timestamps.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let runner_pods = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name"))
        .await?;
    let wfs = workflows(client, &ns).list(&ListParams::default()).await?;
    let wf_by_name: BTreeMap<String, &kube::api::DynamicObject> = wfs
        .items
        .iter()
        .map(|w| (w.metadata.name.clone().unwrap_or_default(), w))
        .collect();
    let (mut pod_start, mut until_workflow, mut controller, mut notice) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pod in &runner_pods.items {
        let job_name = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("batch.kubernetes.io/job-name"))
            .cloned()
            .unwrap_or_default();
        let wf_name = job_name.trim_start_matches(&format!("{}-", tool.key()));
        let created = time_of(pod.metadata.creation_timestamp.as_ref());
        let state = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref());
        let started = state
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| time_of(t.started_at.as_ref()));
        let exited = state
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| time_of(t.finished_at.as_ref()));
        let Some(wf) = wf_by_name.get(wf_name) else {
            continue;
        };
        let wf_created = time_of(wf.metadata.creation_timestamp.as_ref());
        let wf_finished = wf.data["status"]["finishedAt"]
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second());
        let push = |v: &mut Vec<f64>, a: Option<i64>, b: Option<i64>| {
            if let (Some(a), Some(b)) = (a, b) {
                v.push((b - a) as f64);
            }
        };
        push(&mut pod_start, created, started);
        push(&mut until_workflow, started, wf_created);
        push(&mut controller, wf_created, wf_finished);
        push(&mut notice, wf_finished, exited);
    }
    let core_count = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let jiffy = Duration::from_millis(10);
    let result = json!({
        "n": n,
        "wallSeconds": (wall.as_secs_f64() * 10.0).round() / 10.0,
        "failures": failures,
        "nodeCpuSeconds": ((busy1 - busy0) as f64 * jiffy.as_secs_f64() * 10.0).round() / 10.0,
        "nodeCpuUtilisation": (((busy1 - busy0) as f64 / (total1 - total0).max(1) as f64) * 100.0).round() / 100.0,
        "cores": core_count,
        "apiServerCpuSeconds": (ms(api_cpu) / 100.0).round() / 10.0,
        "nodeMemoryPeakAboveIdleMiB": (peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(mem_before) / 1024),
        "medianSeconds": {
            "podStart": median(pod_start),
            "podStartToWorkflowCreated": median(until_workflow),
            "controller": median(controller),
            "finishedToJobExit": median(notice),
        },
    });
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    Ok(result)
}

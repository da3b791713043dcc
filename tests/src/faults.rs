//! Faults injected into the local cluster (`hack/cluster.sh fault`, hack/cluster/faults.sh),
//! and what the fault tests and the soak read afterwards: Helm's release records and the
//! requests each ServiceAccount made (the API server's audit log).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;

use crate::cluster::Cluster;

/// One fault, with what it acts on. Each undoes itself: injecting it returns once the cluster
/// is whole again.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A host process of the cluster (`etcd`, `kube-apiserver`, `kubelet`, `containerd`,
    /// `kube-proxy`, `kube-controller-manager`, `kube-scheduler`) stopped for `secs` seconds,
    /// then started again with the same flags and state.
    Outage {
        /// The process, as `hack/cluster.sh` names it.
        process: &'static str,
        /// Seconds it stays down.
        secs: u32,
    },
    /// The pods' traffic to the API server dropped inside their network namespaces for `secs`
    /// seconds (no reset: connections hang), then let through.
    NetworkCut {
        /// `(namespace, pod)` of each pod cut, all at once.
        pods: Vec<(String, String)>,
        /// Seconds the cut lasts.
        secs: u32,
    },
    /// Argo's workflow-controller pod deleted (its Deployment makes another).
    ControllerPodDeleted,
    /// The pod's first container OOM-killed by the kernel.
    OomKill {
        /// The pod's namespace.
        namespace: String,
        /// The pod.
        pod: String,
    },
    /// The node rebooted: every cluster process and container killed, `secs` seconds of
    /// nothing, everything started again on the same state.
    Reboot {
        /// Seconds the node stays off.
        secs: u32,
    },
}

fn hack_cluster() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .join("hack/cluster.sh")
}

/// The time of day (UTC, milliseconds), as `hack/cluster.sh fault` prints it.
pub fn utc_now() -> String {
    jiff::Timestamp::now().strftime("%H:%M:%S%.3f").to_string()
}

/// Injects `fault` into `cluster` and returns, once it is undone, the line(s) saying what was
/// done and when.
///
/// # Errors
/// `hack/cluster.sh fault` failed (its stderr is in the error), or the API refused a delete.
pub async fn inject(cluster: &Cluster, client: &kube::Client, fault: &Fault) -> Result<String> {
    let runs: Vec<Vec<String>> = match fault {
        Fault::ControllerPodDeleted => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), "argo");
            let t0 = utc_now();
            for p in pods
                .list(&ListParams::default().labels("app=workflow-controller"))
                .await?
            {
                let name = p.metadata.name.unwrap_or_default();
                pods.delete(&name, &DeleteParams::default()).await?;
            }
            return Ok(format!(
                "fault: Argo's workflow-controller pod deleted at {t0}"
            ));
        }
        Fault::Outage { process, secs } => {
            vec![vec!["outage".into(), process.to_string(), secs.to_string()]]
        }
        Fault::NetworkCut { pods, secs } => pods
            .iter()
            .map(|(ns, pod)| vec!["netcut".into(), ns.clone(), pod.clone(), secs.to_string()])
            .collect(),
        Fault::OomKill { namespace, pod } => {
            vec![vec!["oom".into(), namespace.clone(), pod.clone()]]
        }
        Fault::Reboot { secs } => vec![vec!["reboot".into(), secs.to_string()]],
    };
    let runs = runs.into_iter().map(|args| {
        tokio::process::Command::new("bash")
            .arg(hack_cluster())
            .arg("fault")
            .args(args)
            .env("KAR_CLUSTER_DIR", &cluster.dir)
            .output()
    });
    let mut lines = Vec::new();
    for out in futures::future::join_all(runs).await {
        let out = out.context("running hack/cluster.sh fault")?;
        if !out.status.success() {
            bail!(
                "hack/cluster.sh fault failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        lines.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    Ok(lines.join("; "))
}

/// `(revision, status)` of each record Helm stores for `release` in `namespace` (the secrets
/// driver's labels `owner=helm`, `name`, `version`, `status`), oldest first.
///
/// # Errors
/// The list of Secrets failed.
pub async fn helm_records(
    client: &kube::Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<(u32, String)>> {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
        .await?;
    let mut records: Vec<(u32, String)> = secrets
        .items
        .iter()
        .map(|s| {
            let labels = s.metadata.labels.clone().unwrap_or_default();
            let version = labels.get("version").and_then(|v| v.parse().ok());
            (
                version.unwrap_or(0),
                labels.get("status").cloned().unwrap_or_default(),
            )
        })
        .collect();
    records.sort();
    Ok(records)
}

/// Requests made at `cluster`'s API server as ServiceAccount `sa` of `namespace`, counted in
/// its audit log (`hack/cluster.sh` records every request's metadata there).
///
/// # Errors
/// The audit log cannot be read.
pub fn requests_by(cluster: &Cluster, namespace: &str, sa: &str) -> Result<usize> {
    let user = format!("system:serviceaccount:{namespace}:{sa}");
    let path = cluster.dir.join("logs/audit.log");
    let log = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    Ok(log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["user"]["username"] == user.as_str())
        .count())
}

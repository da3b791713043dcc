//! A thousand actions on one control plane (`bench --kwok`): N actions at once against the
//! local cluster's control plane (`hack/cluster.sh up`) and Argo's real workflow-controller,
//! the Workflows' and releases' pods on simulated nodes: KWOK (sigs.k8s.io/kwok, the
//! Kubernetes SIG's node simulator, built from its Go module by `hack/install-tools.sh --kwok`)
//! plays the kubelet of [`Plan::nodes`] nodes, with its own default Stages (node initialised
//! and kept Ready; pods Running and ready at once, deleted when asked) and one more, KWOK's
//! `pod-complete` Stage applied to pods owned by a Workflow instead of a Job (so each step ends
//! `Succeeded`, exit code 0, as soon as it runs).
//!
//! Each action is a process on this machine with a ServiceAccount token of its own (its
//! requests are told apart in the audit log), as a Job's pod would be; a pod each would not fit
//! the one real node (110 pods). The tools: `argo-runner` and the Argo CLI (`argo submit
//! --wait`), each submitting Argo's `hello-world` with a `nodeSelector` and `tolerations` for the
//! simulated nodes, and `helm-runner` installing the chart `helm create` writes (Deployment,
//! Service, ServiceAccount; `wait: true`) as N distinct releases, its pods on the simulated nodes.
//!
//! Per run of N: wall time until every process exited; actions lost (no final status) and
//! wrong (a final status that is not the action's true outcome: the Workflow's phase, the
//! release's status); requests per action at the API server, by verb and resource (audit log);
//! watches open at the API server at the peak (`apiserver_longrunning_requests{verb="WATCH"}`,
//! every client's, sampled each second) and the tool's own watch requests; the API server's CPU
//! (`/proc/<pid>/stat`) and its peak RSS; the workflow-controller's CPU; each tool process's peak
//! RSS (`VmHWM`, sampled each second; the runner and, for helm-runner, the helm it runs), its peak
//! unique memory (its private pages: RSS also counts the binary's pages, which a thousand
//! processes of one binary share) and its CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use action_runner_tests::cluster::Cluster;
use action_runner_tests::control_plane::{kubeconfig_yaml, service_account_token};
use action_runner_tests::controllers::workflows;
use action_runner_tests::deploy::{apply, deploy_objects, kind_of};
use action_runner_tests::test_env::create_status_configmap;
use action_runner_tests::tools::{Tools, helm_cmd, runner_binary};
use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::measure::{median, ms, process_cpu, spawn_measured, status_kib};

/// What `bench --kwok` runs: N at once for each N of each list.
#[derive(Debug, Clone)]
pub struct Plan {
    /// argo-runner.
    pub argo: Vec<usize>,
    /// The Argo CLI's `argo submit --wait` (skipped without `KAR_ARGO_CLI`).
    pub argo_cli: Vec<usize>,
    /// helm-runner, distinct releases.
    pub helm: Vec<usize>,
    /// Simulated nodes (250 pods each).
    pub nodes: usize,
}

impl Plan {
    /// The plan: argo-runner at 10, 100 and 1,000, the Argo CLI at 10 and 100,
    /// helm-runner at 10 and 100, on 10 simulated nodes.
    pub fn full() -> Plan {
        Plan {
            argo: vec![10, 100, 1000],
            argo_cli: vec![10, 100],
            helm: vec![10, 100],
            nodes: 10,
        }
    }
}

/// The tools measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    ArgoRunner,
    ArgoCli,
    HelmRunner,
}

impl Tool {
    fn key(self) -> &'static str {
        match self {
            Tool::ArgoRunner => "argo-runner",
            Tool::ArgoCli => "argo-cli",
            Tool::HelmRunner => "helm-runner",
        }
    }
}

/// How long one run of N may take before it is abandoned.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);
/// The label and taint of the simulated nodes (KWOK's documented ones).
const NODE_LABEL: (&str, &str) = ("type", "kwok");
const NODE_TAINT: &str = "kwok.x-k8s.io/node";
/// Pods per simulated node.
const PODS_PER_NODE: usize = 250;

/// The scheduling constraints that put a pod on the simulated nodes.
fn placement() -> Value {
    json!({
        "nodeSelector": {NODE_LABEL.0: NODE_LABEL.1},
        "tolerations": [{"key": NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
    })
}

/// Runs the plan; returns `{"nodes": .., "argo-runner": {"10": {...}}, ...}`.
///
/// # Errors
/// Without the local cluster or KWOK, or when a run cannot be set up; a run's failed actions
/// are figures, not errors.
pub async fn run(plan: &Plan, log_dir: &Path) -> Result<Value> {
    let Some(cluster) = Cluster::get() else {
        bail!("--kwok needs the local cluster: hack/cluster.sh up, then eval its exports");
    };
    let client = cluster.client().await?;
    let kwok_bin = PathBuf::from(std::env::var("KAR_KWOK").context("KAR_KWOK is not set")?);
    let kwok_dir = PathBuf::from(std::env::var("KAR_KWOK_DIR").context("KAR_KWOK_DIR is not set")?);
    if !kwok_bin.is_file() {
        bail!(
            "KAR_KWOK {} is missing: hack/install-tools.sh --kwok builds it",
            kwok_bin.display()
        );
    }
    let _kwok = Kwok::start(cluster, &kwok_bin, &kwok_dir, log_dir)?;
    add_nodes(&client, plan.nodes).await?;
    let ctx = Ctx::new(cluster, client.clone(), log_dir)?;
    let argo_cli = std::env::var_os("KAR_ARGO_CLI")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let mut out = serde_json::Map::new();
    out.insert(
        "nodes".into(),
        json!({"count": plan.nodes, "podsEach": PODS_PER_NODE}),
    );
    let mut runs: Vec<(Tool, usize)> = plan.argo.iter().map(|&n| (Tool::ArgoRunner, n)).collect();
    if argo_cli.is_some() {
        runs.extend(plan.argo_cli.iter().map(|&n| (Tool::ArgoCli, n)));
    } else if !plan.argo_cli.is_empty() {
        eprintln!("bench: kwok: no Argo CLI (KAR_ARGO_CLI): its runs are skipped");
    }
    runs.extend(plan.helm.iter().map(|&n| (Tool::HelmRunner, n)));
    for (tool, n) in runs {
        eprintln!("bench: kwok: {n} {} at once", tool.key());
        let r = ctx.one(tool, n, argo_cli.as_deref()).await?;
        eprintln!("bench: kwok: {r}");
        out.entry(tool.key())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object")
            .insert(n.to_string(), r);
    }
    remove_nodes(&client).await?;
    Ok(Value::Object(out))
}

/// The KWOK controller, a child of the bench, stopped (killed and reaped) when dropped.
struct Kwok(Child);

impl Kwok {
    /// Starts KWOK against the cluster with its default node and pod Stages and a
    /// `pod-complete` Stage for Workflows' pods, managing only nodes labelled [`NODE_LABEL`];
    /// its log goes to `log_dir/kwok.log`.
    fn start(cluster: &Cluster, bin: &Path, module: &Path, log_dir: &Path) -> Result<Kwok> {
        let stages = module.join("kustomize/stage");
        let read = |p: &str| {
            std::fs::read_to_string(stages.join(p))
                .with_context(|| format!("KWOK's Stage {p} in KAR_KWOK_DIR"))
        };
        // KWOK's own pod-complete Stage applies to Jobs' pods: the same for Workflows' pods.
        let complete = read("pod/fast/pod-complete.yaml")?;
        let workflow_complete = complete
            .replace("name: pod-complete", "name: workflow-pod-complete")
            .replace("      - 'Job'", "      - 'Workflow'");
        if workflow_complete == complete {
            bail!("KWOK's pod-complete Stage has changed shape: update bench/src/kwok.rs");
        }
        let config = [
            read("node/fast/node-initialize.yaml")?,
            read("node/heartbeat/node-heartbeat.yaml")?,
            read("pod/fast/pod-ready.yaml")?,
            read("pod/fast/pod-delete.yaml")?,
            workflow_complete,
        ]
        .join("\n---\n");
        let config_file = log_dir.join("kwok-stages.yaml");
        std::fs::write(&config_file, config)?;
        let log = std::fs::File::create(log_dir.join("kwok.log"))?;
        let child = std::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .arg("--config")
            .arg(&config_file)
            .args([
                "--manage-all-nodes=false",
                &format!(
                    "--manage-nodes-with-label-selector={}={}",
                    NODE_LABEL.0, NODE_LABEL.1
                ),
                // Pod addresses from a range nothing routes to; no server of its own.
                "--cidr=10.254.0.0/16",
                "--node-ip=10.254.0.1",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Kwok(child))
    }
}

impl Drop for Kwok {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates `count` simulated nodes and waits until KWOK has made them all Ready.
async fn add_nodes(client: &kube::Client, count: usize) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..count {
        let node: Node = serde_json::from_value(json!({
            "metadata": {
                "name": format!("kwok-node-{i}"),
                "labels": {NODE_LABEL.0: NODE_LABEL.1, "kubernetes.io/hostname": format!("kwok-node-{i}"), "kubernetes.io/os": "linux"},
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
            "spec": {"taints": [{"key": NODE_TAINT, "value": "fake", "effect": "NoSchedule"}]},
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": PODS_PER_NODE.to_string()},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": PODS_PER_NODE.to_string()},
            },
        }))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).context("create a simulated node"),
        }
    }
    let selector = format!("{}={}", NODE_LABEL.0, NODE_LABEL.1);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = nodes.list(&ListParams::default().labels(&selector)).await?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{ready} of {count} simulated nodes Ready after 120 s: see kwok.log");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the simulated nodes.
async fn remove_nodes(client: &kube::Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("{}={}", NODE_LABEL.0, NODE_LABEL.1)),
        )
        .await?;
    Ok(())
}

/// What every run shares.
struct Ctx {
    cluster: &'static Cluster,
    client: kube::Client,
    /// The API server's address, from the administrator's kubeconfig.
    server: String,
    /// The cluster's CA certificate.
    ca: PathBuf,
    /// Scratch files (kubeconfigs, inputs, the chart).
    dir: tempfile::TempDir,
    /// Argo's `hello-world` with [`placement`].
    argo_manifest: PathBuf,
    /// The chart `helm create` writes, packaged.
    chart: PathBuf,
    /// The Helm CLI helm-runner runs.
    helm: PathBuf,
}

impl Ctx {
    fn new(cluster: &'static Cluster, client: kube::Client, _log_dir: &Path) -> Result<Ctx> {
        let config = kube::config::Kubeconfig::read_from(&cluster.kubeconfig)?;
        let server = config
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .context("the cluster's kubeconfig names no server")?;
        let ca = cluster.dir.join("pki/ca.crt");
        let dir = tempfile::Builder::new().prefix("bench-kwok-").tempdir()?;
        let tools = Tools::locate()?;
        let mut wf: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(tools.argo_example("hello-world"))?)?;
        for (k, v) in placement().as_object().expect("an object") {
            wf["spec"][k] = v.clone();
        }
        let argo_manifest = dir.path().join("hello-world.json");
        std::fs::write(&argo_manifest, wf.to_string())?;
        helm_cmd(&["create", "webapp"], dir.path())?;
        helm_cmd(&["package", "webapp"], dir.path())?;
        Ok(Ctx {
            cluster,
            client,
            server,
            ca,
            argo_manifest,
            chart: dir.path().join("webapp-0.1.0.tgz"),
            helm: tools.helm.clone(),
            dir,
        })
    }

    /// ServiceAccount `runner-<i>` of `ns`, bound by RoleBinding `runner` (created by the
    /// caller), and a kubeconfig with a token of its own.
    async fn kubeconfig(&self, ns: &str, i: usize) -> Result<PathBuf> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let name = format!("runner-{i}");
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        sas.create(&PostParams::default(), &sa).await?;
        let token = service_account_token(&self.client, ns, &name).await?;
        let path = self.dir.path().join(format!("kubeconfig-{ns}-{i}"));
        std::fs::write(&path, kubeconfig_yaml(&self.server, &self.ca, &token))?;
        Ok(path)
    }

    /// The Role, RoleBinding, ServiceAccounts with their kubeconfigs and status ConfigMaps of
    /// a run of N of `tool` in `ns`: `deploy/argo-runner`'s Role for the Argo tools (its
    /// ConfigMap rule widened to every action's), the built-in `admin` ClusterRole for Helm
    /// (the chart's Deployment, Service and ServiceAccount, and `--wait`'s reads).
    async fn setup(&self, tool: Tool, ns: &str, n: usize) -> Result<Vec<PathBuf>> {
        let role_ref = if tool == Tool::HelmRunner {
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"})
        } else {
            let (_, mut role) = deploy_objects("argo-runner")
                .into_iter()
                .find(|(_, o)| kind_of(o) == "Role")
                .context("deploy/argo-runner has no Role")?;
            role["metadata"]["name"] = json!("runner");
            for rule in role["rules"].as_array_mut().expect("rules") {
                if rule.get("resourceNames").is_some() {
                    rule["resourceNames"] = json!((0..n).map(context).collect::<Vec<_>>());
                }
            }
            apply(&self.client, ns, &role, false).await?;
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "runner"})
        };
        let subjects: Vec<Value> = (0..n)
            .map(|i| json!({"kind": "ServiceAccount", "name": format!("runner-{i}"), "namespace": ns}))
            .collect();
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "runner"}, "roleRef": role_ref, "subjects": subjects,
        });
        apply(&self.client, ns, &binding, false).await?;
        let kubeconfigs: Vec<PathBuf> = futures::stream::iter(0..n)
            .map(|i| self.kubeconfig(ns, i))
            .buffered(16)
            .try_collect()
            .await?;
        if tool != Tool::ArgoCli {
            futures::stream::iter(0..n)
                .map(|i| {
                    let (client, ns) = (self.client.clone(), ns.to_string());
                    async move { create_status_configmap(&client, &ns, &context(i)).await }
                })
                .buffer_unordered(16)
                .try_collect::<Vec<_>>()
                .await?;
        }
        // The authorizer sees a new binding through an informer: wait until the last
        // ServiceAccount's rights apply.
        let last = action_runner_tests::control_plane::client_from(&kubeconfigs[n - 1]).await?;
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(last.clone(), ns);
        let wfs = workflows(&last, ns);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let one = ListParams::default().limit(1);
            let allowed = if tool == Tool::HelmRunner {
                pods.list(&one).await.is_ok()
            } else {
                wfs.list(&one).await.is_ok()
            };
            if allowed {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "ServiceAccount runner-{} in {ns} never got its rights",
                    n - 1
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(kubeconfigs)
    }

    /// The command of action `i` of `tool`, authenticating with `kubeconfig`.
    fn command(
        &self,
        tool: Tool,
        ns: &str,
        i: usize,
        kubeconfig: &Path,
        argo_cli: Option<&Path>,
    ) -> Result<std::process::Command> {
        let bin = match tool {
            Tool::ArgoRunner => runner_binary("argo-runner"),
            Tool::ArgoCli => argo_cli.context("no Argo CLI")?.to_path_buf(),
            Tool::HelmRunner => runner_binary("helm-runner"),
        };
        let mut cmd = std::process::Command::new(bin);
        let home = self.dir.path().join(format!("home-{ns}-{i}"));
        std::fs::create_dir_all(&home)?;
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("KUBECONFIG", kubeconfig);
        match tool {
            Tool::ArgoRunner => {
                cmd.env("RUNNER_INPUT_MANIFEST_PATH", &self.argo_manifest)
                    .env("RUNNER_CONTEXT_NAME", context(i))
                    .env("RUNNER_CONTEXT_PLATFORM_NAMESPACE", ns)
                    .env("RUNNER_TIMEOUT", "30m");
            }
            Tool::ArgoCli => {
                cmd.arg("submit")
                    .arg(&self.argo_manifest)
                    .args(["--name", &context(i), "--wait", "-n", ns, "--kubeconfig"])
                    .arg(kubeconfig);
            }
            Tool::HelmRunner => {
                let manifest = home.join("input.json");
                let input = json!({
                    "name": context(i), "chart": {"name": self.chart}, "values": placement(),
                    "wait": true, "timeout": "20m",
                });
                std::fs::write(&manifest, input.to_string())?;
                cmd.env("RUNNER_COMMAND", "install")
                    .env("RUNNER_INPUT_MANIFEST_PATH", &manifest)
                    .env("RUNNER_CONTEXT_NAME", context(i))
                    .env("RUNNER_CONTEXT_PLATFORM_NAMESPACE", ns)
                    .env("RUNNER_TIMEOUT", "30m")
                    .env("RUNNER_HELM_BINARY_PATH", &self.helm)
                    .env("RUNNER_REPOSITORY_CACHE_PATH", home.join("cache"))
                    .env(
                        "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                        home.join("release.yaml"),
                    )
                    .env(
                        "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                        home.join("additional.yaml"),
                    );
            }
        }
        Ok(cmd)
    }

    /// One run: N actions of `tool` at once in a fresh namespace, measured, checked, and the
    /// namespace deleted (and waited for, so that its deletion does not load the next run).
    async fn one(&self, tool: Tool, n: usize, argo_cli: Option<&Path>) -> Result<Value> {
        let ns = self
            .cluster
            .namespace(&self.client, &format!("kwok-{}-{n}", tool.key()))
            .await?;
        let kubeconfigs = self.setup(tool, &ns, n).await?;
        let mut commands = Vec::with_capacity(n);
        for (i, kc) in kubeconfigs.iter().enumerate() {
            commands.push(self.command(tool, &ns, i, kc, argo_cli)?);
        }
        let sampler = Sampler::start(self.cluster, self.client.clone());
        let since = crate::audit::now();
        let t0 = Instant::now();
        let mut handles = Vec::with_capacity(n);
        for cmd in commands {
            handles.push(spawn_measured(cmd, Some(Duration::from_secs(1)))?.1);
        }
        let mut exits = Vec::with_capacity(n);
        let waited = tokio::time::timeout(RUN_TIMEOUT, async {
            for h in handles {
                exits.push(h.await?);
            }
            anyhow::Ok(())
        })
        .await;
        let wall = exits.iter().map(|e| e.at).max().unwrap_or(t0) - t0;
        let sampled = sampler.stop().await;
        waited.context("not every action ended in time")??;
        let until = crate::audit::now();

        let (lost, wrong, first_wrong) = self.check(tool, &ns, n, &exits).await?;
        let requests = requests(self.cluster, &ns, &since, &until)?;
        let total: u64 = requests.values().sum();
        let watches: u64 = requests
            .iter()
            .filter(|(k, _)| k.starts_with("watch "))
            .map(|(_, v)| v)
            .sum();
        let rss: Vec<f64> = exits.iter().map(|e| e.max_rss_kib as f64).collect();
        let uss: Vec<f64> = exits.iter().map(|e| e.max_uss_kib as f64).collect();
        let cpu: Vec<f64> = exits.iter().map(|e| ms(e.cpu)).collect();
        let per_action = |v: u64| ((v as f64 / n as f64) * 100.0).round() / 100.0;
        let result = json!({
            "n": n,
            "wallSeconds": (wall.as_secs_f64() * 10.0).round() / 10.0,
            "exitedNonZero": exits.iter().filter(|e| e.code != 0).count(),
            "firstNonZero": exits.iter().find(|e| e.code != 0).map(|e| e.stderr_tail.clone()),
            "lost": lost,
            "wrong": wrong,
            "firstWrong": first_wrong,
            "requestsPerAction": per_action(total),
            "watchRequestsPerAction": per_action(watches),
            "requests": requests,
            "apiServer": sampled["apiServer"],
            "workflowController": sampled["workflowController"],
            "kwok": sampled["kwok"],
            "watchesOpenPeak": sampled["watchesOpenPeak"],
            "apiServerCpuMsPerAction": (sampled["apiServer"]["cpuMs"].as_f64().unwrap_or(0.0) / n as f64 * 10.0).round() / 10.0,
            "processRssKiB": {"median": median(rss.clone()), "max": rss.iter().copied().fold(0.0, f64::max)},
            "processUssKiB": {"median": median(uss.clone()), "max": uss.iter().copied().fold(0.0, f64::max)},
            "processCpuMs": {"median": median(cpu.clone()), "max": cpu.iter().copied().fold(0.0, f64::max)},
        });
        self.delete_namespace(&ns).await?;
        Ok(result)
    }

    /// Counts the actions lost (no final status: the status ConfigMap has none, or for the
    /// Argo CLI the process failed) and wrong (a final status that is not the truth: the
    /// Workflow's phase, or the release's status in its Helm record).
    async fn check(
        &self,
        tool: Tool,
        ns: &str,
        n: usize,
        exits: &[crate::measure::Exited],
    ) -> Result<(usize, usize, Option<String>)> {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let wfs: BTreeMap<String, String> = workflows(&self.client, ns)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|w| {
                (
                    w.metadata.name.clone().unwrap_or_default(),
                    w.data["status"]["phase"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let releases: BTreeMap<String, String> = secrets
            .list_metadata(&ListParams::default().labels("owner=helm"))
            .await?
            .items
            .into_iter()
            .filter_map(|s| {
                let l = s.metadata.labels?;
                Some((l.get("name")?.clone(), l.get("status")?.clone()))
            })
            .collect();
        let (mut lost, mut wrong, mut first_wrong) = (0, 0, None);
        for (i, exit) in exits.iter().enumerate().take(n) {
            let name = context(i);
            let truth = match tool {
                Tool::HelmRunner => match releases.get(&name).map(String::as_str) {
                    Some("deployed") => "Succeeded",
                    Some(_) => "Failed",
                    None => "",
                },
                _ => wfs.get(&name).map(String::as_str).unwrap_or(""),
            };
            let reported = if tool == Tool::ArgoCli {
                // The CLI reports by its exit code.
                if exit.code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                }
                .to_string()
            } else {
                let cm = cms.get(&name).await?;
                cm.data
                    .and_then(|d| d.get("status").cloned())
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .and_then(|s| s["phase"].as_str().map(String::from))
                    .unwrap_or_default()
            };
            match reported.as_str() {
                "Succeeded" | "Failed" if reported == truth && truth == "Succeeded" => {}
                "Succeeded" | "Failed" if reported == truth => {
                    // A true failure, reported: not wrong, but every action here should succeed.
                    wrong += 1;
                    first_wrong.get_or_insert(format!("{name}: failed for real"));
                }
                "Succeeded" | "Failed" => {
                    wrong += 1;
                    first_wrong.get_or_insert(format!(
                        "{name}: reported {reported}, truth {truth:?}; {}",
                        exit.stderr_tail
                    ));
                }
                _ => {
                    lost += 1;
                    first_wrong.get_or_insert(format!(
                        "{name}: no final status ({reported:?}); {}",
                        exit.stderr_tail
                    ));
                }
            }
        }
        Ok((lost, wrong, first_wrong))
    }

    async fn delete_namespace(&self, ns: &str) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces.delete(ns, &DeleteParams::default()).await?;
        let deadline = Instant::now() + Duration::from_secs(900);
        while namespaces.get_opt(ns).await?.is_some() {
            if Instant::now() > deadline {
                eprintln!("bench: kwok: namespace {ns} still terminating after 900 s");
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    }
}

/// Action `i`'s name: its status ConfigMap, its Workflow, its release.
fn context(i: usize) -> String {
    format!("act-{i}")
}

/// The requests ServiceAccounts `runner-*` of `ns` made, received from `since` to `until` (audit
/// timestamps), by "verb resource", from the cluster's audit log (and its rotated file).
fn requests(
    cluster: &Cluster,
    ns: &str,
    since: &str,
    until: &str,
) -> Result<BTreeMap<String, u64>> {
    let prefix = format!("system:serviceaccount:{ns}:runner-");
    let mut counts = BTreeMap::new();
    let logs = cluster.dir.join("logs");
    for entry in std::fs::read_dir(&logs)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !(name.starts_with("audit") && name.ends_with(".log")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for ev in text
            .lines()
            .filter(|l| l.contains(&prefix))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            let received = ev["requestReceivedTimestamp"].as_str().unwrap_or_default();
            if ev["stage"] == "ResponseStarted" || received < since || received > until {
                continue;
            }
            if !ev["user"]["username"]
                .as_str()
                .is_some_and(|u| u.starts_with(&prefix))
            {
                continue;
            }
            let resource = ev["objectRef"]["resource"].as_str().unwrap_or("(none)");
            let sub = ev["objectRef"]["subresource"].as_str();
            let verb = ev["verb"].as_str().unwrap_or("?");
            let key = match sub {
                Some(s) => format!("{verb} {resource}/{s}"),
                None => format!("{verb} {resource}"),
            };
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Samples, each second while a run lasts: the API server's and the workflow-controller's CPU
/// and RSS, KWOK's CPU, and the watches open at the API server.
struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Value>,
}

impl Sampler {
    fn start(cluster: &'static Cluster, client: kube::Client) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let apiserver = pid_file(cluster, "kube-apiserver");
            let controller = pid_of_program("workflow-controller");
            let kwok = pid_of_program("kwok");
            let cpu0: Vec<Duration> = [apiserver, controller, kwok]
                .iter()
                .map(|p| p.map(process_cpu).unwrap_or_default())
                .collect();
            let peak_rss: [Arc<AtomicU64>; 2] = Default::default();
            let mut watches_peak = 0u64;
            loop {
                for (pid, peak) in [apiserver, controller].iter().zip(&peak_rss) {
                    if let Some(kib) = pid.and_then(|p| status_kib(p, "VmRSS:")) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                }
                if let Some(w) = watches_open(&client).await {
                    watches_peak = watches_peak.max(w);
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            let cpu = |i: usize, pid: Option<u32>| {
                ms(pid
                    .map(process_cpu)
                    .unwrap_or_default()
                    .saturating_sub(cpu0[i]))
            };
            json!({
                "apiServer": {"cpuMs": cpu(0, apiserver), "rssPeakMiB": peak_rss[0].load(Ordering::Relaxed) / 1024},
                "workflowController": {"cpuMs": cpu(1, controller), "rssPeakMiB": peak_rss[1].load(Ordering::Relaxed) / 1024},
                "kwok": {"cpuMs": cpu(2, kwok)},
                "watchesOpenPeak": watches_peak,
            })
        });
        Sampler { stop, task }
    }

    async fn stop(self) -> Value {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// The pid in the cluster's `run/<name>.pid`.
fn pid_file(cluster: &Cluster, name: &str) -> Option<u32> {
    std::fs::read_to_string(cluster.dir.join("run").join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The pid of the one process whose program (`/proc/<pid>/exe`'s file name) starts with
/// `program`, to read its CPU (the workflow-controller runs in a pod; nothing is signalled).
fn pid_of_program(program: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .is_some_and(|f| f.starts_with(program))
        })
}

/// Watches open at the API server, every client's: the sum of
/// `apiserver_longrunning_requests{verb="WATCH"}` in its `/metrics`.
async fn watches_open(client: &kube::Client) -> Option<u64> {
    let req = http::Request::get("/metrics").body(Vec::new()).ok()?;
    let text = client.request_text(req).await.ok()?;
    let sum: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_longrunning_requests{") && l.contains("verb=\"WATCH\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    Some(sum as u64)
}

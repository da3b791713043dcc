//! Benchmark: our runners side by side with the tools a user would pick instead, on one local
//! control plane, in one run. Writes `bench.json` and `bench.md` into the output directory.
//!
//! Usage: `hack/bench.sh [--smoke] [--images] [--out DIR] [--reps R] [--scale N,N] [--only argo|helm]`
//! (builds release binaries and the peers first). `--smoke`: N = 1 and one repetition, so that
//! CI keeps the benchmark from rotting. `--reps`, `--scale` and `--only` narrow a run down for
//! investigating one figure.
//!
//! Argo ([`argo`]), for `argo-runner`, `argo submit --wait` and Capact's `argo-runner`:
//! binary size; cold start (spawn until the driver's watch shows the Workflow, ms); completion
//! notice (the driver's status patch to `Succeeded` until the process exited, ms); peak RSS
//! (KiB) and CPU time (user + system, ms) over a whole run; API requests per run, by verb and
//! resource, from the API server's audit log (each run authenticates as its own
//! ServiceAccount); scale: N at once, each creating and waiting for its own Workflow while the
//! driver completes them (wall time until all exited, summed CPU of the processes, API server
//! CPU, failures).
//!
//! Helm ([`helm`]), for `helm-runner`, `helm upgrade --install --wait` and Capact's
//! `helm-runner`: wall time, peak RSS of the process tree and CPU time of an install and of an
//! upgrade of the same chart; API requests.
//!
//! Capact's runners take part when `KAR_CAPACT_ARGO_RUNNER` / `KAR_CAPACT_HELM_RUNNER` name
//! their binaries (built outside this repository; see the README).
//!
//! Figures are medians over the repetitions, after one unmeasured warm-up run of each side.

mod argo;
mod capact;
mod cluster;
mod helm;
mod measure;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use action_runner_tests::*;
use anyhow::{Context, Result, bail};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};
use serde_json::json;

use measure::file_size;

const REPETITIONS: usize = 5;
const SCALE_FULL: [usize; 4] = [1, 10, 50, 200];
/// N for `--cluster`: Jobs on the one-node cluster (the kubelet runs at most 110 pods).
const SCALE_CLUSTER: [usize; 2] = [10, 50];

/// The control plane and the driver's admin client.
pub struct Lab {
    pub cp: ControlPlane,
    pub admin: kube::Client,
}

impl Lab {
    /// A namespace with ServiceAccount `runner` bound to cluster-admin, and its kubeconfig.
    pub async fn namespace(&self, prefix: &str) -> Result<(String, PathBuf)> {
        let ns = self.cp.namespace(prefix).await?;
        let kubeconfig = self.cp.service_account_kubeconfig(&ns, "runner").await?;
        let crbs: Api<ClusterRoleBinding> = Api::all(self.admin.clone());
        let crb: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("bench-{ns}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}],
        }))?;
        crbs.create(&PostParams::default(), &crb).await?;
        // The authorizer sees a new binding through an informer: wait until it applies.
        let sa_client = client_from(&kubeconfig).await?;
        let probe: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(sa_client, &ns);
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = probe.list(&Default::default()).await {
            if Instant::now() > deadline {
                bail!("ServiceAccount runner in {ns} never got its rights: {e}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((ns, kubeconfig))
    }

    /// `bin` with an empty environment but `PATH`, `HOME` (the control plane's directory) and
    /// `KUBECONFIG`.
    pub fn command(&self, bin: &Path, kubeconfig: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.cp.dir())
            .env("KUBECONFIG", kubeconfig);
        // For profiling a run (with `KAR_BENCH_STDERR`, see `measure::spawn_measured`).
        if let Ok(filter) = std::env::var("RUST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        cmd
    }

    /// Now, in the audit log's timestamp format.
    pub fn audit_now() -> String {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
            .to_string()
    }

    /// Where a Helm step's time went, from the audit log: the requests a Helm process (user
    /// agent `Helm/...`) made as ServiceAccount `runner` of `ns` between `since` (taken just
    /// before the tool was spawned) and `until` (just after its exit was seen), both audit
    /// timestamps. In ms: `firstListMs`, how long the API server took over Helm's first `LIST`
    /// of Secrets (its read of the release's records, Helm's first real request);
    /// `beforeHelmMs`, spawn to Helm's first request (for the bare CLI, Helm's own start; for
    /// ours, the runner's work before helm too); `afterHelmMs`, Helm's last answer to the exit
    /// seen (Helm's exit, and ours' work after helm); `firstRequestMs`, spawn to the first
    /// request of any kind (ours: the runner's own start). Empty without requests.
    pub fn helm_timeline(
        &self,
        ns: &str,
        since: &str,
        until: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let at = |ev: &serde_json::Value, key: &str| {
            ev[key]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        };
        let ms = |d: jiff::SignedDuration| json!((d.as_secs_f64() * 10_000.0).round() / 10.0);
        let all = self.runner_requests(ns, since, Some(until));
        let first_any = all
            .first()
            .and_then(|ev| at(ev, "requestReceivedTimestamp"));
        let helm: Vec<&serde_json::Value> = all
            .iter()
            .filter(|ev| {
                ev["userAgent"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Helm/")
            })
            .collect();
        let mut out = serde_json::Map::new();
        let (Ok(since), Ok(until)) = (
            since.parse::<jiff::Timestamp>(),
            until.parse::<jiff::Timestamp>(),
        ) else {
            return out;
        };
        let first_list = helm
            .iter()
            .find(|ev| ev["verb"] == "list" && ev["objectRef"]["resource"] == "secrets");
        if let Some((received, done)) = first_list.and_then(|ev| {
            Some((
                at(ev, "requestReceivedTimestamp")?,
                at(ev, "stageTimestamp")?,
            ))
        }) {
            out.insert("firstListMs".into(), ms(done.duration_since(received)));
        }
        if let Some(first) = first_any {
            out.insert("firstRequestMs".into(), ms(first.duration_since(since)));
        }
        if let Some(first) = helm
            .first()
            .and_then(|ev| at(ev, "requestReceivedTimestamp"))
        {
            out.insert("beforeHelmMs".into(), ms(first.duration_since(since)));
        }
        if let Some(last) = helm.iter().filter_map(|ev| at(ev, "stageTimestamp")).max() {
            out.insert("afterHelmMs".into(), ms(until.duration_since(last)));
        }
        out
    }

    /// The answered requests ServiceAccount `runner` of `ns` made, received from `since` to
    /// `until` (none: to now), oldest first: their audit events.
    fn runner_requests(
        &self,
        ns: &str,
        since: &str,
        until: Option<&str>,
    ) -> Vec<serde_json::Value> {
        let user = format!("system:serviceaccount:{ns}:runner");
        let mut events: Vec<serde_json::Value> = self
            .cp
            .audit_events(&user)
            .into_iter()
            .filter(|ev| {
                // RFC 3339 UTC timestamps with fixed precision compare as strings.
                let received = ev["requestReceivedTimestamp"].as_str().unwrap_or_default();
                ev["stage"] == "ResponseComplete"
                    && received >= since
                    && until.is_none_or(|until| received <= until)
            })
            .collect();
        events.sort_by(|a, b| {
            a["requestReceivedTimestamp"]
                .as_str()
                .cmp(&b["requestReceivedTimestamp"].as_str())
        });
        events
    }

    /// Requests made by ServiceAccount `runner` of `ns` since `since`, by "verb resource".
    pub fn audit_counts(&self, ns: &str, since: &str) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for ev in self.runner_requests(ns, since, None) {
            let resource = ev["objectRef"]["resource"].as_str().unwrap_or("(none)");
            let verb = ev["verb"].as_str().unwrap_or("?");
            *counts.entry(format!("{verb} {resource}")).or_insert(0) += 1;
        }
        counts
    }
}

/// A path from an environment variable, if it names an existing file.
fn binary_from_env(var: &str) -> Option<PathBuf> {
    std::env::var(var)
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/bench"));
    std::fs::create_dir_all(&out_dir)?;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--smoke" | "--cluster" => i += 1,
            "--out" | "--reps" | "--scale" | "--only" if i + 1 < args.len() => i += 2,
            other => bail!(
                "unknown or incomplete argument {other:?}; usage: bench [--smoke] [--out DIR] \
                 [--reps R] [--scale N,N,...] [--only argo|helm] [--cluster]"
            ),
        }
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (mut reps, mut scale): (usize, Vec<usize>) = if smoke {
        (1, vec![1])
    } else {
        (REPETITIONS, SCALE_FULL.to_vec())
    };
    if let Some(r) = value("--reps") {
        reps = r.parse().context("--reps takes a number")?;
    }
    if let Some(list) = value("--scale") {
        scale = list
            .split(',')
            .map(|n| n.trim().parse())
            .collect::<Result<_, _>>()
            .context("--scale takes numbers separated by commas")?;
    }
    let only = value("--only");
    if !matches!(only.as_deref(), None | Some("argo" | "helm")) {
        bail!("--only takes argo or helm");
    }

    if args.iter().any(|a| a == "--cluster") {
        let scale = value("--scale").map_or(Ok(SCALE_CLUSTER.to_vec()), |list| {
            list.split(',')
                .map(|n| n.trim().parse())
                .collect::<Result<Vec<usize>, _>>()
                .context("--scale takes numbers separated by commas")
        })?;
        let report = json!({
            "machine": measure::machine(),
            "argoVersion": std::env::var("KAR_ARGO_VERSION").ok(),
            "cluster": cluster::run(&scale).await?,
        });
        let md = report::cluster_markdown(&report);
        return write_report(&out_dir, "bench-cluster", &report, &md);
    }

    let tools = Tools::locate()?;
    eprintln!("bench: starting the control plane");
    let crd = tools.argo_workflow_crd();
    let cp = tokio::task::spawn_blocking(move || ControlPlane::start(&[crd])).await??;
    let admin = cp.client().await?;
    let lab = Lab { cp, admin };

    let argo = argo::ArgoBench {
        lab: &lab,
        argo_cli: binary_from_env("KAR_ARGO_CLI"),
        capact: binary_from_env("KAR_CAPACT_ARGO_RUNNER"),
        manifest: tools.argo_example("hello-world"),
    };
    // One unmeasured run first: the API server's first requests from a new ServiceAccount token
    // (authentication and authorization caches) are slower, and would skew whichever tool
    // happened to run first.
    let mut argo_results = serde_json::Map::new();
    if only.as_deref() != Some("helm") {
        eprintln!("bench: warm-up run (not measured)");
        argo.single(argo::Tool::Ours, 0).await?;
    }
    let argo_tools = if only.as_deref() == Some("helm") {
        Vec::new()
    } else {
        argo.tools()
    };
    for (tool, v) in argo.measure(&argo_tools, reps, &scale).await? {
        argo_results.insert(tool.key().into(), v);
    }

    let helm = helm::HelmBench::new(
        &lab,
        tools.helm.clone(),
        binary_from_env("KAR_CAPACT_HELM_RUNNER"),
    )?;
    let mut helm_results = serde_json::Map::new();
    let helm_tools = if only.as_deref() == Some("argo") {
        Vec::new()
    } else {
        helm.tools()
    };
    for (tool, mut v) in helm.measure(&helm_tools, reps).await? {
        // What ships: ours is the runner and the Helm CLI it runs.
        v["shippedBytes"] = match tool {
            helm::Tool::Ours => {
                json!(v["binaryBytes"].as_u64().unwrap_or(0) + file_size(&tools.helm).unwrap_or(0))
            }
            _ => v["binaryBytes"].clone(),
        };
        helm_results.insert(tool.key().into(), v);
    }

    // For profiling: `KAR_BENCH_AUDIT=FILE` keeps the API server's audit log (every request of
    // every run, with its received and completed timestamps).
    if let Some(file) = std::env::var_os("KAR_BENCH_AUDIT") {
        std::fs::write(&file, lab.cp.audit_log())
            .with_context(|| format!("cannot write KAR_BENCH_AUDIT {}", file.to_string_lossy()))?;
    }

    let images: Vec<String> = std::fs::read_to_string(repo_root().join("target/images/sizes.txt"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    let report = json!({
        "machine": measure::machine(),
        "smoke": smoke,
        "repetitions": reps,
        "peers": {
            "capact": capact::status(argo.capact.as_deref(), helm.capact.as_deref()),
            "argo-cli": argo.argo_cli.as_ref().map(|p| p.display().to_string()),
            "helm-cli": tools.helm.display().to_string(),
            "images": "Peers' images: not measured. Their official images (quay.io/argoproj/argocli, Helm's, ghcr.io/capactio) cannot be pulled here: this machine reaches no container registry. Compare the binary sizes above.",
        },
        "ratios": {
            "argo": measure::ratios(&argo_results, "argo-runner"),
            "helm": measure::ratios(&helm_results, "helm-runner"),
        },
        "argo": argo_results,
        "helm": helm_results,
        "images": images,
    });
    let md = report::markdown(&report);
    write_report(&out_dir, "bench", &report, &md)
}

/// Writes `<name>.json` and `<name>.md` into `dir` and prints the markdown.
fn write_report(dir: &Path, name: &str, report: &serde_json::Value, md: &str) -> Result<()> {
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(dir.join(format!("{name}.md")), md)?;
    println!("{md}");
    eprintln!("bench: wrote {}", dir.display());
    Ok(())
}

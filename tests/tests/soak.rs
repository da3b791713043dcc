//! The soak: many actions (Argo and Helm, meant to succeed and meant to fail) through
//! `deploy/`'s Jobs on the local cluster, a few at once, while faults
//! ([`action_runner_tests::faults`]) come at moments drawn from a seeded schedule. Every
//! action's outcome is checked against the truth in the cluster: the Job, the status ConfigMap
//! and the Workflow or the release must agree, with exactly one Workflow per Argo action and
//! never a release left `pending-*`. It prints the seed and each fault as it comes, so that a
//! failure can be replayed, and ends with one `soak:` line of figures.
//!
//! Not part of `hack/test.sh` (it takes about 15 minutes): `hack/soak.sh` runs it. Knobs:
//! `KAR_SOAK_SEED` (default: the time), `KAR_SOAK_ACTIONS` (default 200), `KAR_SOAK_PARALLEL`
//! (default 6), `KAR_SOAK_FAULT_GAP` (seconds between faults, default 45).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use action_runner::status::Phase;
use action_runner_tests::cluster::{Cluster, describe, job_outcome, record_skip, wait_for_job};
use action_runner_tests::controllers::workflows;
use action_runner_tests::deploy::{apply_deploy, kind_of, name_of};
use action_runner_tests::faults::{Fault, helm_records, inject};
use action_runner_tests::test_env::reported_status;
use action_runner_tests::tools::Tools;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};

/// How long one action may take, faults included.
const JOB_TIMEOUT: Duration = Duration::from_secs(420);

/// A small deterministic generator (xorshift64*): the same seed, the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What an action is and what it should end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Argo's `hello-world` example: succeeds.
    ArgoSucceeds,
    /// Argo's `exit-handlers` example (a step exits 1): fails.
    ArgoFails,
    /// `deploy/helm-runner` as shipped: installs.
    HelmSucceeds,
    /// The same with a chart whose template calls `fail`: helm refuses to render it.
    HelmFails,
}

const KINDS: [Kind; 4] = [
    Kind::ArgoSucceeds,
    Kind::ArgoFails,
    Kind::HelmSucceeds,
    Kind::HelmFails,
];

/// What one action ended with, as checked.
#[derive(Debug)]
struct Checked {
    kind: Kind,
    /// The runner's report disagreed with the cluster (the message says how); `None` if not.
    wrong: Option<String>,
    /// An action meant to succeed that a fault made fail for real (its Workflow failed), and
    /// the runner said so.
    failed_by_fault: bool,
    secs: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn example(name: &str) -> String {
    std::fs::read_to_string(Tools::locate().unwrap().argo_example(name)).unwrap()
}

/// Applies the action's Jobs in a fresh namespace, waits for it to end, checks it against the
/// cluster, and deletes the namespace.
async fn run_action(
    cluster: &'static Cluster,
    client: kube::Client,
    i: u64,
    kind: Kind,
) -> Checked {
    let t0 = Instant::now();
    let deadline = t0 + JOB_TIMEOUT;
    // The soak's own requests meet the faults too: each step is retried until the action's
    // deadline (the runners' behaviour is what is checked, not this harness').
    let prefix = format!("soak-{i}");
    let ns = until(deadline, || cluster.namespace(&client, &prefix)).await;
    let runner = match kind {
        Kind::ArgoSucceeds | Kind::ArgoFails => "argo-runner",
        Kind::HelmSucceeds | Kind::HelmFails => "helm-runner",
    };
    let manifest = example(if kind == Kind::ArgoSucceeds {
        "hello-world"
    } else {
        "exit-handlers"
    });
    let edit = move |obj: &mut Value| match (kind, kind_of(obj), name_of(obj)) {
        (Kind::ArgoSucceeds | Kind::ArgoFails, "ConfigMap", "hello-world-input") => {
            obj["data"]["manifest.yaml"] = json!(manifest);
        }
        (Kind::HelmFails, "ConfigMap", "hello-release-chart") => {
            obj["data"]["configmap.yaml"] =
                json!("{{ fail \"this chart fails on purpose (the soak)\" }}\n");
        }
        _ => {}
    };
    let job = until(deadline, || {
        apply_deploy(&client, &ns, runner, edit.clone())
    })
    .await;
    let job_name = job.metadata.name.unwrap();
    let job = until(deadline, || {
        wait_for_job(
            &client,
            &ns,
            &job_name,
            deadline.saturating_duration_since(Instant::now()),
        )
    })
    .await;
    let outcome = job_outcome(&job);
    let wrong = until(deadline + Duration::from_secs(120), || {
        check(&client, &ns, runner, kind, outcome)
    })
    .await;
    let failed_by_fault = wrong.as_deref() == Some("failed by a fault");
    let wrong = wrong.filter(|_| !failed_by_fault);
    if wrong.is_some() {
        println!("soak: action {i} ({kind:?}) in {ns}: {wrong:?}");
        println!("{}", describe(&client, &ns).await);
    } else {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    }
    Checked {
        kind,
        wrong,
        failed_by_fault,
        secs: t0.elapsed().as_secs(),
    }
}

/// `None` when the Job's outcome, the status and the cluster agree with each other and with
/// what `kind` should end with; `Some("failed by a fault")` when they agree on a failure a
/// fault caused; else what disagreed.
async fn check(
    client: &kube::Client,
    ns: &str,
    runner: &str,
    kind: Kind,
    outcome: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let name = if runner == "argo-runner" {
        "hello-world"
    } else {
        "hello-release"
    };
    let Some(status) = reported_status(client, ns, name).await? else {
        return Ok(Some("no status".into()));
    };
    let (truly_succeeded, truth) = if runner == "argo-runner" {
        let wfs = workflows(client, ns).list(&ListParams::default()).await?;
        if wfs.items.len() != 1 {
            return Ok(Some(format!("{} Workflows", wfs.items.len())));
        }
        let phase = wfs.items[0].data["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (phase == "Succeeded", format!("Workflow {phase}"))
    } else {
        let records = helm_records(client, ns, "hello-release").await?;
        if records.iter().any(|r| r.1.starts_with("pending")) {
            return Ok(Some(format!("a release left pending: {records:?}")));
        }
        let deployed = records.iter().filter(|r| r.1 == "deployed").count();
        if deployed > 1 {
            return Ok(Some(format!("{deployed} deployed revisions: {records:?}")));
        }
        (deployed == 1, format!("release {records:?}"))
    };
    let reported_success = status.phase == Phase::Succeeded;
    let job_success = outcome == Some("Complete");
    if reported_success != truly_succeeded || job_success != truly_succeeded {
        return Ok(Some(format!(
            "Job {outcome:?}, status {:?} ({}), but {truth}",
            status.phase, status.message
        )));
    }
    let meant_to_succeed = matches!(kind, Kind::ArgoSucceeds | Kind::HelmSucceeds);
    Ok(match (meant_to_succeed, truly_succeeded) {
        (true, true) | (false, false) => None,
        (true, false) => Some("failed by a fault".into()),
        (false, true) => Some(format!("meant to fail, but {truth}")),
    })
}

/// `step()` until it succeeds, every 2 s; past `deadline`, its error fails the soak.
async fn until<T, E, F, Fut>(deadline: Instant, mut step: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    loop {
        match step().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("past the action's deadline: {e:#}"),
        }
    }
}

/// The running runner pods, as `(namespace, pod, runner)`.
async fn running_runner_pods(client: &kube::Client) -> Vec<(String, String, String)> {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=action-runner"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && p.metadata.deletion_timestamp.is_none()
        })
        .map(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
                labels
                    .get("app.kubernetes.io/name")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// The next fault of the schedule, on the pods running now (`None` if it needs a pod and none
/// runs).
async fn next_fault(rng: &mut Rng, client: &kube::Client) -> Option<Fault> {
    let pods = running_runner_pods(client).await;
    let pick_pod = |rng: &mut Rng, only: Option<&str>| {
        let candidates: Vec<_> = pods
            .iter()
            .filter(|p| only.is_none_or(|r| p.2 == r))
            .collect();
        (!candidates.is_empty())
            .then(|| candidates[rng.below(candidates.len() as u64) as usize].clone())
    };
    match rng.below(10) {
        0 | 1 => Some(Fault::Outage {
            process: "kube-apiserver",
            secs: 10 + rng.below(21) as u32,
        }),
        2 => Some(Fault::Outage {
            process: "etcd",
            secs: 2,
        }),
        3 => Some(Fault::Outage {
            process: "kubelet",
            secs: 2 + rng.below(5) as u32,
        }),
        4 => Some(Fault::Outage {
            process: "containerd",
            secs: 2,
        }),
        5 => Some(Fault::ControllerPodDeleted),
        6 | 7 => pick_pod(rng, None).map(|(ns, pod, _)| Fault::NetworkCut {
            pods: vec![(ns, pod)],
            secs: 10 + rng.below(21) as u32,
        }),
        8 => pick_pod(rng, Some("helm-runner"))
            .map(|(namespace, pod, _)| Fault::OomKill { namespace, pod }),
        _ => Some(Fault::Reboot { secs: 5 }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the soak takes about 15 minutes: hack/soak.sh runs it"]
async fn soak() {
    let Some(cluster) = Cluster::get() else {
        record_skip("soak");
        return;
    };
    let client = cluster.client().await.unwrap();
    let seed = env_u64(
        "KAR_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let actions = env_u64("KAR_SOAK_ACTIONS", 200);
    let parallel = env_u64("KAR_SOAK_PARALLEL", 6) as usize;
    let gap = env_u64("KAR_SOAK_FAULT_GAP", 45);
    println!(
        "soak: seed {seed} (replay: KAR_SOAK_SEED={seed} hack/soak.sh), {actions} actions, \
         {parallel} at once, a fault every {gap} s or so"
    );
    let t0 = Instant::now();
    let mut rng = Rng(seed.max(1));
    let kinds: Vec<Kind> = (0..actions).map(|_| KINDS[rng.below(4) as usize]).collect();

    let slots = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let (client, slots) = (client.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            run_action(cluster, client, i as u64, kind).await
        });
    }

    // Faults until every action has ended.
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    let mut results = Vec::new();
    let mut next = Instant::now() + Duration::from_secs(gap / 2 + rng.below(gap));
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => {
                if let Some(done) = done {
                    results.push(done.expect("an action's task"));
                }
            }
            () = tokio::time::sleep_until(next.into()) => {
                if let Some(fault) = next_fault(&mut rng, &client).await {
                    let at = t0.elapsed().as_secs();
                    let kind = format!("{fault:?}").split([' ', '{', '(']).next().unwrap_or("").to_string();
                    match inject(cluster, &client, &fault).await {
                        Ok(line) => println!("soak: +{at} s {line}"),
                        Err(e) => println!("soak: +{at} s {fault:?} could not be injected: {e:#}"),
                    }
                    *faults.entry(kind).or_default() += 1;
                }
                next = Instant::now() + Duration::from_secs(gap / 2 + rng.below(gap));
            }
        }
    }

    let wall = t0.elapsed().as_secs();
    let wrong: Vec<&Checked> = results.iter().filter(|c| c.wrong.is_some()).collect();
    let by_fault = results.iter().filter(|c| c.failed_by_fault).count();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for c in &results {
        *by_kind.entry(format!("{:?}", c.kind)).or_default() += 1;
    }
    let slowest = results.iter().map(|c| c.secs).max().unwrap_or(0);
    println!(
        "soak: seed {seed}: {} actions in {wall} s ({by_kind:?}); faults {} ({faults:?}); \
         outcomes wrong {}; meant to succeed but failed by a fault, and reported so {by_fault}; \
         slowest action {slowest} s",
        results.len(),
        faults.values().sum::<usize>(),
        wrong.len()
    );
    assert_eq!(results.len() as u64, actions, "every action ended");
    assert!(wrong.is_empty(), "outcomes wrong: {wrong:?}");
}

//! Faults around the runners on the real one-node cluster of `hack/cluster.sh`: while an Argo
//! action and a Helm action (`wait: true`) run as `deploy/`'s Jobs, one fault is injected
//! (`hack/cluster.sh fault`, hack/cluster/faults.sh) and undoes itself: the API server down for
//! 30 s, etcd restarted, the runner pods cut from the API server for 30 s, the kubelet or
//! containerd restarted, Argo's workflow-controller pod deleted, the Helm runner OOM-killed, the
//! node rebooted. Each test then checks that nothing was lost: each Job ends with the action's
//! true outcome (both succeed), each status ConfigMap ends in a final phase, there is exactly
//! one Workflow, the release has exactly one `deployed` revision and none left `pending-*`, no
//! more revisions than the Job had pods, and the runners made a bounded number of requests (the
//! API server's audit log, counted per ServiceAccount: no hot loop). Each prints one `figures:`
//! line (docs/faults.md reads them).
//!
//! Faults are host-wide, so the tests of this file take turns (one lock) and `hack/test.sh`
//! runs this file alone, in a phase of its own. Skipped (with a line saying so) when no cluster is set, as
//! cluster_e2e.

use std::time::{Duration, Instant};

use action_runner::status::Phase;
use action_runner_tests::cluster::{
    Cluster, describe, job_outcome, job_pods, record_skip, terminated, wait_for_job,
    wait_for_running_job_pod,
};
use action_runner_tests::controllers::{wait_for_workflow, workflows};
use action_runner_tests::deploy::{apply_deploy, kind_of, name_of, set_env, slow_helm_release};
use action_runner_tests::faults::{Fault, helm_records, inject, requests_by};
use action_runner_tests::test_env::reported_status;
use action_runner_tests::tools::Tools;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde_json::{Value, json};

/// How long one action may take, faults included.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// Requests one action may make at the API server (its runner and, for Helm, helm itself),
/// faults included: several times what a run without a fault makes (printed by
/// [`no_fault_baseline`]), far below what a loop that retries without backoff makes in 30 s.
const ARGO_REQUEST_BOUND: usize = 80;
const HELM_REQUEST_BOUND: usize = 400;

/// Faults change the whole cluster: one at a time.
static ONE_FAULT_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What is done to the cluster while both actions run (resolved to a [`Fault`] once the
/// runner pods are known).
#[derive(Debug, Clone, Copy, PartialEq)]
enum What {
    /// Nothing: the figures to compare with.
    None,
    /// A host process stopped for the seconds given, then started again with the same flags.
    Outage(&'static str, u32),
    /// Both runner pods' traffic to the API server dropped for the seconds given.
    NetworkCut(u32),
    /// Argo's workflow-controller pod deleted (its Deployment makes another).
    ControllerPodDeleted,
    /// The Helm runner's container OOM-killed by the kernel.
    HelmRunnerOomKilled,
    /// Every cluster process and container killed; everything started again after the seconds
    /// given.
    Reboot(u32),
}

/// The two actions of a test and what they ended with.
struct Scenario {
    cluster: &'static Cluster,
    client: kube::Client,
    ns: String,
    argo_job: String,
    helm_job: String,
}

/// How long the Argo runner waits (`RUNNER_TIMEOUT`): a Workflow whose step's pod a fault
/// left stuck (a node reboot: the kubelet makes no new sandbox for a `restartPolicy: Never`
/// pod) never finishes by itself.
const ARGO_RUNNER_TIMEOUT: &str = "180s";

/// `deploy/argo-runner` with Argo's `dag-diamond` example as its input (four steps, 10 to 20
/// s), [`ARGO_RUNNER_TIMEOUT`], and the right to read pods that its `logs` component grants
/// (so that a timeout can say what the pods were waiting on).
fn argo_input(obj: &mut Value) {
    match (kind_of(obj), name_of(obj)) {
        ("ConfigMap", "hello-world-input") => {
            let example = Tools::locate().unwrap().argo_example("dag-diamond");
            obj["data"]["manifest.yaml"] = json!(std::fs::read_to_string(example).unwrap());
        }
        ("Job", _) => set_env(obj, "RUNNER_TIMEOUT", ARGO_RUNNER_TIMEOUT),
        ("Role", _) => obj["rules"].as_array_mut().unwrap().push(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}),
        ),
        _ => {}
    }
}

impl Scenario {
    /// Both Jobs applied in a fresh namespace, and waited for until both actions are under way:
    /// the Workflow exists and has started, helm stored the release `pending-install`, and both
    /// runner pods run.
    async fn start(prefix: &str) -> Option<Scenario> {
        let Some(cluster) = Cluster::get() else {
            record_skip(prefix);
            return None;
        };
        let client = cluster.client().await.unwrap();
        let ns = cluster.namespace(&client, prefix).await.unwrap();
        let argo = apply_deploy(&client, &ns, "argo-runner", argo_input)
            .await
            .unwrap();
        let helm = apply_deploy(
            &client,
            &ns,
            "helm-runner",
            slow_helm_release(&cluster.busybox_image),
        )
        .await
        .unwrap();
        let s = Scenario {
            cluster,
            client,
            ns,
            argo_job: argo.metadata.name.unwrap(),
            helm_job: helm.metadata.name.unwrap(),
        };
        wait_for_workflow(&s.client, &s.ns, "hello-world", JOB_TIMEOUT)
            .await
            .unwrap();
        let mut polls = 0;
        while !s
            .helm_records()
            .await
            .iter()
            .any(|r| r.1 == "pending-install")
        {
            polls += 1;
            assert!(
                polls < 1200,
                "helm never stored the release pending-install"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for job in [&s.argo_job, &s.helm_job] {
            wait_for_running_job_pod(&s.client, &s.ns, job, JOB_TIMEOUT)
                .await
                .unwrap();
        }
        Some(s)
    }

    /// The name of Job `job`'s running pod.
    async fn running_pod(&self, job: &str) -> String {
        wait_for_running_job_pod(&self.client, &self.ns, job, JOB_TIMEOUT)
            .await
            .unwrap()
            .metadata
            .name
            .unwrap()
    }

    /// `(revision, status)` of each record Helm stores for the release.
    async fn helm_records(&self) -> Vec<(u32, String)> {
        helm_records(&self.client, &self.ns, "hello-release")
            .await
            .unwrap()
    }

    /// Injects `what` and returns the line(s) `hack/cluster.sh fault` printed.
    async fn inject(&self, what: What) -> String {
        let fault = match what {
            What::None => return "no fault".into(),
            What::ControllerPodDeleted => Fault::ControllerPodDeleted,
            What::Outage(process, secs) => Fault::Outage { process, secs },
            What::NetworkCut(secs) => {
                let mut pods = Vec::new();
                for job in [&self.argo_job, &self.helm_job] {
                    pods.push((self.ns.clone(), self.running_pod(job).await));
                }
                Fault::NetworkCut { pods, secs }
            }
            What::HelmRunnerOomKilled => Fault::OomKill {
                namespace: self.ns.clone(),
                pod: self.running_pod(&self.helm_job).await,
            },
            What::Reboot(secs) => Fault::Reboot { secs },
        };
        inject(self.cluster, &self.client, &fault).await.unwrap()
    }

    /// Waits for Job `job` to end and returns its outcome, its pods' number, the seconds from
    /// its start to its end, and its end (Unix seconds; -1 when unknown).
    async fn ended(&self, job: &str) -> (Option<&'static str>, usize, i64, i64) {
        let j = wait_for_job(&self.client, &self.ns, job, JOB_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("Job {}/{job}: {e:#}", self.ns));
        let pods = job_pods(&self.client, &self.ns, job).await.unwrap();
        let status = j.status.clone().unwrap_or_default();
        // A failed Job has no completionTime: its `Failed` condition says when it ended.
        let ended = status.completion_time.or_else(|| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Failed" && c.status == "True")
                .and_then(|c| c.last_transition_time.clone())
        });
        let end = ended.as_ref().map_or(-1, |t| t.0.as_second());
        let secs = match (status.start_time, ended) {
            (Some(a), Some(b)) => b.0.as_second() - a.0.as_second(),
            _ => -1,
        };
        (job_outcome(&j), pods.len(), secs, end)
    }

    /// Lines of every pod of Job `job` (those whose log can still be read) that say what the
    /// runner waited through: warnings and retries.
    async fn waited_through(&self, job: &str) -> Vec<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let mut lines = Vec::new();
        for p in job_pods(&self.client, &self.ns, job).await.unwrap() {
            let name = p.metadata.name.unwrap();
            if let Ok(log) = pods.logs(&name, &LogParams::default()).await {
                lines.extend(
                    log.lines()
                        .filter(|l| l.contains("WARN") || l.contains("retry"))
                        .map(|l| format!("{name}: {l}")),
                );
            }
        }
        lines
    }

    /// The status the runner reported in ConfigMap `name`.
    async fn status(&self, name: &str) -> action_runner::status::ActionStatus {
        reported_status(&self.client, &self.ns, name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no status in ConfigMap {}/{name}", self.ns))
    }

    /// The termination messages of Job `job`'s pods, joined.
    async fn termination_message(&self, job: &str) -> String {
        job_pods(&self.client, &self.ns, job)
            .await
            .unwrap()
            .iter()
            .filter_map(|p| terminated(p).and_then(|t| t.message.clone()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Requests made at the API server as ServiceAccount `sa` of this namespace.
    fn requests_by(&self, sa: &str) -> usize {
        requests_by(self.cluster, &self.ns, sa).unwrap()
    }
}

/// Both actions through `fault`: each ends as it would have without it.
async fn both_actions_through(prefix: &str, fault: What) {
    let _turn = ONE_FAULT_AT_A_TIME.lock().await;
    let Some(s) = Scenario::start(prefix).await else {
        return;
    };
    let t0 = Instant::now();
    let what = s.inject(fault).await;
    // The fault has undone itself: from here on, what each action takes is its recovery.
    let undone = jiff::Timestamp::now().as_second();
    println!("{what}");
    let ((argo, argo_pods, argo_secs, argo_end), (helm, helm_pods, helm_secs, helm_end)) =
        tokio::join!(s.ended(&s.argo_job), s.ended(&s.helm_job));
    let recovered = |end: i64| if end < 0 { -1 } else { (end - undone).max(0) };
    let (argo_recovery, helm_recovery) = (recovered(argo_end), recovered(helm_end));
    let after = t0.elapsed().as_secs();
    let ns_state = describe(&s.client, &s.ns).await;

    // The Argo action: exactly one Workflow, and the Job, the status and the Workflow agree.
    // A fault can fail a Workflow for real (Argo's executor gives up reporting a step's result
    // when the API server stays away): then the Job fails, and its pod's termination message
    // names what the step's pod saw.
    let wfs = workflows(&s.client, &s.ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(wfs.items.len(), 1, "exactly one Workflow\n{ns_state}");
    let wf = &wfs.items[0].data;
    let wf_phase = wf["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let argo_status = s.status("hello-world").await;
    if wf_phase == "Succeeded" {
        assert_eq!(argo, Some("Complete"), "the Argo action\n{ns_state}");
        assert_eq!(argo_status.phase, Phase::Succeeded, "{argo_status:?}");
    } else if wf_phase == "Running" {
        // Stuck for good (a node reboot leaves a step's pod without a sandbox): the runner
        // ends at its timeout and says what the Workflow waited on, with the pod's state.
        assert_eq!(argo, Some("Failed"), "Workflow {wf_phase}\n{ns_state}");
        assert_eq!(argo_status.phase, Phase::Failed, "{argo_status:?}");
        let said = s.termination_message(&s.argo_job).await;
        assert!(
            said.contains("RUNNER_TIMEOUT")
                && said.contains("was waiting on")
                && said.contains("[pod "),
            "the runner's message says what it waited on: {said:?}"
        );
        println!("the Workflow never finished: {said}");
    } else {
        assert_eq!(argo, Some("Failed"), "Workflow {wf_phase}\n{ns_state}");
        assert_eq!(argo_status.phase, Phase::Failed, "{argo_status:?}");
        let step_messages: Vec<&str> = wf["status"]["nodes"]
            .as_object()
            .into_iter()
            .flat_map(|n| n.values())
            .filter(|n| n["type"] == "Pod")
            .filter_map(|n| n["message"].as_str())
            .collect();
        let said = s.termination_message(&s.argo_job).await;
        assert!(
            step_messages.iter().any(|m| said.contains(m)),
            "the runner's message {said:?} names what the step's pod saw: {step_messages:?}"
        );
        println!("the Workflow failed for real: {said}");
    }

    // The Helm action: it succeeds (helm and the runner wait the faults out), with exactly one
    // `deployed` revision, none left `pending-*`, and no more revisions than attempts.
    let helm_said = s.termination_message(&s.helm_job).await;
    assert_eq!(
        helm,
        Some("Complete"),
        "the Helm action; its pods said: {helm_said}\n{ns_state}"
    );
    if matches!(fault, What::HelmRunnerOomKilled) {
        // helm, the container's largest process, is the kernel's choice: the runner says so
        // and exits 137, which the Job retries.
        let first = &job_pods(&s.client, &s.ns, &s.helm_job).await.unwrap()[0];
        let t = terminated(first).expect("the first pod ended");
        assert_eq!(t.exit_code, 137, "{helm_said}");
        assert!(
            helm_said.contains("helm was killed by SIGKILL: the kernel's OOM killer"),
            "{helm_said}"
        );
    }
    let helm_status = s.status("hello-release").await;
    assert_eq!(helm_status.phase, Phase::Succeeded, "{helm_status:?}");
    let records = s.helm_records().await;
    assert_eq!(
        records.iter().filter(|r| r.1 == "deployed").count(),
        1,
        "{records:?}"
    );
    assert!(
        records.iter().all(|r| !r.1.starts_with("pending")),
        "a release left pending: {records:?}"
    );
    assert!(
        records.len() <= helm_pods,
        "more revisions than attempts ({helm_pods} pods): {records:?}"
    );

    // What the runners did meanwhile.
    let argo_requests = s.requests_by("argo-runner");
    let helm_requests = s.requests_by("helm-runner");
    for line in s.waited_through(&s.argo_job).await {
        println!("argo-runner: {line}");
    }
    for line in s.waited_through(&s.helm_job).await {
        println!("helm-runner: {line}");
    }
    println!(
        "figures: fault={fault:?} | argo: Workflow {wf_phase}, {argo_pods} pod(s), {argo_secs} s, {argo_requests} requests, \
         ended {argo_recovery} s after the fault was undone \
         | helm: {helm_pods} pod(s), {helm_secs} s, {helm_requests} requests, records {records:?}, \
         ended {helm_recovery} s after the fault was undone \
         | both ended {after} s after the fault began"
    );
    assert!(
        argo_requests <= ARGO_REQUEST_BOUND,
        "argo-runner made {argo_requests} requests"
    );
    assert!(
        helm_requests <= HELM_REQUEST_BOUND,
        "helm-runner made {helm_requests} requests"
    );
}

/// The tests, in a module of their own so that `hack/test.sh` can leave them out of the run of
/// every test (`--skip under_fault::`) and give them a phase of their own.
mod under_fault {
    use super::*;

    /// Both actions with no fault: the figures the others are read against.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_fault_baseline() {
        both_actions_through("fault-none", What::None).await;
    }

    /// kube-apiserver stopped for 30 s mid-action and started again with the same flags: the Argo
    /// runner's watch resumes, helm's `--wait` and the status writes get through after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_server_down_for_30_s() {
        both_actions_through("fault-apiserver", What::Outage("kube-apiserver", 30)).await;
    }

    /// etcd restarted mid-action.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_restarted() {
        both_actions_through("fault-etcd", What::Outage("etcd", 2)).await;
    }

    /// Both runner pods' traffic to the API server dropped for 30 s inside their network
    /// namespaces (no reset: the connections hang, as behind a broken switch), then let through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_runner_pods_cut_from_the_api_server_for_30_s() {
        both_actions_through("fault-netcut", What::NetworkCut(30)).await;
    }

    /// The kubelet restarted mid-action (the pods keep running).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_kubelet_restarted() {
        both_actions_through("fault-kubelet", What::Outage("kubelet", 2)).await;
    }

    /// containerd restarted mid-action (the containers keep running under their shims).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containerd_restarted() {
        both_actions_through("fault-containerd", What::Outage("containerd", 2)).await;
    }

    /// Argo's workflow-controller pod deleted mid-Workflow.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_workflow_controller_pod_deleted() {
        both_actions_through("fault-controller", What::ControllerPodDeleted).await;
    }

    /// The Helm runner's container hits its memory limit while helm waits (`wait: true`) and the
    /// kernel kills its largest process, helm: the release is left `pending-install` (helm had
    /// no chance to record an end), the runner says helm was OOM-killed and exits 137, which the
    /// Job retries, and the next pod recovers the release.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_helm_runner_oom_killed_mid_install() {
        both_actions_through("fault-oom", What::HelmRunnerOomKilled).await;
    }

    /// The node rebooted mid-action: every cluster process and container killed, 5 s of nothing,
    /// everything started again on the same state.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_rebooted() {
        both_actions_through("fault-reboot", What::Reboot(5)).await;
    }
}

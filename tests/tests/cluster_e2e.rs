//! The runners on the real one-node cluster of `hack/cluster.sh`: their images run as real Jobs
//! under a real kubelet (containerd, runc, cgroups), Argo's real workflow-controller and
//! executor run the Workflows' pods, and Helm's `--wait` watches real pods become Ready.
//!
//! Skipped (with a line saying so) when `KAR_CLUSTER_KUBECONFIG` is not set; `hack/test.sh`
//! starts the cluster, sets it and `KAR_REQUIRE_CLUSTER=1`, so that there they cannot skip.
//! Each test has a namespace of its own.

use std::path::Path;
use std::time::Duration;

use action_runner::status::{ActionStatus, Phase, Reason};
use action_runner_tests::argo::argo_example;
use action_runner_tests::cluster::{
    JOB_TIMEOUT, assert_none_oom_killed, job_outcome, job_pods, terminated, wait_for_job,
    wait_for_running_job_pod, with_argo_input, workflow_logs,
};
use action_runner_tests::controllers::workflows;
use action_runner_tests::deploy::{
    apply, apply_deploy, assert_deploy_jobs_completed, component_objects, deploy_objects, find,
    job_of, kind_of, name_of, set_env, slow_helm_release,
};
use action_runner_tests::fixtures::billion_laughs;
use action_runner_tests::helm::HelmBin;
use action_runner_tests::process::{RunnerCommand, collect, error_lines};
use action_runner_tests::test_env::{TestEnv, create_status_configmap};
use action_runner_tests::tools::{Tools, helm_cmd};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

/// `argo-runner`, built by `cargo build --bins`, run on this machine against the cluster as the
/// administrator, for Workflow `name` from `manifest`, its pods run as `argo-workflow` (whose
/// rights [`TestEnv::apply_workflow_service_account`] grants). Creates the status ConfigMap.
async fn argo_runner_for_real_pods(env: &TestEnv, name: &str, manifest: &Path) -> RunnerCommand {
    env.create_status_configmap(name).await;
    env.argo_runner(name, manifest).var(
        "RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME",
        Some("argo-workflow"),
    )
}

/// Text of one of Argo's example Workflows.
fn argo_example_text(name: &str) -> String {
    std::fs::read_to_string(argo_example(name)).unwrap()
}

/// Both Jobs of `deploy/`, applied as they ship, run on real pods from the real images: they
/// complete, leave the outcome the kind test checks (the same functions), and the Workflow's
/// own pod really ran (its log is read back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_jobs_run_as_shipped_on_real_pods() {
    let Some(env) = TestEnv::local_cluster("deploy").await else {
        return;
    };
    env.run_deploy_jobs_as_shipped().await;
    assert_deploy_jobs_completed(&env.client, &env.ns).await;
    let logs = workflow_logs(&env.client, &env.ns, "hello-world")
        .await
        .unwrap();
    assert!(
        logs.values().any(|l| l.contains("hello from argo-runner")),
        "{logs:?}"
    );
}

/// Two Jobs under one `RUNNER_CONTEXT_NAME`, as a user who copies a Job and forgets to rename
/// its action makes them: the second Job (another owner, another input: a Workflow that would
/// fail, a release with other values) never reports the first's Workflow or release as its own.
/// Its one pod exits 2 (the Job fails at once, `podFailurePolicy`) with the termination message
/// naming the first Job as the owner; the first action's Workflow, release and status are
/// untouched. See docs/identity.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_job_under_the_same_context_name_is_refused() {
    let Some(env) = TestEnv::local_cluster("twins").await else {
        return;
    };
    env.run_deploy_jobs_as_shipped().await;
    let first_workflow = workflows(&env.client, &env.ns)
        .get("hello-world")
        .await
        .unwrap();
    let releases = || env.helm_record_names::<Secret>("hello-release");
    let first_releases = releases().await;
    assert_eq!(first_releases.len(), 1, "{first_releases:?}");
    let statuses_before = (
        env.expect_status("hello-world").await,
        env.expect_status("hello-release").await,
    );

    // The copies: the same context names, other inputs, other Job names.
    let objects = |runner: &str| deploy_objects(runner);
    let copies = [
        (
            "argo-runner",
            "hello-world-input",
            "manifest.yaml",
            argo_example_text("exit-handlers"),
            "argo-runner-hello-world-copy",
        ),
        (
            "helm-runner",
            "hello-release-input",
            "manifest.yaml",
            "name: hello-release\nchart:\n  name: /runner/chart\nvalues:\n  greeting: hello again\n"
                .to_string(),
            "helm-runner-hello-release-copy",
        ),
    ];
    for (runner, input, key, manifest, job_name) in &copies {
        let objects = objects(runner);
        let mut cm = find(&objects, "ConfigMap", input).clone();
        let copy_input = format!("{input}-copy");
        cm["metadata"]["name"] = json!(copy_input);
        cm["data"][key] = json!(manifest);
        apply(&env.client, &env.ns, &cm, false).await.unwrap();
        let mut job = job_of(runner);
        job["metadata"]["name"] = json!(job_name);
        for v in job["spec"]["template"]["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
        {
            if v["configMap"]["name"] == json!(input) {
                v["configMap"]["name"] = json!(copy_input);
            }
        }
        apply(&env.client, &env.ns, &job, false).await.unwrap();
    }
    for (runner, _, _, _, job_name) in &copies {
        let (_, pods) = env.job_ended(job_name, "Failed").await;
        assert_eq!(
            pods.len(),
            1,
            "exit 2 fails the Job at once (podFailurePolicy)"
        );
        let t = terminated(&pods[0]).expect("the runner's container terminated");
        assert_eq!(t.exit_code, 2, "{runner}: {t:?}");
        let message = t.message.as_deref().unwrap_or_default();
        let first_job = name_of(&job_of(runner)).to_string();
        assert!(
            message.contains("another owner") || message.contains("another action"),
            "{runner}: {message}"
        );
        assert!(
            message.contains("RUNNER_CONTEXT_NAME"),
            "{runner}: {message}"
        );
        if *runner == "argo-runner" {
            assert!(
                message.contains(&first_job),
                "{runner} names the first Job: {message}"
            );
        }
    }
    let workflow = workflows(&env.client, &env.ns)
        .get("hello-world")
        .await
        .unwrap();
    assert_eq!(workflow.metadata.uid, first_workflow.metadata.uid);
    assert_eq!(workflow.data["status"]["phase"], "Succeeded");
    assert_eq!(releases().await, first_releases, "no new revision");
    assert_eq!(
        (
            env.expect_status("hello-world").await,
            env.expect_status("hello-release").await
        ),
        statuses_before,
        "the copies wrote no status"
    );
}

/// A Job whose action fails: its one pod exits 1 (the Job's `podFailurePolicy` fails the Job at
/// once: another pod would meet the same failed Workflow) and the runner's one-line reason,
/// naming Argo's message, is the pod's `state.terminated.message` (what `kubectl describe pod`
/// shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_action_is_the_pods_termination_message() {
    let Some(env) = TestEnv::local_cluster("fail").await else {
        return;
    };
    let job_name = env.apply_argo_job(argo_example_text("exit-handlers")).await;
    let (_, pods) = env.job_ended(&job_name, "Failed").await;
    let wf = workflows(&env.client, &env.ns)
        .get("hello-world")
        .await
        .unwrap();
    let argo_message = wf.data["status"]["message"].as_str().unwrap_or_default();
    assert!(!argo_message.is_empty(), "{:?}", wf.data["status"]);
    let status = env.expect_status("hello-world").await;
    assert_eq!(status.phase, Phase::Failed, "{status:?}");
    assert_eq!(
        pods.len(),
        1,
        "exit 1 fails the Job at once (podFailurePolicy)"
    );
    for pod in &pods {
        let t = terminated(pod).expect("the runner's container terminated");
        assert_eq!(t.exit_code, 1, "{t:?}");
        let message = t.message.as_deref().unwrap_or_default().trim_end();
        assert!(!message.contains('\n'), "one line: {message:?}");
        assert!(
            message.contains(argo_message),
            "{message:?} names {argo_message:?}"
        );
    }
}

/// A step whose pod the real kubelet rejects before it starts (`podSpecPatch` puts it on the
/// node with a `nodeSelector` the node lacks: `NodeAffinity`). Argo 4, whose controller the
/// cluster configures with `failedPodRestart` (at most 2), replaces the pod twice, then fails
/// the step, and the runner's message says how many times the pod was restarted. Argo 3.7 has
/// no restarts: the step fails at once and nothing about restarts is said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_rejected_before_starting_is_restarted_by_argo_4() {
    let Some(env) = TestEnv::local_cluster("restart").await else {
        return;
    };
    env.apply_workflow_service_account().await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(env.client.clone());
    let node = nodes
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|n| {
            n.metadata
                .labels
                .as_ref()
                .is_none_or(|l| l.get("type").map(String::as_str) != Some("kwok"))
        })
        .and_then(|n| n.metadata.name)
        .expect("the cluster's node");
    let workflow = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: rejected-}}\n\
         spec:\n  entrypoint: main\n  templates:\n  - name: main\n    podSpecPatch: \
         '{{\"nodeName\": \"{node}\", \"nodeSelector\": {{\"kar.test/absent\": \"true\"}}}}'\n    \
         container: {{image: busybox, command: [\"true\"]}}\n"
    );
    let manifest = env.file("rejected.yaml", &workflow);
    let out = argo_runner_for_real_pods(&env, "rejected", &manifest)
        .await
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.expect_status("rejected").await;
    assert_eq!(status.phase, Phase::Failed, "{status:?}");
    let argo4 = !std::env::var("KAR_ARGO_VERSION")
        .unwrap_or_default()
        .starts_with("v3.");
    if argo4 {
        assert!(
            status.message.contains("pod restarted 2 times by Argo"),
            "{status:?}"
        );
        let failed = &status.runner_status["workflow"]["failedNodes"][0];
        assert_eq!(failed["podRestarts"], json!(2), "{failed}");
    } else {
        assert!(!status.message.contains("restarted"), "{status:?}");
    }
}

/// argo-runner on Argo's own examples under Argo's real controller and executor: four succeed
/// and their steps' output is in their pods' logs; exit-handlers (its step exits 1) fails with
/// Argo's message after its exit handler ran; a Workflow that runs for minutes ends the run at
/// `RUNNER_TIMEOUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_examples_under_the_real_controller() {
    let Some(env) = TestEnv::local_cluster("examples").await else {
        return;
    };
    env.apply_workflow_service_account().await;
    // Example, and what its steps' logs must hold.
    let succeed: [(&str, &[&str]); 4] = [
        ("hello-world", &["hello world"]),
        ("steps", &["hello1", "hello2a", "hello2b"]),
        ("dag-diamond", &["A", "B", "C", "D"]),
        ("output-parameter", &["hello world"]),
    ];
    let mut runs = Vec::new();
    for (example, _) in succeed {
        let manifest = env.file(&format!("{example}.yaml"), &argo_example_text(example));
        let cmd = argo_runner_for_real_pods(&env, example, &manifest).await;
        runs.push(env.spawn_run(cmd));
    }
    let manifest = env.file("exit-handlers.yaml", &argo_example_text("exit-handlers"));
    let failing = argo_runner_for_real_pods(&env, "exit-handlers", &manifest).await;
    let failing = env.spawn_run(failing);
    let manifest = env.file("forever.yaml", &argo_example_text("forever"));
    let slow = argo_runner_for_real_pods(&env, "forever", &manifest)
        .await
        .var("RUNNER_TIMEOUT", Some("8s"));
    let slow = env.spawn_run(slow);

    for ((example, expected), run) in succeed.into_iter().zip(runs) {
        let out = run.await.unwrap();
        assert_eq!(out.code, 0, "{example}: {}", out.stderr);
        let status = env.expect_status(example).await;
        assert_eq!(status.phase, Phase::Succeeded, "{example}: {status:?}");
        let logs = workflow_logs(&env.client, &env.ns, example).await.unwrap();
        for line in expected {
            assert!(
                logs.values().any(|l| l.lines().any(|l| l.trim() == *line)),
                "{example}: no step printed {line:?}: {logs:?}"
            );
        }
    }

    let out = failing.await.unwrap();
    assert_eq!(out.code, 1, "exit-handlers: {}", out.stderr);
    let wf = workflows(&env.client, &env.ns)
        .get("exit-handlers")
        .await
        .unwrap();
    assert_eq!(wf.data["status"]["phase"], "Failed");
    let argo_message = wf.data["status"]["message"].as_str().unwrap();
    let errors = error_lines(&out.stderr);
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains(argo_message),
        "{errors:?} names {argo_message:?}"
    );
    let logs = workflow_logs(&env.client, &env.ns, "exit-handlers")
        .await
        .unwrap();
    for line in ["intentional failure", "boohoo!"] {
        assert!(
            logs.values().any(|l| l.contains(line)),
            "exit-handlers: no step printed {line:?}: {logs:?}"
        );
    }

    let out = slow.await.unwrap();
    assert_eq!(out.code, 1, "forever: {}", out.stderr);
    let status = env.expect_status("forever").await;
    assert_eq!(status.reason, Some(Reason::DeadlineExceeded), "{status:?}");
    // What the Workflow was waiting on when the time ran out, read from the API.
    let waiting = format!(
        "Workflow {}/forever was waiting on step \"forever\" (pod forever): ",
        env.ns
    );
    assert!(status.message.contains(&waiting), "{}", status.message);
    let wf = workflows(&env.client, &env.ns)
        .get("forever")
        .await
        .unwrap();
    assert_eq!(
        wf.data["status"]["phase"], "Running",
        "the runner leaves the Workflow running"
    );
    workflows(&env.client, &env.ns)
        .delete("forever", &DeleteParams::default())
        .await
        .unwrap();
}

/// A retry as Kubernetes makes it: the runner's pod is deleted while it waits; it gets
/// SIGTERM and reports `Cancelled`; the Job controller starts another pod (once the first has
/// stopped: `podReplacementPolicy: Failed`), which adopts the Workflow its predecessor created,
/// and the Job completes. The deleted pod exited 143, which counts against `backoffLimit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_runner_pod_is_cancelled_and_its_successor_adopts_the_workflow() {
    runner_pod_replaced("retry", Disruption::Delete).await;
}

/// The same with the pod evicted through the Eviction API, as a node drain does: the pod gets
/// the `DisruptionTarget` condition, which the Job's `podFailurePolicy` ignores, so the Job
/// completes with no failure counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_runner_pod_is_not_counted_as_a_failure() {
    runner_pod_replaced("evict", Disruption::Evict).await;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Disruption {
    Delete,
    Evict,
}

async fn runner_pod_replaced(prefix: &str, how: Disruption) {
    let Some(env) = TestEnv::local_cluster(prefix).await else {
        return;
    };
    let (watch, seen) = env.statuses_seen("hello-world");
    let job_name = env.apply_argo_job(argo_example_text("dag-diamond")).await;
    env.wait_for_workflow("hello-world", JOB_TIMEOUT).await;
    let first = wait_for_running_job_pod(&env.client, &env.ns, &job_name, JOB_TIMEOUT)
        .await
        .unwrap();
    let first_name = first.metadata.name.clone().unwrap();
    let pods_api = Api::<Pod>::namespaced(env.client.clone(), &env.ns);
    match how {
        Disruption::Delete => {
            pods_api
                .delete(&first_name, &DeleteParams::default())
                .await
                .unwrap();
        }
        Disruption::Evict => {
            pods_api
                .evict(&first_name, &kube::api::EvictParams::default())
                .await
                .unwrap();
        }
    }
    let (job, pods) = env.job_ended(&job_name, "Complete").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    let reasons = phases_and_reasons(&seen);
    let cancelled = seen
        .iter()
        .position(|s| s.reason == Some(Reason::Cancelled))
        .unwrap_or_else(|| panic!("no Cancelled report: {reasons:?}"));
    assert!(
        seen[cancelled + 1..]
            .iter()
            .any(|s| s.runner_status["adopted"] == true),
        "a successor adopted the Workflow after the cancel: {reasons:?}"
    );
    let job_status = job.status.unwrap();
    assert_eq!(job_status.succeeded, Some(1), "{job_status:?}");
    let counted = if how == Disruption::Delete {
        Some(1)
    } else {
        None
    };
    assert_eq!(
        job_status.failed.filter(|n| *n > 0),
        counted,
        "{job_status:?}"
    );
    assert!(
        pods.iter()
            .all(|p| p.metadata.name.as_deref() != Some(first_name.as_str())),
        "the deleted pod is gone"
    );
    let status = env.expect_status("hello-world").await;
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert_eq!(status.runner_status["adopted"], true, "{status:?}");
    let wf = workflows(&env.client, &env.ns)
        .get("hello-world")
        .await
        .unwrap();
    assert_eq!(wf.data["status"]["phase"], "Succeeded");
}

/// `phase/reason` of each status, printed for the test's log.
fn phases_and_reasons(seen: &[ActionStatus]) -> Vec<String> {
    let reasons: Vec<String> = seen
        .iter()
        .map(|s| {
            format!(
                "{:?}/{}",
                s.phase,
                s.reason.map(|r| format!("{r:?}")).unwrap_or_default()
            )
        })
        .collect();
    println!("statuses reported, in order: {reasons:?}");
    reasons
}

/// A helm-runner Job's pod deleted while helm waits for the release's Deployment: the runner
/// forwards SIGTERM to helm, which records the release `failed` (never left `pending-install`),
/// and reports `Cancelled`; the Job's next pod (`podReplacementPolicy: Failed`) finds the
/// failed revision labelled as this Job's, installs again over it (`--replace`), and the Job
/// completes with the release `deployed`. `deploy/helm-runner` as shipped, but for the chart (a
/// Deployment that becomes Ready after 20 s), `wait: true`, and the Role rules that chart needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_runner_pod_deleted_mid_install_is_recovered_by_its_successor() {
    let Some(env) = TestEnv::local_cluster("helm-retry").await else {
        return;
    };
    let (watch, seen) = env.statuses_seen("hello-release");
    let edit = slow_helm_release(&env.cluster().busybox_image);
    let job = apply_deploy(&env.client, &env.ns, "helm-runner", edit)
        .await
        .unwrap();
    let job_name = job.metadata.name.unwrap();
    let mut polls = 0;
    while env.helm_record_statuses("hello-release").await
        != vec![(1, "pending-install".to_string())]
    {
        polls += 1;
        assert!(
            polls < 600,
            "helm never stored the release as pending-install"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = wait_for_running_job_pod(&env.client, &env.ns, &job_name, JOB_TIMEOUT)
        .await
        .unwrap();
    let first_name = first.metadata.name.unwrap();
    Api::<Pod>::namespaced(env.client.clone(), &env.ns)
        .delete(&first_name, &DeleteParams::default())
        .await
        .unwrap();
    let (job, _) = env.job_ended(&job_name, "Complete").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();

    let seen = seen.lock().unwrap().clone();
    let reasons = phases_and_reasons(&seen);
    let cancelled = seen
        .iter()
        .position(|s| s.reason == Some(Reason::Cancelled))
        .unwrap_or_else(|| panic!("no Cancelled report: {reasons:?}"));
    assert!(
        seen[cancelled].message.contains("\"failed\""),
        "the cancelled attempt left the release failed, not pending: {}",
        seen[cancelled].message
    );
    let last = seen.last().unwrap();
    assert_eq!(last.phase, Phase::Succeeded, "{reasons:?}");
    assert_eq!(
        last.runner_status["release"]["status"], "deployed",
        "{last:?}"
    );
    let job_status = job.status.unwrap();
    assert_eq!(job_status.succeeded, Some(1), "{job_status:?}");
    assert_eq!(
        job_status.failed,
        Some(1),
        "the deleted pod exited 143: {job_status:?}"
    );
    let records = env.helm_record_statuses("hello-release").await;
    assert_eq!(
        records.last().map(|r| r.1.as_str()),
        Some("deployed"),
        "{records:?}"
    );
    assert!(
        records.iter().all(|r| !r.1.starts_with("pending")),
        "{records:?}"
    );
    let d = Api::<Deployment>::namespaced(env.client.clone(), &env.ns)
        .get("hello-release-slow")
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(1));
}

/// helm-runner with `wait: true` on Helm's own chart (`helm create`), its Deployment running
/// the busybox httpd image: the pod becomes Ready through the chart's readiness probe and the
/// run succeeds. The same chart with a readiness probe that never passes fails when
/// `RUNNER_TIMEOUT` runs out, with Helm's reason.
/// `test` in the manifest, under both Helm majors, on real pods: a chart with two test hooks
/// (busybox, one exits 0, the other prints two lines and exits 3). With both, the install
/// succeeds as a release but the action fails (exit 1), naming the failed test pod, its exit
/// code and its last log lines, and the status lists both tests; with `ignoreFailures` the action
/// succeeds and says so; with a `filter` that keeps the passing test only, it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_test_runs_the_charts_tests_on_real_pods() {
    let Some(env) = TestEnv::local_cluster("helm-test").await else {
        return;
    };
    let chart = env.dir.path().join("tested");
    std::fs::create_dir_all(chart.join("templates/tests")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: tested\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"{{ .Release.Name }}-data\"}\ndata: {a: b}\n",
    )
    .unwrap();
    // Helm runs the test hooks in weight order and stops at the first failure: "ok" first.
    let test_pod = |name: &str, weight: i32, script: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \"{{{{ .Release.Name }}}}-{name}\"\n  \
             annotations: {{helm.sh/hook: test, helm.sh/hook-weight: \"{weight}\"}}\nspec:\n  \
             restartPolicy: Never\n  containers:\n  \
             - name: check\n    image: {}\n    imagePullPolicy: IfNotPresent\n    \
             command: [sh, -c, {script:?}]\n",
            env.cluster().busybox_image
        )
    };
    std::fs::write(
        chart.join("templates/tests/ok.yaml"),
        test_pod("ok", -1, "echo all good"),
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/tests/bad.yaml"),
        test_pod(
            "bad",
            1,
            "echo checking the service; echo no answer from web:80; exit 3",
        ),
    )
    .unwrap();
    for h in [HelmBin::V4, HelmBin::V3] {
        let major = if h == HelmBin::V4 { 4 } else { 3 };
        let run = |name: String, test: String| {
            let manifest = env.file(
                &format!("{name}.yaml"),
                &format!(
                    "name: {name}\nchart: {{name: {}}}\nwait: false\ntest: {test}\n",
                    chart.display()
                ),
            );
            let (client, ns) = (env.client.clone(), env.ns.clone());
            let cmd = env.runner("helm-runner", &name, &manifest);
            let out_dir = env.path(&format!("out-{name}"));
            async move {
                std::fs::create_dir_all(&out_dir).unwrap();
                create_status_configmap(&client, &ns, &name).await.unwrap();
                let out = cmd
                    .var("RUNNER_COMMAND", Some("install"))
                    .var("RUNNER_TIMEOUT", Some("180s"))
                    .var("RUNNER_HELM_BINARY_PATH", Some(h.path().to_str().unwrap()))
                    .var(
                        "RUNNER_REPOSITORY_CACHE_PATH",
                        Some(out_dir.join("cache").to_str().unwrap()),
                    )
                    .var(
                        "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                        Some(out_dir.join("release.yaml").to_str().unwrap()),
                    )
                    .var(
                        "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                        Some(out_dir.join("additional.yaml").to_str().unwrap()),
                    )
                    .run()
                    .await
                    .unwrap();
                (name, out)
            }
        };
        let (all, ignored, only_ok) = tokio::join!(
            run(format!("all{major}"), "{enable: true, timeout: 90s}".into()),
            run(
                format!("ignored{major}"),
                "{enable: true, ignoreFailures: true}".into()
            ),
            run(
                format!("only-ok{major}"),
                format!("{{enable: true, filter: [name=only-ok{major}-ok]}}")
            ),
        );

        let (name, out) = all;
        assert_eq!(out.code, 1, "Helm {major}: {}", out.stderr);
        let status = env.expect_status(&name).await;
        assert_eq!(status.phase, Phase::Failed, "Helm {major}: {status:?}");
        assert!(
            status.message.contains(&format!(
                "its tests failed: helm test: 1 of 2 tests failed: pod {name}-bad (exit code 3): \
                 checking the service | no answer from web:80"
            )),
            "Helm {major}: {}",
            status.message
        );
        let pods = &status.runner_status["tests"]["pods"];
        let phases: std::collections::BTreeMap<String, String> = pods
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["phase"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            phases,
            [
                (format!("{name}-bad"), "Failed".to_string()),
                (format!("{name}-ok"), "Succeeded".to_string())
            ]
            .into_iter()
            .collect(),
            "Helm {major}: {pods}"
        );
        assert_eq!(
            status.runner_status["release"]["status"], "deployed",
            "Helm {major}: the release stays deployed"
        );

        let (name, out) = ignored;
        assert_eq!(out.code, 0, "Helm {major}: {}", out.stderr);
        let status = env.expect_status(&name).await;
        assert!(
            status.message.contains("helm test: 1 of 2 tests failed"),
            "Helm {major}: {}",
            status.message
        );
        assert_eq!(status.runner_status["tests"]["passed"], false);

        let (name, out) = only_ok;
        assert_eq!(out.code, 0, "Helm {major}: {}", out.stderr);
        let status = env.expect_status(&name).await;
        assert!(
            status.message.contains("helm test: 1 test passed"),
            "Helm {major}: {}",
            status.message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_wait_on_real_pods() {
    let Some(env) = TestEnv::local_cluster("helm-wait").await else {
        return;
    };
    helm_cmd(&["create", "webapp"], env.dir.path()).unwrap();
    let chart = env.dir.path().join("webapp");
    let (repository, tag) = env.cluster().httpd_image.rsplit_once(':').unwrap();
    let run = |name: &'static str, probe_path: &'static str, timeout: &'static str| {
        let manifest = env.file(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\nchart: {{name: {}}}\nwait: true\nvalues:\n  image: {{repository: {repository}, tag: \"{tag}\"}}\n  service: {{port: 8080}}\n  readinessProbe: {{httpGet: {{path: {probe_path}, port: http}}}}\n",
                chart.display()
            ),
        );
        let (client, ns) = (env.client.clone(), env.ns.clone());
        let cache = env.path("cache");
        let cmd = env.runner("helm-runner", name, &manifest);
        async move {
            create_status_configmap(&client, &ns, name).await.unwrap();
            cmd.var("RUNNER_COMMAND", Some("install"))
                .var("RUNNER_TIMEOUT", Some(timeout))
                .var(
                    "RUNNER_HELM_BINARY_PATH",
                    Some(Tools::locate().unwrap().helm.to_str().unwrap()),
                )
                .var(
                    "RUNNER_REPOSITORY_CACHE_PATH",
                    Some(cache.to_str().unwrap()),
                )
                .var(
                    "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                    Some(&format!("/tmp/kar-{ns}-{name}-release.yaml")),
                )
                .var(
                    "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                    Some(&format!("/tmp/kar-{ns}-{name}-additional.yaml")),
                )
                .run()
                .await
                .unwrap()
        }
    };
    let (ready, stuck) = tokio::join!(run("ready", "/", "120s"), run("stuck", "/not-there", "20s"));

    assert_eq!(ready.code, 0, "{}", ready.stderr);
    let d = Api::<Deployment>::namespaced(env.client.clone(), &env.ns)
        .get("ready-webapp")
        .await
        .unwrap();
    assert_eq!(
        d.status.unwrap().ready_replicas,
        Some(1),
        "ready when the run ended"
    );

    assert_eq!(stuck.code, 1, "{}", stuck.stderr);
    let status = env.expect_status("stuck").await;
    assert_eq!(status.phase, Phase::Failed, "{status:?}");
    let message = status.message.as_str();
    // RUNNER_TIMEOUT usually runs out before helm's own --timeout (the same length, started a
    // little later): the runner then stops helm with SIGTERM and Helm records the release as
    // failed; otherwise helm fails with its own reason.
    if status.reason == Some(Reason::DeadlineExceeded) {
        assert!(
            message.contains("helm stopped on SIGTERM") && message.contains("\"failed\""),
            "{message}"
        );
    } else {
        assert!(message.contains("context deadline exceeded"), "{message}");
    }
    let pods = Api::<Pod>::namespaced(env.client.clone(), &env.ns)
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/instance=stuck"))
        .await
        .unwrap();
    let running = pods
        .items
        .iter()
        .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
    assert!(running, "the stuck pod ran but was never Ready");
    for f in ["ready", "stuck"] {
        for kind in ["release", "additional"] {
            let _ = std::fs::remove_file(format!("/tmp/kar-{}-{f}-{kind}.yaml", env.ns));
        }
    }
}

/// When `--wait` gives up, the failure names what was not ready and why, read from the real
/// pods: a chart of three Deployments whose image cannot be pulled (nothing can be pulled
/// here), whose container exits 3 at once, and whose CPU request no node has. The reasons
/// Kubernetes gives (`ErrImagePull`/`ImagePullBackOff`, `CrashLoopBackOff` with the last exit
/// code 3, `Unschedulable`) are in the ERROR line, in the status (`message` and the structured
/// `notReady`) and in the termination message, which stays within 4 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_wait_failure_names_what_was_not_ready() {
    let Some(env) = TestEnv::local_cluster("helm-why").await else {
        return;
    };
    let chart = env.dir.path().join("broken");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    )
    .unwrap();
    let deployment = |name: &str, image: &str, extra: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n      - name: main\n        image: {image}\n        imagePullPolicy: IfNotPresent\n{extra}"
        )
    };
    let busybox = &env.cluster().busybox_image;
    let docs = [
        deployment("pull", "localhost/kar/never-built:1", ""),
        deployment(
            "crash",
            busybox,
            "        command: [sh, -c, \"echo starting; exit 3\"]\n",
        ),
        deployment(
            "huge",
            busybox,
            "        command: [sleep, \"3600\"]\n        resources: {requests: {cpu: \"512\"}}\n",
        ),
    ];
    std::fs::write(chart.join("templates/all.yaml"), docs.join("---\n")).unwrap();
    let manifest = env.file(
        "broken.yaml",
        &format!(
            "name: broken\nchart: {{name: {}}}\nwait: true\n",
            chart.display()
        ),
    );
    let termination = env.file("broken.termination-log", "");
    create_status_configmap(&env.client, &env.ns, "broken")
        .await
        .unwrap();
    let out = env
        .runner("helm-runner", "broken", &manifest)
        .var("RUNNER_COMMAND", Some("install"))
        .var("RUNNER_TIMEOUT", Some("45s"))
        .var(
            "RUNNER_HELM_BINARY_PATH",
            Some(Tools::locate().unwrap().helm.to_str().unwrap()),
        )
        .var(
            "RUNNER_REPOSITORY_CACHE_PATH",
            Some(env.dir.path().join("cache").to_str().unwrap()),
        )
        .var(
            "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
            Some(env.dir.path().join("release.yaml").to_str().unwrap()),
        )
        .var(
            "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
            Some(env.dir.path().join("additional.yaml").to_str().unwrap()),
        )
        .var(
            "RUNNER_TERMINATION_MESSAGE_PATH",
            Some(termination.to_str().unwrap()),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);

    let status = env.expect_status("broken").await;
    assert_eq!(status.phase, Phase::Failed, "{status:?}");
    let message = status.message.as_str();
    let ns = &env.ns;
    for said in [
        format!("Deployment {ns}/pull (0/1 available"),
        "ImagePull".to_string(),
        format!("Deployment {ns}/crash (0/1 available"),
        "exit code 3".to_string(),
        format!("Deployment {ns}/huge (0/1 available"),
        "Unschedulable".to_string(),
    ] {
        assert!(message.contains(&said), "{said:?} not in {message}");
    }
    let not_ready = status.runner_status["notReady"].as_array().unwrap();
    let reason_of = |name: &str| {
        let workload = not_ready
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {not_ready:?}"));
        assert_eq!(workload["kind"], "Deployment");
        workload["pods"][0].clone()
    };
    let pull = reason_of("pull");
    assert!(
        ["ErrImagePull", "ImagePullBackOff"].contains(&pull["reason"].as_str().unwrap()),
        "{pull}"
    );
    let crash = reason_of("crash");
    // Between a crash and the restart the container is `terminated` (reason `Error`); during
    // the back-off it is `waiting` (`CrashLoopBackOff`) with the last exit in `lastState`.
    assert!(
        ["CrashLoopBackOff", "Error"].contains(&crash["reason"].as_str().unwrap()),
        "{crash}"
    );
    assert_eq!(crash["container"], "main", "{crash}");
    assert_eq!(crash["exitCode"], 3, "{crash}");
    assert_eq!(reason_of("huge")["reason"], "Unschedulable");

    let errors = error_lines(&out.stderr);
    assert!(
        errors
            .iter()
            .any(|l| l.contains("exit code 3") && l.contains("Unschedulable")),
        "{}",
        out.stderr
    );
    let terminated = std::fs::read_to_string(&termination).unwrap();
    assert!(terminated.len() <= 4096, "{}", terminated.len());
    assert!(
        terminated.contains("exit code 3") && terminated.contains("Unschedulable"),
        "{terminated}"
    );
}

/// Random-looking printable text of `len` bytes (gzip cannot shrink it much, so what Helm
/// stores is as large as what it was given).
fn incompressible(len: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// The memory limits in `deploy/` hold under the real cgroup for the largest inputs the Jobs
/// can usefully be given: argo-runner with a Workflow of 600 KiB of templates (about 150, as
/// Argo 4's CRD allows at most 200) that do not compress (Argo's controller errors a Workflow over 1 MiB, "workflow is longer than maximum
/// allowed size", counting what it adds; a 900 KiB one was refused so), helm-runner with
/// 600 KiB of such values (Helm stores a release in one Secret, itself at most 1 MiB). A
/// container killed for its limit fails the test as `OOMKilled`, naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limits_hold_for_the_largest_inputs() {
    let Some(env) = TestEnv::local_cluster("memory").await else {
        return;
    };
    let mut templates = vec![json!({"name": "main", "container": {
        "image": env.cluster().busybox_image, "imagePullPolicy": "IfNotPresent",
        "command": ["echo"], "args": ["big"]}})];
    // Argo 4's full CRD allows at most 200 templates: about 150 of 4 KB each.
    let filler = incompressible(4000);
    let mut size = 0;
    let mut i = 0;
    while size < 600 * 1024 {
        let t = json!({"name": format!("unused-{i}"), "container": {
            "image": env.cluster().busybox_image, "command": ["echo"], "args": [filler]}});
        size += t.to_string().len();
        templates.push(t);
        i += 1;
    }
    let workflow = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "spec": {"entrypoint": "main", "templates": templates}});
    apply_deploy(
        &env.client,
        &env.ns,
        "argo-runner",
        with_argo_input(workflow.to_string()),
    )
    .await
    .unwrap();
    let values = incompressible(600 * 1024);
    apply_deploy(&env.client, &env.ns, "helm-runner", move |obj| {
        if kind_of(obj) == "ConfigMap" && name_of(obj) == "hello-release-input" {
            let m = obj["data"]["manifest.yaml"].as_str().unwrap().to_string();
            obj["data"]["manifest.yaml"] = json!(format!("{m}  blob: {values}\n"));
        }
    })
    .await
    .unwrap();
    for runner in ["argo-runner", "helm-runner"] {
        env.job_ended(name_of(&job_of(runner)), "Complete").await;
    }
    println!(
        "argo-runner ran a {} KiB Workflow and helm-runner stored 600 KiB of values within \
         deploy/'s memory limits",
        workflow.to_string().len() / 1024
    );
}

/// The OOM check itself, on a real OOM kill: a Job whose container holds more than its 16Mi
/// limit is killed by the kernel, and [`assert_none_oom_killed`] reports it as `OOMKilled`,
/// naming the pod and the limit (so a runner killed for its limit cannot pass as a mere
/// failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_killed_container_is_reported_as_such() {
    let Some(env) = TestEnv::local_cluster("oom").await else {
        return;
    };
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hog"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "hog", "image": env.cluster().busybox_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"],
                "resources": {"limits": {"memory": "16Mi"}}}]}}}});
    apply(&env.client, &env.ns, &job, false).await.unwrap();
    let done = wait_for_job(&env.client, &env.ns, "hog", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(job_outcome(&done), Some("Failed"));
    let pods = job_pods(&env.client, &env.ns, "hog").await.unwrap();
    let err = assert_none_oom_killed(&pods).unwrap_err().to_string();
    println!("{err}");
    assert!(
        err.starts_with("OOMKilled: pod hog-") && err.ends_with("(memory limit 16Mi)"),
        "{err}"
    );
}

/// The Job's condition `Failed` and its reason (`PodFailurePolicy`, `BackoffLimitExceeded`, ...).
fn failed_reason(job: &k8s_openapi::api::batch::v1::Job) -> String {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"))
        .and_then(|c| c.reason.clone())
        .unwrap_or_default()
}

/// Input no retry can fix fails the Job after one pod: exit 2, which the Job's
/// `podFailurePolicy` turns into `Failed` with reason `PodFailurePolicy`, and nothing was
/// created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_job_fails_after_one_pod() {
    let Some(env) = TestEnv::local_cluster("badinput").await else {
        return;
    };
    let job_name = env
        .apply_argo_job("spec: [not, a, workflow spec\n".into())
        .await;
    let (job, pods) = env.job_ended(&job_name, "Failed").await;
    assert_eq!(failed_reason(&job), "PodFailurePolicy");
    assert_eq!(pods.len(), 1);
    let t = terminated(&pods[0]).unwrap();
    assert_eq!(t.exit_code, 2, "{t:?}");
    assert!(
        t.message
            .as_deref()
            .unwrap_or_default()
            .contains("input manifest"),
        "{t:?}"
    );
    let made = workflows(&env.client, &env.ns)
        .get_opt("hello-world")
        .await
        .unwrap();
    assert!(made.is_none(), "nothing is written on bad input");
}

/// A failure retrying may help is retried: the runner's pod cannot reach the API server (its
/// in-cluster address points at a closed port), exits 4, and the Job controller starts
/// another pod, up to `backoffLimit` (1 here, to keep the test short), then fails the Job with
/// `BackoffLimitExceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried() {
    let Some(env) = TestEnv::local_cluster("transient").await else {
        return;
    };
    let job = apply_deploy(&env.client, &env.ns, "argo-runner", |obj| {
        if kind_of(obj) == "Job" {
            obj["spec"]["backoffLimit"] = json!(1);
            set_env(obj, "KUBERNETES_SERVICE_HOST", "127.0.0.1");
            set_env(obj, "KUBERNETES_SERVICE_PORT", "1");
        }
    })
    .await
    .unwrap();
    let job_name = job.metadata.name.clone().unwrap();
    let (job, pods) = env.job_ended(&job_name, "Failed").await;
    assert_eq!(failed_reason(&job), "BackoffLimitExceeded");
    assert_eq!(pods.len(), 2, "retried once");
    for pod in &pods {
        let t = terminated(pod).unwrap();
        assert_eq!(t.exit_code, 4, "{t:?}");
    }
}

/// The worst manifest a user can hand the runner, a "billion laughs" of YAML aliases, under
/// argo-runner's real 64Mi limit: the parser's budgets refuse it (exit 2, one pod, not
/// OOM-killed). Without the budgets, 746 bytes of it took about 100 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_of_aliases_is_refused_under_the_memory_limit() {
    let Some(env) = TestEnv::local_cluster("aliases").await else {
        return;
    };
    let bomb = billion_laughs();
    let job_name = env.apply_argo_job(bomb).await;
    let (_, pods) = env.job_ended(&job_name, "Failed").await;
    assert_eq!(pods.len(), 1);
    let t = terminated(&pods[0]).unwrap();
    assert_eq!(t.exit_code, 2, "{t:?}");
    println!("refused: {}", t.message.as_deref().unwrap_or_default());
}

/// Waits (at most 120 s) until Workflow `name` has finished, and returns its `status`.
async fn workflow_finished(env: &TestEnv, name: &str) -> Value {
    let api = workflows(&env.client, &env.ns);
    let done =
        kube::runtime::wait::await_condition(api, name, |o: Option<&kube::api::DynamicObject>| {
            o.is_some_and(|o| !o.data["status"]["finishedAt"].is_null())
        });
    let wf = tokio::time::timeout(Duration::from_secs(120), done)
        .await
        .unwrap_or_else(|_| panic!("Workflow {name} did not finish"))
        .unwrap()
        .unwrap();
    wf.data["status"].clone()
}

/// `RUNNER_ARGO_ON_CANCEL` under Argo's real controller, on Argo's `forever` example: a runner
/// stopped by SIGTERM with `terminate`, and one that reaches `RUNNER_TIMEOUT` with `stop`, set
/// the Workflow's `spec.shutdown` before they exit, and Argo ends both Workflows ("Stopped with
/// strategy ..."), so a cancelled Job leaves no Workflow running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_runner_shuts_its_workflow_down() {
    let Some(env) = TestEnv::local_cluster("shutdown").await else {
        return;
    };
    env.apply_workflow_service_account().await;
    let manifest = env.file("forever.yaml", &argo_example_text("forever"));
    let terminated = argo_runner_for_real_pods(&env, "term", &manifest)
        .await
        .var("RUNNER_ARGO_ON_CANCEL", Some("terminate"))
        .spawn()
        .unwrap();
    let stopped = argo_runner_for_real_pods(&env, "stop", &manifest)
        .await
        .var("RUNNER_ARGO_ON_CANCEL", Some("stop"))
        .var("RUNNER_TIMEOUT", Some("15s"));
    let stopped = env.spawn_run(stopped);
    // SIGTERM once the Workflow runs.
    let running = kube::runtime::wait::await_condition(
        workflows(&env.client, &env.ns),
        "term",
        |o: Option<&kube::api::DynamicObject>| {
            o.is_some_and(|o| o.data["status"]["phase"] == "Running")
        },
    );
    tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .unwrap()
        .unwrap();
    let pid = terminated.id().unwrap() as i32;
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let out = collect(terminated).await.unwrap();
    assert_eq!(out.code, 143, "{}", out.stderr);
    assert!(
        out.stderr.contains("spec.shutdown: Terminate"),
        "{}",
        out.stderr
    );
    let out = stopped.await.unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("spec.shutdown: Stop"), "{}", out.stderr);
    for (name, strategy) in [("term", "Terminate"), ("stop", "Stop")] {
        let status = workflow_finished(&env, name).await;
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("Stopped with strategy '{strategy}'")),
            "{name}: {status}"
        );
    }
}

/// Argo's example `name` as JSON, to be edited.
fn argo_example_json(name: &str) -> Value {
    serde_saphyr::from_str(&argo_example_text(name)).unwrap()
}

/// A pod of namespace `ns` exists under `name` (the failed node's pod the runner named).
async fn pod_exists(env: &TestEnv, name: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    pods.get_opt(name).await.unwrap().is_some()
}

/// Why a Workflow failed, under Argo's real controller: Argo's `exit-handlers` (its step exits
/// 1, its exit handler runs) and Argo's `retry-container` made to fail for good (busybox,
/// `exit 3`, `limit: 2`: Argo's example picks its exit code at random with Python, which is not
/// here). The ERROR line, the status (structured `failedNodes`, `exitHandler`) and the
/// termination message name the failed node, its template, its pod (which exists under that
/// name: the runner computes it as Argo does), its exit code, and of the retried step only the
/// last attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_a_workflow_failed_under_the_real_controller() {
    let Some(env) = TestEnv::local_cluster("why").await else {
        return;
    };
    env.apply_workflow_service_account().await;
    let mut retry = argo_example_json("retry-container");
    let t = &mut retry["spec"]["templates"][0];
    t["retryStrategy"]["limit"] = json!("2");
    t["container"] =
        json!({"image": "busybox:1.36", "command": ["sh", "-c"], "args": ["echo trying; exit 3"]});
    let cases = [
        ("exit-handlers", argo_example_text("exit-handlers")),
        ("retry-container", serde_json::to_string(&retry).unwrap()),
    ];
    let mut runs = Vec::new();
    for (name, manifest) in &cases {
        let manifest = env.file(&format!("{name}.yaml"), manifest);
        let term = env.file(&format!("{name}.termination-log"), "");
        let cmd = argo_runner_for_real_pods(&env, name, &manifest).await.var(
            "RUNNER_TERMINATION_MESSAGE_PATH",
            Some(term.to_str().unwrap()),
        );
        runs.push((*name, term, env.spawn_run(cmd)));
    }
    for (name, term, run) in runs {
        let out = run.await.unwrap();
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        let status = env.expect_status(name).await;
        let summary = &status.runner_status["workflow"];
        assert_eq!(summary["phase"], "Failed", "{name}: {summary}");
        let failed = summary["failedNodes"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{name}: {summary}");
        let node = &failed[0];
        let pod = node["pod"].as_str().unwrap();
        assert!(
            pod_exists(&env, pod).await,
            "{name}: no pod {pod}: {summary}"
        );
        let message = &status.message;
        assert!(
            message.starts_with(&format!("Workflow {}/{name} Failed: ", env.ns)),
            "{message}"
        );
        assert!(message.contains(&format!("pod {pod}")), "{message}");
        let errors = error_lines(&out.stderr);
        assert_eq!(errors.len(), 1, "{}", out.stderr);
        let error: Value = serde_json::from_str(&errors[0]).unwrap();
        assert_eq!(error["message"], message.as_str(), "{errors:?}");
        assert_eq!(std::fs::read_to_string(&term).unwrap().trim(), message);
        match name {
            "exit-handlers" => {
                assert_eq!(node["template"], "intentional-fail", "{node}");
                assert_eq!(node["exitCode"], "1", "{node}");
                assert_eq!(summary["exitHandler"]["phase"], "Succeeded", "{summary}");
                assert!(message.contains("exit code 1"), "{message}");
                assert!(message.ends_with("exit handler Succeeded"), "{message}");
            }
            _ => {
                assert_eq!(node["template"], "retry-container", "{node}");
                assert_eq!(node["exitCode"], "3", "{node}");
                assert_eq!(node["attempt"], "3/3", "{node}");
                assert!(message.contains("attempt 3/3"), "{message}");
            }
        }
    }
}

/// Live progress, outputs and logs under Argo's real controller, on Argo's `global-outputs`
/// without its artifact (so that it needs no artifact repository; `argo_artifacts_*` runs it
/// whole): while the runner waits, the
/// status ConfigMap follows the Workflow (`runnerStatus.workflow.phase`, `progress` as
/// `done/total`, `runningNodes`); at the end, the global output parameter is in the status and
/// in the output file; with `RUNNER_ARGO_LOGS=true` the steps' output is in the runner's log,
/// one JSON line per line with the node's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_outputs_and_logs_under_the_real_controller() {
    let Some(env) = TestEnv::local_cluster("progress").await else {
        return;
    };
    env.apply_workflow_service_account().await;
    let mut wf = argo_example_json("global-outputs");
    let templates = wf["spec"]["templates"].as_array_mut().unwrap();
    templates.retain(|t| t["name"] != "consume-global-art");
    for t in templates.iter_mut() {
        if let Some(outputs) = t.get_mut("outputs").and_then(Value::as_object_mut) {
            outputs.remove("artifacts");
        }
        if let Some(steps) = t.get_mut("steps").and_then(Value::as_array_mut) {
            for group in steps {
                group
                    .as_array_mut()
                    .unwrap()
                    .retain(|s| s["name"] != "consume-global-art");
            }
        }
    }
    let name = "globals";
    // Every status written, in order, as a watch of the ConfigMap sees them.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<ActionStatus>::new()));
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let manifest = env.file("globals.yaml", &serde_json::to_string(&wf).unwrap());
    let output = env.dir.path().join("workflow.yaml");
    let cmd = argo_runner_for_real_pods(&env, name, &manifest)
        .await
        .var("RUNNER_ARGO_LOGS", Some("true"))
        .var(
            "RUNNER_OUTPUT_ARGO_WORKFLOW_FILE_PATH",
            Some(output.to_str().unwrap()),
        );
    let watch = {
        let seen = seen.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let config = kube::runtime::watcher::Config::default().fields("metadata.name=globals");
            let mut events = kube::runtime::watcher(cms, config).boxed();
            while let Some(Ok(e)) = events.next().await {
                if let kube::runtime::watcher::Event::Apply(cm) = e
                    && let Some(s) = cm.data.and_then(|d| d.get("status").cloned())
                {
                    seen.lock().unwrap().push(serde_json::from_str(&s).unwrap());
                }
            }
        })
    };
    let out = env.spawn_run(cmd).await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.expect_status(name).await;
    watch.abort();

    let seen = seen.lock().unwrap().clone();
    let progress: Vec<&Value> = seen
        .iter()
        .filter(|s| s.phase == Phase::Running)
        .map(|s| &s.runner_status["workflow"])
        .filter(|p| !p.is_null())
        .collect();
    assert!(
        progress
            .iter()
            .any(|p| p["progress"].as_str().is_some_and(|s| s
                .split_once('/')
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok()))
                && p["runningNodes"].is_array()),
        "no progress among {seen:#?}"
    );

    let expected = json!([{"name": "my-global-param", "value": "hello world"}]);
    let summary = &status.runner_status["workflow"];
    assert_eq!(summary["phase"], "Succeeded", "{summary}");
    assert_eq!(summary["outputs"]["parameters"], expected, "{summary}");
    let file: Value = serde_saphyr::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(file["outputs"]["parameters"], expected, "{file}");
    assert_eq!(file["name"], name);
    assert_eq!(file["phase"], "Succeeded");

    // The consume-global-param step printed the parameter: one JSON line of the runner's log,
    // with the node's name.
    let logged: Vec<Value> = out
        .stderr
        .lines()
        .chain(out.stdout.lines())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "workflow")
        .collect();
    assert!(
        logged.iter().any(|l| l["message"] == "hello world"
            && l["node"]
                .as_str()
                .is_some_and(|n| n.contains("consume-global-param"))),
        "no step's log line in {logged:#?}\n{}",
        out.stderr
    );
}

/// Argo's default artifact repository on the local cluster (hack/cluster/artifacts.sh: an S3
/// server on the bridge), as `KAR_CLUSTER_ARTIFACTS_*` name it.
struct ArtifactRepository {
    /// Its directory: `credentials.env`, and `data/<bucket>/<key>` as stored.
    dir: std::path::PathBuf,
    bucket: String,
    /// The name of the Secret Argo reads in each Workflow's namespace.
    secret: String,
    access_key: String,
    secret_key: String,
}

impl ArtifactRepository {
    /// The cluster's, or `None` (the test `test` is recorded as skipped) when it runs without
    /// one.
    fn of_the_cluster(test: &str) -> Option<Self> {
        let (Some(dir), Ok(bucket), Ok(secret)) = (
            std::env::var_os("KAR_CLUSTER_ARTIFACTS_DIR"),
            std::env::var("KAR_CLUSTER_ARTIFACTS_BUCKET"),
            std::env::var("KAR_CLUSTER_ARTIFACTS_SECRET"),
        ) else {
            action_runner_tests::cluster::record_skip_because(
                &format!("cluster_e2e::{test}"),
                "the cluster has no artifact repository (KAR_CLUSTER_ARTIFACTS_DIR is not set)",
            );
            return None;
        };
        let dir = std::path::PathBuf::from(dir);
        let env = std::fs::read_to_string(dir.join("credentials.env")).unwrap();
        let value = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        Some(ArtifactRepository {
            access_key: value("ROOT_ACCESS_KEY_ID"),
            secret_key: value("ROOT_SECRET_ACCESS_KEY"),
            dir,
            bucket,
            secret,
        })
    }

    /// Where the POSIX backend keeps object `key`: the bucket is a directory, the key a path
    /// under it (a directory stored unarchived is a prefix, its files under it).
    fn stored(&self, key: &str) -> std::path::PathBuf {
        self.dir.join("data").join(&self.bucket).join(key)
    }
}

/// Artifacts for real: Argo's artifact examples (`artifact-passing`, a `.tgz` handed from one
/// step to the next; `artifact-passing-subpath`, a directory stored unarchived and read through
/// a `subPath`; `global-outputs`, a global output artifact), unedited, under Argo's real
/// controller and executor with the cluster's S3 server as Argo's default artifact repository.
/// The consuming steps print what the producing ones stored; the runner's output file and status
/// carry every output artifact as `{node, name, s3: {bucket, endpoint, key}}`, and the object is
/// in the S3 server's storage at that bucket and key; the repository's credentials are in
/// neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_artifacts_under_the_real_controller() {
    let Some(env) = TestEnv::local_cluster("artifacts").await else {
        return;
    };
    let Some(repo) = ArtifactRepository::of_the_cluster("argo_artifacts_under_the_real_controller")
    else {
        return;
    };
    env.apply_workflow_service_account().await;
    // What this test stores is newer than this (the Argo 3 phase runs it again on the same
    // repository, with the same Workflow names, so the same keys).
    let started = std::time::SystemTime::now() - Duration::from_secs(2);
    // Argo reads the default repository's Secret in the Workflow's namespace.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": {"name": repo.secret},
        "stringData": {"accessKey": repo.access_key, "secretKey": repo.secret_key},
    }))
    .unwrap();
    secrets
        .create(&Default::default(), &credentials)
        .await
        .unwrap();

    // Example, and the node and name of the artifact its pod saves; in each, a consuming step
    // prints what was saved: `hello world`.
    let examples = [
        ("artifact-passing", "generate-artifact", "hello-art"),
        ("artifact-passing-subpath", "generate-artifact", "hello-art"),
        ("global-outputs", "generate", "hello-art"),
    ];
    let printed = "hello world";
    let mut runs = Vec::new();
    for (example, _, _) in examples {
        let manifest = env.file(&format!("{example}.yaml"), &argo_example_text(example));
        let output = env.path(&format!("{example}.out.yaml"));
        let cmd = argo_runner_for_real_pods(&env, example, &manifest)
            .await
            .var(
                "RUNNER_OUTPUT_ARGO_WORKFLOW_FILE_PATH",
                Some(output.to_str().unwrap()),
            );
        runs.push((env.spawn_run(cmd), output));
    }
    for ((example, node, name), (run, output)) in examples.into_iter().zip(runs) {
        let out = run.await.unwrap();
        assert_eq!(out.code, 0, "{example}: {}", out.stderr);
        let status = env.expect_status(example).await;
        assert_eq!(status.phase, Phase::Succeeded, "{example}: {status:?}");
        let text = std::fs::read_to_string(&output).unwrap();
        let file: Value = serde_saphyr::from_str(&text).unwrap();
        let items = file["artifacts"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = items
            .iter()
            .find(|a| a["node"] == node && a["name"] == name)
            .unwrap_or_else(|| panic!("{example}: no artifact {node}/{name} in {text}"));
        let s3 = &found["s3"];
        assert_eq!(s3["bucket"], repo.bucket.as_str(), "{example}: {found}");
        assert_eq!(s3["endpoint"], "10.88.0.1:9000", "{example}: {found}");
        let stored = repo.stored(s3["key"].as_str().unwrap());
        assert!(
            newest_change(&stored).is_some_and(|t| t >= started),
            "{example}: {found} is not stored at {stored:?} by this run"
        );
        assert_eq!(
            status.runner_status["workflow"]["artifacts"], file["artifacts"],
            "{example}: the status and the output file differ"
        );
        let logs = workflow_logs(&env.client, &env.ns, example).await.unwrap();
        assert!(
            logs.values()
                .any(|l| l.lines().any(|l| l.trim() == printed)),
            "{example}: no step printed {printed:?}: {logs:?}"
        );
        for shown in [
            &text,
            &out.stderr,
            &out.stdout,
            &status.runner_status.to_string(),
        ] {
            assert!(
                !shown.contains(&repo.secret_key),
                "{example}: the secret key is shown"
            );
        }
    }
    // The global output artifact, located the same way.
    let file: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(env.path("global-outputs.out.yaml")).unwrap(),
    )
    .unwrap();
    let global = &file["outputs"]["artifacts"][0];
    assert_eq!(global["name"], "my-global-art", "{file}");
    assert_eq!(global["s3"]["bucket"], repo.bucket.as_str(), "{file}");
    let key = global["s3"]["key"].as_str().unwrap();
    assert!(
        newest_change(&repo.stored(key)).is_some_and(|t| t >= started),
        "{global}"
    );
}

/// The newest modification time of file `path`, or of the files under directory `path`; `None`
/// when nothing is there.
fn newest_change(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| newest_change(&e.ok()?.path()))
        .max()
}

/// Workflows from WorkflowTemplates, under Argo's real controller, with Argo's own examples:
/// `workflow-template-ref-with-entrypoint-arg-passing` (entrypoint and parameter overrides),
/// `workflow-template/steps` (steps through `templateRef`) and the ClusterWorkflowTemplate
/// `workflow-template-ref` run and print what they should. A reference to a template that does
/// not exist is exit 2 naming it, in a dry run and in a real run, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_templates_under_the_real_controller() {
    let Some(env) = TestEnv::local_cluster("templates").await else {
        return;
    };
    env.apply_workflow_service_account().await;
    let examples = &Tools::locate().unwrap().argo_dir.join("examples");
    let read = |p: &str| std::fs::read_to_string(examples.join(p)).unwrap();
    let docs = |text: String| -> Vec<Value> {
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap();
        docs.into_iter().filter(|d| !d.is_null()).collect()
    };
    for t in docs(read("workflow-template/templates.yaml")) {
        apply(&env.client, &env.ns, &t, false).await.unwrap();
    }
    // ClusterWorkflowTemplates are cluster-wide: named apart for this run, deleted at the end.
    let cwt: Api<kube::api::DynamicObject> = Api::all_with(
        env.client.clone(),
        &action_runner_argo::templates::cluster_workflow_template_resource(),
    );
    let cluster_name = format!("{}-submittable", env.ns);
    let mut submittable = docs(read("cluster-workflow-template/clustertemplates.yaml"))
        .into_iter()
        .find(|t| t["metadata"]["name"] == "cluster-workflow-template-submittable")
        .unwrap();
    submittable["metadata"]["name"] = json!(cluster_name);
    let params = kube::api::PatchParams::apply("kar-tests").force();
    cwt.patch(
        &cluster_name,
        &params,
        &kube::api::Patch::Apply(&submittable),
    )
    .await
    .unwrap();
    let mut cluster_ref: Value = serde_saphyr::from_str(&read(
        "cluster-workflow-template/workflow-template-ref.yaml",
    ))
    .unwrap();
    cluster_ref["spec"]["workflowTemplateRef"]["name"] = json!(cluster_name);

    let runs = [
        (
            "args",
            read("workflow-template/workflow-template-ref-with-entrypoint-arg-passing.yaml"),
            vec!["hello world"],
        ),
        (
            "steps",
            read("workflow-template/steps.yaml"),
            vec!["hello1", "inner-hello1", "inner-hello2a", "hello2b"],
        ),
        (
            "cluster",
            serde_json::to_string(&cluster_ref).unwrap(),
            vec![],
        ),
    ];
    let mut spawned = Vec::new();
    for (name, manifest, _) in &runs {
        let manifest = env.file(&format!("{name}.yaml"), manifest);
        let cmd = argo_runner_for_real_pods(&env, name, &manifest).await;
        spawned.push(env.spawn_run(cmd));
    }
    for ((name, _, expected), run) in runs.iter().zip(spawned) {
        let out = run.await.unwrap();
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let logs = workflow_logs(&env.client, &env.ns, name).await.unwrap();
        for line in expected {
            assert!(
                logs.values().any(|l| l.lines().any(|l| l.trim() == *line)),
                "{name}: no step printed {line:?}: {logs:?}"
            );
        }
    }
    cwt.delete(&cluster_name, &DeleteParams::default())
        .await
        .unwrap();

    // Missing templates: exit 2, one line naming the field and the template, nothing created.
    let mut missing_template = argo_example_json("workflow-template/steps");
    missing_template["spec"]["templates"][0]["steps"][1][1]["templateRef"]["template"] =
        json!("no-such-template");
    let missing = [
        (
            "gone",
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"workflowTemplateRef": {"name": "no-such-workflow-template"}}}),
            format!(
                "spec.workflowTemplateRef.name \"no-such-workflow-template\": WorkflowTemplate {}/no-such-workflow-template not found",
                env.ns
            ),
        ),
        (
            "gone-cluster",
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"workflowTemplateRef": {"name": "no-such-cluster-template", "clusterScope": true}}}),
            "ClusterWorkflowTemplate no-such-cluster-template not found".to_string(),
        ),
        (
            "gone-step",
            missing_template,
            format!(
                "spec.templates[0].steps[1][1].templateRef.template \"no-such-template\": no such template in WorkflowTemplate {}/workflow-template-print-message",
                env.ns
            ),
        ),
    ];
    for (name, manifest, reason) in missing {
        let manifest = env.file(&format!("{name}.yaml"), &manifest.to_string());
        for dry_run in ["true", "false"] {
            let name = &format!("{name}-{}", if dry_run == "true" { "dry" } else { "real" });
            let out = argo_runner_for_real_pods(&env, name, &manifest)
                .await
                .var("RUNNER_CONTEXT_DRY_RUN", Some(dry_run))
                .run()
                .await
                .unwrap();
            assert_eq!(out.code, 2, "{name} (dry run {dry_run}): {}", out.stderr);
            let errors = error_lines(&out.stderr);
            assert_eq!(errors.len(), 1, "{}", out.stderr);
            let error: Value = serde_json::from_str(&errors[0]).unwrap();
            let error = error["message"].as_str().unwrap();
            assert!(
                error.starts_with("input manifest: ") && error.contains(&reason),
                "{error:?} names {reason:?}"
            );
            assert!(
                workflows(&env.client, &env.ns)
                    .get_opt(name)
                    .await
                    .unwrap()
                    .is_none(),
                "{name}: a Workflow was created"
            );
        }
    }
}

/// `deploy/argo-runner` with its opt-in `components/logs` as a real Job: the Role lets the
/// runner follow the Workflow's pods' logs, and what the step printed is in the Job's pod's log
/// as one JSON line naming the node; the executor's own lines are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_component_lets_the_job_follow_the_workflows_logs() {
    let Some(env) = TestEnv::local_cluster("logs").await else {
        return;
    };
    for (file, obj) in component_objects("argo-runner", "logs") {
        apply(&env.client, &env.ns, &obj, false)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let job = apply_deploy(&env.client, &env.ns, "argo-runner", |obj| {
        if kind_of(obj) == "Job" {
            set_env(obj, "RUNNER_ARGO_LOGS", "true");
        }
    })
    .await
    .unwrap();
    let name = job.metadata.name.unwrap();
    let (_, pods) = env.job_ended(&name, "Complete").await;
    let pods_api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let log = pods_api
        .logs(
            pods[0].metadata.name.as_deref().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["target"] == "workflow"
                && l["message"] == "hello from argo-runner"
                && l["node"] == "hello-world"),
        "{log}"
    );
    assert!(!log.contains("sub-process exited"), "{log}");
}

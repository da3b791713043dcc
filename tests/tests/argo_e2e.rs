//! End-to-end tests of the real `argo-runner` binary against a real kube-apiserver and etcd,
//! with Argo's own Workflow CRD and example workflows. The tests play Argo's controller.

use std::path::Path;
use std::time::Duration;

use action_runner::status::{Phase, Reason};
use action_runner_tests::argo::argo_example;
use action_runner_tests::control_plane::{ADMIN_TOKEN, ControlPlane, kubeconfig_yaml};
use action_runner_tests::controllers::{Outcome, play_argo_controller, workflows};
use action_runner_tests::fixtures::billion_laughs;
use action_runner_tests::process::{RunnerCommand, RunnerOutput, collect, error_lines};
use action_runner_tests::test_env::{TestEnv, reported_status};
use action_runner_tests::tools::Tools;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

/// Reads one of Argo's examples as JSON.
fn example_json(name: &str) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(argo_example(name)).unwrap()).unwrap()
}

/// Asserts exit code 2, exactly one error line mentioning `needle`, and that nothing was written.
async fn assert_invalid(env: &TestEnv, name: &str, out: &RunnerOutput, needle: &str) {
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    let errors = error_lines(&out.stderr);
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains(needle),
        "{needle:?} not in {}",
        errors[0]
    );
    assert!(
        env.workflow_names().await.is_empty(),
        "a Workflow was created"
    );
    assert_eq!(env.status(name).await, None, "a status was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_succeeds_and_reports_status_at_start_and_end() {
    let env = TestEnv::bare("success").await;
    env.create_status_configmap("hello").await;
    let child = env
        .argo_runner("hello", &argo_example("hello-world"))
        .spawn()
        .unwrap();

    env.wait_for_workflow("hello", Duration::from_secs(60))
        .await;
    let at_start = env.await_phase("hello", Phase::Running).await;
    assert_eq!(at_start.runner, "argo");
    assert_eq!(at_start.context_name, "hello");
    assert!(!at_start.dry_run);
    assert_eq!(
        at_start.runner_status["argoWorkflowRef"],
        json!({
            "name": "hello", "namespace": env.ns,
            "uid": at_start.runner_status["argoWorkflowRef"]["uid"],
        })
    );
    assert!(at_start.finished_at.is_none());

    env.spawn_argo_controller("hello", Outcome::Succeeded)
        .await
        .unwrap()
        .unwrap();
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let at_end = env.status("hello").await.unwrap();
    assert_eq!(at_end.phase, Phase::Succeeded);
    assert_eq!(at_end.reason, Some(Reason::Completed));
    assert_eq!(at_end.started_at, at_start.started_at);
    assert!(at_end.finished_at.unwrap().ends_with('Z'));
    assert_eq!(
        at_end.runner_status["argoWorkflowRef"],
        at_start.runner_status["argoWorkflowRef"]
    );
    assert_eq!(at_end.runner_status["workflow"]["phase"], "Succeeded");
    assert_eq!(at_end.runner_status["workflow"]["name"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_object_lands_unchanged_with_labels_and_annotations() {
    // steps and dag-diamond as whole Workflow objects, as `argo submit` takes them.
    for (i, ex) in ["steps", "dag-diamond", "hello-world"]
        .into_iter()
        .enumerate()
    {
        let env = TestEnv::bare("lands").await;
        let name = format!("wf-{i}");
        env.create_status_configmap(&name).await;
        let child = env.argo_runner(&name, &argo_example(ex)).spawn().unwrap();
        let obj = env.wait_for_workflow(&name, Duration::from_secs(60)).await;
        let input = example_json(ex);
        assert_eq!(obj.data["spec"], input["spec"], "{ex}: spec differs");
        let labels = obj.metadata.labels.clone().unwrap_or_default();
        for (k, v) in input["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            assert_eq!(
                labels.get(&k).map(String::as_str),
                v.as_str(),
                "{ex}: label {k}"
            );
        }
        assert_eq!(labels["app.kubernetes.io/managed-by"], "argo-runner");
        assert_eq!(labels["action-runners.io/context-name"], name);
        let annotations = obj.metadata.annotations.clone().unwrap_or_default();
        for (k, v) in input["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            assert_eq!(
                annotations.get(&k).map(String::as_str),
                v.as_str(),
                "{ex}: annotation {k}"
            );
        }
        env.spawn_argo_controller(&name, Outcome::Succeeded)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(collect(child).await.unwrap().code, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_and_wrapped_specs_get_service_account_and_owner_reference() {
    let spec = example_json("dag-diamond")["spec"].clone();
    let env = TestEnv::bare("shapes").await;
    let bare = env.file("bare.yaml", &serde_json::to_string(&spec).unwrap());
    let wrapped = env.file(
        "wrapped.json",
        &serde_json::to_string(&json!({ "workflow": spec })).unwrap(),
    );
    for (name, manifest) in [("bare", &bare), ("wrapped", &wrapped)] {
        env.create_status_configmap(name).await;
        let cmd = env
            .argo_runner(name, manifest)
            .var(
                "RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME",
                Some("workflow-sa"),
            )
            .var("RUNNER_CONTEXT_PLATFORM_OWNER_NAME", Some("runner-job"))
            .var(
                "RUNNER_CONTEXT_PLATFORM_OWNER_UID",
                Some("0b3c6a38-1111-2222-3333-444455556666"),
            );
        let child = cmd.spawn().unwrap();
        let obj = env.wait_for_workflow(name, Duration::from_secs(60)).await;
        let mut expected = spec.clone();
        expected["serviceAccountName"] = json!("workflow-sa");
        assert_eq!(obj.data["spec"], expected);
        let owner = &obj.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Job", "runner-job")
        );
        assert_eq!(owner.api_version, "batch/v1");
        assert_eq!(owner.controller, Some(true));
        env.spawn_argo_controller(name, Outcome::Succeeded)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(collect(child).await.unwrap().code, 0);
    }
    // A serviceAccountName in the spec wins over the context's.
    let mut own = spec.clone();
    own["serviceAccountName"] = json!("own-sa");
    let manifest = env.file("own.yaml", &serde_json::to_string(&own).unwrap());
    env.create_status_configmap("own").await;
    let child = env
        .argo_runner("own", &manifest)
        .var(
            "RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME",
            Some("workflow-sa"),
        )
        .spawn()
        .unwrap();
    let obj = env.wait_for_workflow("own", Duration::from_secs(60)).await;
    assert_eq!(obj.data["spec"]["serviceAccountName"], "own-sa");
    env.spawn_argo_controller("own", Outcome::Succeeded)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collect(child).await.unwrap().code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_workflow_exits_1_with_its_message() {
    let env = TestEnv::bare("failure").await;
    env.create_status_configmap("fails").await;
    let term_log = env.file("termination-log", "");
    let child = env
        .argo_runner("fails", &argo_example("steps"))
        .var(
            "RUNNER_TERMINATION_MESSAGE_PATH",
            Some(term_log.to_str().unwrap()),
        )
        .spawn()
        .unwrap();
    let msg = "child 'steps-x' failed: exit code 1";
    env.spawn_argo_controller("fails", Outcome::Failed(msg.into()))
        .await
        .unwrap()
        .unwrap();
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("fails").await.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.reason, Some(Reason::Completed));
    let expected = format!("Workflow {}/fails Failed: {msg}", env.ns);
    assert_eq!(status.message, expected);
    assert_eq!(status.runner_status["workflow"]["message"], msg);
    assert_eq!(std::fs::read_to_string(term_log).unwrap().trim(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_exits_1_and_reports_deadline_exceeded() {
    let env = TestEnv::bare("timeout").await;
    env.create_status_configmap("slow").await;
    let out = env
        .argo_runner("slow", &argo_example("hello-world"))
        .var("RUNNER_TIMEOUT", Some("2s"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("slow").await.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.reason, Some(Reason::DeadlineExceeded));
    assert!(status.message.as_str().contains("RUNNER_TIMEOUT"));
    // The Workflow is left as it is.
    assert_eq!(env.workflow_names().await, vec!["slow".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_mid_wait_fails() {
    let env = TestEnv::bare("deleted").await;
    env.create_status_configmap("gone").await;
    let child = env
        .argo_runner("gone", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    env.wait_for_workflow("gone", Duration::from_secs(60)).await;
    env.await_phase("gone", Phase::Running).await;
    workflows(&env.client, &env.ns)
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("gone").await.unwrap();
    assert_eq!(status.reason, Some(Reason::Error));
    assert!(
        status.message.as_str().contains("was deleted"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_pod_adopts_its_own_workflow() {
    let env = TestEnv::bare("adopt").await;
    env.create_status_configmap("retry").await;
    // First attempt: killed (as a pod would be) once its Workflow exists.
    let mut first = env
        .argo_runner("retry", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    let created = env
        .wait_for_workflow("retry", Duration::from_secs(60))
        .await;
    first.kill().await.unwrap();
    // Second attempt attaches to it.
    let second = env
        .argo_runner("retry", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    let running = env.await_phase("retry", Phase::Running).await;
    env.spawn_argo_controller("retry", Outcome::Succeeded)
        .await
        .unwrap()
        .unwrap();
    let out = collect(second).await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("attaching"), "{}", out.stderr);
    let status = env.status("retry").await.unwrap();
    assert_eq!(status.phase, Phase::Succeeded);
    assert_eq!(status.runner_status["adopted"], true, "{running:?}");
    assert_eq!(
        status.runner_status["argoWorkflowRef"]["uid"],
        json!(created.metadata.uid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_workflow_with_the_same_name_is_refused() {
    let env = TestEnv::bare("refuse").await;
    env.create_status_configmap("taken").await;
    let mut foreign = example_json("hello-world");
    foreign["metadata"] = json!({ "name": "taken" });
    let obj: DynamicObject = serde_json::from_value(foreign).unwrap();
    workflows(&env.client, &env.ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    let out = env
        .argo_runner("taken", &argo_example("hello-world"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let errors = error_lines(&out.stderr);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("already exists and was not created by argo-runner"),
        "{}",
        errors[0]
    );
    assert_eq!(env.status("taken").await, None);
}

/// A Workflow is adopted only by a retry of the same action: another Job (owner uid) under the
/// same context name, or the same Job with another manifest, is refused with exit 2 saying
/// whose the Workflow is and what to change, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owner_or_input_under_the_same_name_is_refused() {
    let env = TestEnv::bare("twins").await;
    env.create_status_configmap("twin").await;
    let owned = |uid: &str, manifest: &Path| {
        env.argo_runner("twin", manifest)
            .var(
                "RUNNER_CONTEXT_PLATFORM_OWNER_NAME",
                Some(&format!("job-{uid}")),
            )
            .var("RUNNER_CONTEXT_PLATFORM_OWNER_UID", Some(uid))
    };
    let mut first = owned("uid-a", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    let created = env.wait_for_workflow("twin", Duration::from_secs(60)).await;
    env.await_phase("twin", Phase::Running).await;
    first.kill().await.unwrap();
    let before = env.status("twin").await;
    for (cmd, needle) in [
        (
            owned("uid-b", &argo_example("hello-world")),
            "belongs to another action: its owner is Job job-uid-a (uid uid-a), this runner's \
             is Job job-uid-b (uid uid-b)",
        ),
        (
            env.argo_runner("twin", &argo_example("hello-world")),
            "belongs to another action: its owner is Job job-uid-a (uid uid-a), this runner's \
             is no owner",
        ),
        (
            owned("uid-a", &argo_example("steps")),
            "already exists for another input of this action",
        ),
    ] {
        let out = cmd.run().await.unwrap();
        assert_eq!(out.code, 2, "{}", out.stderr);
        let errors = error_lines(&out.stderr);
        assert_eq!(errors.len(), 1, "{}", out.stderr);
        assert!(errors[0].contains(needle), "{}", errors[0]);
        assert!(errors[0].contains("RUNNER_CONTEXT_NAME"), "{}", errors[0]);
        assert_eq!(
            env.status("twin").await,
            before,
            "bad input writes no status"
        );
    }
    let now = workflows(&env.client, &env.ns).get("twin").await.unwrap();
    assert_eq!(
        now.metadata.uid, created.metadata.uid,
        "the Workflow is untouched"
    );
    // The same Job and input again: a retry, adopted.
    let again = owned("uid-a", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    env.spawn_argo_controller("twin", Outcome::Succeeded)
        .await
        .unwrap()
        .unwrap();
    let out = collect(again).await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        env.status("twin").await.unwrap().runner_status["adopted"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_creates_nothing() {
    let env = TestEnv::bare("dryrun").await;
    env.create_status_configmap("dry").await;
    let out = env
        .argo_runner("dry", &argo_example("dag-diamond"))
        .var("RUNNER_CONTEXT_DRY_RUN", Some("true"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.workflow_names().await.is_empty());
    let status = env.status("dry").await.unwrap();
    assert!(status.dry_run);
    assert_eq!(status.phase, Phase::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_rejects_an_invalid_workflow_with_the_api_servers_message() {
    let env = TestEnv::bare("invalid").await;
    env.create_status_configmap("bad").await;
    // Argo's schema says entrypoint is a string.
    let mut spec = example_json("hello-world")["spec"].clone();
    spec["entrypoint"] = json!(5);
    let manifest = env.file("bad.yaml", &serde_json::to_string(&spec).unwrap());
    for dry_run in ["true", "false"] {
        let out = env
            .argo_runner("bad", &manifest)
            .var("RUNNER_CONTEXT_DRY_RUN", Some(dry_run))
            .run()
            .await
            .unwrap();
        assert_invalid(&env, "bad", &out, "spec.entrypoint").await;
    }
    // A field Argo's schema does not know is rejected, not silently dropped.
    let mut spec = example_json("hello-world")["spec"].clone();
    spec["notAnArgoField"] = json!(true);
    let manifest = env.file("unknown.yaml", &serde_json::to_string(&spec).unwrap());
    let out = env
        .argo_runner("bad", &manifest)
        .var("RUNNER_CONTEXT_DRY_RUN", Some("true"))
        .run()
        .await
        .unwrap();
    assert_invalid(&env, "bad", &out, "notAnArgoField").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_wait_reports_cancelled_and_exits_143() {
    let env = TestEnv::bare("sigterm").await;
    env.create_status_configmap("term").await;
    let child = env
        .argo_runner("term", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    env.wait_for_workflow("term", Duration::from_secs(60)).await;
    env.await_phase("term", Phase::Running).await;
    let pid = child.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 143, "{}", out.stderr);
    let status = env.status("term").await.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.reason, Some(Reason::Cancelled));
    assert!(status.message.as_str().contains("SIGTERM"));
}

/// The API server restarts while the runner waits: the watch breaks, cannot connect for a
/// while, then resumes from a resourceVersion the new watch cache no longer has (410 Gone,
/// "too old resource version"); kube-runtime's watcher lists again and the run ends normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_mid_wait_is_survived() {
    // Its own control plane: restarting the shared one would disturb the other tests.
    let cp = tokio::task::spawn_blocking(ControlPlane::start_for_process)
        .await
        .unwrap()
        .unwrap();
    let env = TestEnv::on_control_plane(cp, "restart").await.unwrap();
    let (client, ns) = (env.client.clone(), env.ns.clone());
    env.create_status_configmap("phoenix").await;
    let child = env
        .argo_runner("phoenix", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    env.wait_for_workflow("phoenix", Duration::from_secs(60))
        .await;
    // Wait until the runner watches (it reported Running), then restart the API server.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let running = kube::runtime::wait::await_condition(cms, "phoenix", |cm: Option<&ConfigMap>| {
        cm.and_then(|c| c.data.as_ref())
            .is_some_and(|d| d.contains_key("status"))
    });
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .unwrap()
        .unwrap();
    // Move the cluster's resourceVersion past the one the runner last saw: a Workflow its watch
    // (a field selector on its own name) is not told about. The restarted API server's watch
    // cache starts at the newer version, so the runner's resumed watch gets 410 Gone
    // ("too old resource version") and must list again.
    let mut bystander = example_json("hello-world");
    bystander["metadata"] = json!({"name": "bystander"});
    workflows(&client, &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(bystander).unwrap(),
        )
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        cp.stop_apiserver();
        std::thread::sleep(Duration::from_secs(2));
        cp.start_apiserver()
    })
    .await
    .unwrap()
    .unwrap();
    let client = cp.client().await.unwrap();
    play_argo_controller(
        client.clone(),
        ns.clone(),
        "phoenix".into(),
        Duration::from_millis(200),
        Outcome::Succeeded,
    )
    .await
    .unwrap();
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("watch interrupted"),
        "the watch was not interrupted: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("too old resource version"),
        "the resumed watch did not get 410 Gone: {}",
        out.stderr
    );
    assert_eq!(
        reported_status(&client, &ns, "phoenix")
            .await
            .unwrap()
            .unwrap()
            .phase,
        Phase::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_one_line_naming_the_cause_and_writes_nothing() {
    let env = TestEnv::bare("badinput").await;
    env.create_status_configmap("act").await;
    let good = argo_example("hello-world");
    let cases: Vec<(&str, RunnerCommand, &str)> = vec![
        ("no manifest var", env.argo_runner("act", &good).var("RUNNER_INPUT_MANIFEST_PATH", None), "RUNNER_INPUT_MANIFEST_PATH"),
        ("no context name", env.argo_runner("act", &good).var("RUNNER_CONTEXT_NAME", None), "RUNNER_CONTEXT_NAME"),
        ("no namespace", env.argo_runner("act", &good).var("RUNNER_CONTEXT_PLATFORM_NAMESPACE", None), "RUNNER_CONTEXT_PLATFORM_NAMESPACE"),
        ("manifest missing", env.argo_runner("act", Path::new("/nonexistent/wf.yaml")), "/nonexistent/wf.yaml"),
        ("manifest a directory", env.argo_runner("act", env.dir.path()), "is a directory, not a regular file"),
        ("manifest a device", env.argo_runner("act", Path::new("/dev/zero")), "is a character device, not a regular file"),
        ("manifest missing", env.argo_runner("act", &env.dir.path().join("missing.yaml")), "cannot read"),
        ("two documents", env.argo_runner("act", &env.file("two.yaml", "spec: {entrypoint: a}\n---\nspec: {entrypoint: b}\n")), "holds 2 YAML documents; one is expected"),
        ("manifest empty", env.argo_runner("act", &env.file("empty.yaml", "\n# nothing\n")), "is empty"),
        ("malformed yaml", env.argo_runner("act", &env.file("bad.yaml", "spec:\n  entrypoint: [a\n  templates: x\n")), "line 3, column"),
        ("wrong shape", env.argo_runner("act", &env.file("list.yaml", "- a\n- b\n")), "wrong shape"),
        ("wrong kind", env.argo_runner("act", &env.file("pod.yaml", "apiVersion: v1\nkind: Pod\nspec: {containers: []}\n")), "apiVersion"),
        ("bad timeout", env.argo_runner("act", &good).var("RUNNER_TIMEOUT", Some("ten minutes")), "RUNNER_TIMEOUT"),
        ("bad namespace", env.argo_runner("act", &good).var("RUNNER_CONTEXT_PLATFORM_NAMESPACE", Some("Not_A_Namespace")), "RUNNER_CONTEXT_PLATFORM_NAMESPACE"),
        ("bad dry run", env.argo_runner("act", &good).var("RUNNER_CONTEXT_DRY_RUN", Some("maybe")), "RUNNER_CONTEXT_DRY_RUN"),
        ("entrypoint names no template", env.argo_runner("act", &env.file("entry.yaml", "entrypoint: nope\ntemplates: [{name: main, container: {image: busybox}}]\n")), "spec.entrypoint \\\"nope\\\": no such template"),
        ("step names no template", env.argo_runner("act", &env.file("step.yaml", "entrypoint: main\ntemplates: [{name: main, steps: [[{name: a, template: gone}]]}]\n")), "spec.templates[0].steps[0][0].template \\\"gone\\\""),
        ("namespace mismatch", env.argo_runner("act", &env.file("ns.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {namespace: other}\nspec: {templates: []}\n")), "metadata.namespace"),
    ];
    for (what, cmd, needle) in cases {
        let out = cmd.run().await.unwrap();
        eprintln!("{what}: {}", error_lines(&out.stderr).join(""));
        assert_invalid(&env, "act", &out, needle).await;
    }
    // A missing status ConfigMap is named, and nothing is created.
    let out = env.argo_runner("no-cm", &good).run().await.unwrap();
    assert_invalid(&env, "act", &out, "status ConfigMap").await;
    assert!(error_lines(&out.stderr)[0].contains(&format!("{}/no-cm", env.ns)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// No kubeconfig is for good (exit 3); an API server that does not answer may answer later
/// (exit 4, which a Job's `podFailurePolicy` counts and retries).
async fn no_kubeconfig_exits_3_and_an_unreachable_api_server_exits_4() {
    let env = TestEnv::bare("nocluster").await;
    let home = tempfile::tempdir().unwrap();
    let out = env
        .argo_runner("act", &argo_example("hello-world"))
        .var("KUBECONFIG", Some("/nonexistent/kubeconfig"))
        .var("HOME", Some(home.path().to_str().unwrap()))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(error_lines(&out.stderr)[0].contains("cannot configure the Kubernetes client"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = env.file(
        "unreachable",
        &kubeconfig_yaml(
            &format!("https://127.0.0.1:{port}"),
            &env.control_plane().dir().join("ca.crt"),
            ADMIN_TOKEN,
        ),
    );
    let out = env
        .argo_runner("act", &argo_example("hello-world"))
        .var("KUBECONFIG", Some(kubeconfig.to_str().unwrap()))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 4, "{}", out.stderr);
    let errors = error_lines(&out.stderr);
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].to_lowercase().contains("connect"),
        "{}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_from_another_crate_plugs_in() {
    let env = TestEnv::bare("echo").await;
    for (succeed, code) in [(true, 0), (false, 1)] {
        let manifest = env.file(
            "echo.yaml",
            &format!("message: hello from echo\nsucceed: {succeed}\nsleep: 100ms\n"),
        );
        let out = env
            .runner("echo-runner", "echo", &manifest)
            .var("RUNNER_LOGGER_DEV_MODE", Some("true"))
            .run()
            .await
            .unwrap();
        assert_eq!(out.code, code, "{}", out.stderr);
        assert!(out.stderr.contains("hello from echo"));
        assert!(
            !out.stderr.contains("{\"timestamp\""),
            "dev mode logs are not JSON"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_configmap_is_shared_safely_with_other_writers() {
    use kube::api::{Patch, PatchParams};
    let env = TestEnv::bare("sharedcm").await;
    env.create_status_configmap("shared").await;
    let child = env
        .argo_runner("shared", &argo_example("hello-world"))
        .spawn()
        .unwrap();
    // Another writer keeps changing its own key (so the ConfigMap's resourceVersion keeps
    // moving) while the runner reports; neither loses its write.
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let patch = json!({"data": {"other": i.to_string()}});
                api.patch("shared", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    env.spawn_argo_controller("shared", Outcome::Succeeded)
        .await
        .unwrap()
        .unwrap();
    let out = collect(child).await.unwrap();
    writer.await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let data = api.get("shared").await.unwrap().data.unwrap();
    assert_eq!(data["other"], "39");
    assert_eq!(env.status("shared").await.unwrap().phase, Phase::Succeeded);
}

/// A Workflow larger than etcd stores (1.5 MiB, `--max-request-bytes`) though within the
/// manifest limit (3 MiB): the API server refuses it (etcd's "request is too large" behind a
/// `500`), and the run exits 2 naming the limits; nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_too_large_to_store_exits_2_naming_the_limit() {
    let env = TestEnv::bare("toolarge").await;
    env.create_status_configmap("big").await;
    let big = json!({"entrypoint": "main", "templates": [{"name": "main",
        "container": {"image": "busybox", "command": ["echo"], "args": ["x".repeat(2_000_000)]}}]});
    let manifest = env.file("big.json", &big.to_string());
    let out = env.argo_runner("big", &manifest).run().await.unwrap();
    assert_invalid(&env, "big", &out, "too large").await;
    assert!(
        error_lines(&out.stderr)[0].contains("1.5 MiB"),
        "{}",
        out.stderr
    );
}

/// The worst manifest, a "billion laughs" of YAML aliases (450 bytes, 10^9 strings if
/// expanded), is refused with exit 2 and one line; its peak memory, measured by GNU time, is
/// printed and stays below the smallest memory limit in `deploy/` (64 MiB). Before the parser's
/// budgets were set it reached about 100 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_of_aliases_is_refused_within_the_memory_limit() {
    let env = TestEnv::bare("aliases").await;
    let bomb = billion_laughs();
    let manifest = env.file("bomb.yaml", &bomb);
    let cmd = env.argo_runner("bomb", &manifest);
    let report = env.path("time.txt");
    let out = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(&cmd.bin)
        .env_clear()
        .envs(&cmd.env)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("GNU time (Debian's time package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(error_lines(&stderr).len(), 1, "{stderr}");
    let text = std::fs::read_to_string(&report).unwrap();
    let kib: u64 = text.lines().last().unwrap().trim().parse().unwrap();
    println!(
        "a {}-byte manifest of aliases: refused, peak RSS {kib} KiB",
        bomb.len()
    );
    assert!(
        kib < 64 * 1024,
        "peak RSS {kib} KiB is over argo-runner's 64Mi limit"
    );
}

/// The template-reference checks accept every Workflow among Argo's own examples (they are
/// valid, and Argo runs them): none is refused for a reference Argo would resolve.
#[test]
fn argo_s_own_examples_pass_the_reference_checks() {
    let dir = Tools::locate().unwrap().argo_dir.join("examples");
    let mut checked = 0;
    let mut refused = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Only single Workflows (the examples also hold WorkflowTemplates, CronWorkflows, ...).
        let Ok(manifest) = serde_saphyr::from_str::<action_runner_argo::WorkflowManifest>(&text)
        else {
            continue;
        };
        checked += 1;
        if let Some(broken) = action_runner_argo::references::broken_reference(&manifest.spec) {
            refused.push(format!("{}: {broken}", path.display()));
        }
    }
    println!("{checked} of Argo's example Workflows checked");
    assert!(checked > 100, "only {checked} examples read");
    assert!(refused.is_empty(), "refused: {refused:#?}");
}

//! The shipping path, proven on a real kube-apiserver with RBAC authorization: the manifests in
//! `deploy/` are applied as they are (only the namespace is set, as `kubectl apply -n` or
//! Kustomize's `namespace:` would), a token is minted for the runner's ServiceAccount with the
//! TokenRequest API, and the runner binary runs with a kubeconfig holding only that token and
//! the environment, mounts and owner that the Job in `deploy/` gives its pod. Then each verb of
//! the runner's Role is removed in turn: the run must exit 3 naming that verb and resource.
//!
//! No kubelet runs on this bare API server, so the Job is created (its `uid` and name are what the downward API
//! hands the pod) but never started: the test starts the binary in its place. Argo's controller
//! is played by the administrator, as in `argo_e2e.rs`.
//!
//! `KAR_RUNNER_DIR` points the tests at other builds of the runners (for example the static
//! release build of `hack/build-images.sh`); by default they use `cargo build --bins`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use action_runner::status::Phase;
use action_runner_tests::control_plane::{ControlPlane, client_from};
use action_runner_tests::controllers::{Outcome, play_argo_controller, workflows};
use action_runner_tests::deploy::{
    apply, assert_argo_job_outcome, assert_deploy_jobs_completed, assert_helm_job_outcome,
    deploy_objects, find, kind_of, name_of,
};
use action_runner_tests::deployed_runner::{DeployedRunner, without_verb};
use action_runner_tests::process::{RunnerCommand, RunnerOutput, collect, error_lines};
use action_runner_tests::test_env::TestEnv;
use action_runner_tests::tools::{Tools, runner_binary};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

/// A runner process's result and, when GNU time is installed, its peak resident set size.
struct Measured {
    out: RunnerOutput,
    max_rss_kib: Option<u64>,
}

/// GNU time, which reports a child's peak RSS (`%M`). Measuring from this process instead does
/// not work: Rust spawns with `posix_spawn` (a vfork), and the kernel carries the parent's RSS
/// high-water mark across the child's exec into its `ru_maxrss`.
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `cmd` to completion (at most 120 s), under GNU time if it is installed.
async fn run_measured(cmd: &RunnerCommand) -> Measured {
    let time = Path::new(GNU_TIME);
    if !time.exists() {
        println!("{GNU_TIME} is not installed: peak RSS not measured");
        let out = cmd.run().await.unwrap();
        return Measured {
            out,
            max_rss_kib: None,
        };
    }
    let report = tempfile::NamedTempFile::new().unwrap();
    let child = tokio::process::Command::new(time)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(&cmd.bin)
        .env_clear()
        .envs(&cmd.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = collect(child).await.unwrap();
    let text = std::fs::read_to_string(report.path()).unwrap();
    // GNU time writes "Command exited with non-zero status N" before the figure when N != 0.
    let max_rss_kib = text.lines().last().and_then(|l| l.trim().parse().ok());
    Measured { out, max_rss_kib }
}

/// Every `(resource, verb)` a Role grants that the run needs: all but `events`, which are
/// optional (see `without_events_the_run_goes_on`).
fn granted(role: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for r in rule["resources"].as_array().unwrap() {
            if r == "events" {
                continue;
            }
            for v in rule["verbs"].as_array().unwrap() {
                let pair = (
                    r.as_str().unwrap().to_string(),
                    v.as_str().unwrap().to_string(),
                );
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deploy_manifest_passes_a_server_side_dry_run_apply() {
    let env = TestEnv::bare("deploy-dry-run").await;
    let (admin, ns) = (&env.client, &env.ns);
    let mut checked = 0;
    for runner in ["argo-runner", "helm-runner"] {
        for (file, obj) in deploy_objects(runner) {
            apply(admin, ns, &obj, true)
                .await
                .unwrap_or_else(|e| panic!("{file}: {} {}: {e}", kind_of(&obj), name_of(&obj)));
            checked += 1;
        }
    }
    // A dry run persists nothing.
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    let names: Vec<String> = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert!(names.is_empty(), "dry run persisted {names:?}");
    println!("server-side dry-run apply accepted all {checked} objects of deploy/");
}

#[test]
fn deploy_manifests_are_hardened_and_roles_have_no_wildcards() {
    for runner in ["argo-runner", "helm-runner"] {
        for (file, obj) in deploy_objects(runner) {
            match kind_of(&obj) {
                "Role" => {
                    for rule in obj["rules"].as_array().unwrap() {
                        for key in ["apiGroups", "resources", "verbs", "resourceNames"] {
                            for v in rule[key].as_array().into_iter().flatten() {
                                assert!(
                                    !v.as_str().unwrap().contains('*'),
                                    "{file}: wildcard in {key}"
                                );
                            }
                        }
                    }
                }
                "Job" => {
                    assert_job_policy(&file, &obj);
                    let pod = &obj["spec"]["template"]["spec"];
                    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{file}");
                    assert_eq!(
                        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                        "{file}"
                    );
                    assert_eq!(pod["serviceAccountName"], runner, "{file}");
                    for c in pod["containers"].as_array().unwrap() {
                        let sc = &c["securityContext"];
                        assert_eq!(sc["readOnlyRootFilesystem"], true, "{file}");
                        assert_eq!(sc["allowPrivilegeEscalation"], false, "{file}");
                        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{file}");
                        assert_eq!(
                            c["terminationMessagePolicy"], "FallbackToLogsOnError",
                            "{file}"
                        );
                        for k in ["requests", "limits"] {
                            for r in ["cpu", "memory"] {
                                assert!(
                                    c["resources"][k][r].is_string(),
                                    "{file}: resources.{k}.{r}"
                                );
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The retry policy every Job of `deploy/` carries, built on the exit codes: fail at once on 1,
/// 2 and 3, ignore disruptions, replace a pod only once it has failed, and a deadline of
/// `RUNNER_TIMEOUT` plus 300 s.
fn assert_job_policy(file: &str, job: &Value) {
    let spec = &job["spec"];
    let rules = spec["podFailurePolicy"]["rules"]
        .as_array()
        .expect("podFailurePolicy");
    assert_eq!(
        rules[0],
        json!({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}),
        "{file}"
    );
    assert_eq!(
        rules[1],
        json!({"action": "FailJob", "onExitCodes":
            {"containerName": "runner", "operator": "In", "values": [1, 2, 3]}}),
        "{file}"
    );
    assert_eq!(spec["podReplacementPolicy"], "Failed", "{file}");
    let timeout = spec["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "RUNNER_TIMEOUT")
        .and_then(|e| e["value"].as_str())
        .expect("RUNNER_TIMEOUT");
    let timeout = action_runner::vars::go_duration(timeout).unwrap();
    assert_eq!(
        spec["activeDeadlineSeconds"],
        json!(timeout.as_secs() + 300),
        "{file}: activeDeadlineSeconds"
    );
}

/// Argo's whole flow with nothing but the runner's ServiceAccount token: create, report
/// `Running`, watch until the (played) controller ends it, report `Succeeded`; the Workflow is
/// owned by the Job and runs as the Workflow ServiceAccount; the API server denied nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_runner_with_only_its_service_account_token_runs_the_full_flow() {
    let d = DeployedRunner::new("argo-runner", "rbac-argo", |_| {}, None).await;
    let name = d.context_name();
    let controller = tokio::spawn(play_argo_controller(
        d.env.client.clone(),
        d.env.ns.clone(),
        name.clone(),
        Duration::from_millis(300),
        Outcome::Succeeded,
    ));
    let m = run_measured(&d.command()).await;
    controller.await.unwrap().unwrap();
    assert_eq!(m.out.code, 0, "stderr: {}", m.out.stderr);
    if let Some(kib) = m.max_rss_kib {
        println!(
            "argo-runner ({}) peak RSS over the full flow: {kib} KiB",
            runner_binary("argo-runner").display()
        );
    }

    assert_argo_job_outcome(&d.env.client, &d.env.ns, name_of(&d.job), &d.job_uid).await;

    d.assert_nothing_denied();
}

/// A dry run needs only `create` (with `dryRun=All`) and the status ConfigMap; the kubeconfig
/// names the server `localhost`, so the binary resolves a host name (which matters for a
/// statically linked glibc build: see the README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_runner_dry_run_with_its_token_and_a_localhost_kubeconfig() {
    let cp = ControlPlane::shared();
    let server = cp.server.replace("127.0.0.1", "localhost");
    let d = DeployedRunner::new("argo-runner", "rbac-dry", |_| {}, Some(server)).await;
    let out = d
        .command()
        .var("RUNNER_CONTEXT_DRY_RUN", Some("true"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let status = d.env.expect_status(&d.context_name()).await;
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert!(status.dry_run, "{status:?}");
}

/// Each verb of argo-runner's Role is needed: without it the run exits 3 with one error line,
/// also written to the termination-message file, that names the verb and the resource.
/// `get` on Workflows is only used by a retried pod, so that case starts from the Workflow a
/// previous pod of the same Job created (409 AlreadyExists, then adoption).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_any_verb_from_the_argo_role_exits_3_naming_it() {
    let role = find(&deploy_objects("argo-runner"), "Role", "argo-runner").clone();
    let cases = granted(&role);
    assert_eq!(
        cases.len(),
        6,
        "the Role grants exactly these (resource, verb) pairs: {cases:?}"
    );
    let runs = cases.iter().map(|(resource, verb)| async move {
        let d = DeployedRunner::without("argo-runner", "rbac-no", resource, verb).await;
        let name = d.context_name();
        if (resource.as_str(), verb.as_str()) == ("workflows", "get") {
            // What the first pod of this Job created before it died.
            let input = d.command().env["RUNNER_INPUT_MANIFEST_PATH"].clone();
            let mut wf: Value =
                serde_saphyr::from_str(&std::fs::read_to_string(input).unwrap()).unwrap();
            wf["metadata"] = json!({
                "name": name,
                "labels": {
                    action_runner_argo::MANAGED_BY_LABEL: action_runner_argo::MANAGED_BY,
                    action_runner_argo::CONTEXT_LABEL: name,
                },
            });
            let obj: DynamicObject = serde_json::from_value(wf).unwrap();
            workflows(&d.env.client, &d.env.ns)
                .create(&PostParams::default(), &obj)
                .await
                .unwrap();
        }
        let out = d.command().run().await.unwrap();
        (resource.clone(), verb.clone(), out, d.termination_message())
    });
    let results = futures::future::join_all(runs).await;
    assert_each_exits_3_naming_the_verb(results);
}

/// Checks each `(resource, verb, output, termination message)` of a run without that verb:
/// exit 3, exactly one ERROR line, naming the verb and resource as the API server does, and
/// the same reason in the termination-message file. Prints every case, then fails listing
/// the cases that did not hold.
fn assert_each_exits_3_naming_the_verb(results: Vec<(String, String, RunnerOutput, String)>) {
    let mut failures = Vec::new();
    for (resource, verb, out, termination) in results {
        let needle = format!("cannot {verb} resource \\\"{resource}\\\"");
        let errors = error_lines(&out.stderr);
        println!(
            "without {verb} {resource}: exit {} — {}",
            out.code,
            errors
                .first()
                .map(String::as_str)
                .unwrap_or("(no error line)")
        );
        let ok = out.code == 3
            && errors.len() == 1
            && errors[0].contains(&needle)
            && termination.contains(&needle.replace('\\', ""));
        if !ok {
            failures.push(format!(
                "without {verb} {resource}: exit {}, termination message {termination:?}, \
                 stderr:\n{}",
                out.code, out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// helm-runner as `deploy/helm-runner`'s Job runs it, with the pinned helm.
fn helm_command(d: &DeployedRunner) -> RunnerCommand {
    // The image puts helm on PATH; here it is the pinned build of hack/install-tools.sh.
    let helm = Tools::locate().unwrap().helm.display().to_string();
    d.command().var("RUNNER_HELM_BINARY_PATH", Some(&helm))
}

/// A Helm install with nothing but helm-runner's ServiceAccount token and `deploy/`'s Role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_runner_with_only_its_service_account_token_installs_the_chart() {
    let d = DeployedRunner::new("helm-runner", "rbac-helm", |_| {}, None).await;
    let m = run_measured(&helm_command(&d)).await;
    assert_eq!(m.out.code, 0, "stderr: {}", m.out.stderr);
    if let Some(kib) = m.max_rss_kib {
        // wait4's figure covers the waited-for descendants too: here, the helm child.
        println!("helm-runner peak RSS (largest of it and its helm children): {kib} KiB");
    }
    assert_helm_job_outcome(&d.env.client, &d.env.ns).await;
    d.assert_nothing_denied();
}

/// What a Helm action does with each `(resource, verb)` the Role grants, and what a run
/// without it ends in. The cases are derived from `deploy/helm-runner/role.yaml` as the Argo
/// ones are: the test fails when the Role grants a pair this table does not name (add the step
/// that needs it) or the table names one the Role does not grant. Each step runs under both
/// Helm majors.
#[derive(Debug, Clone, Copy, PartialEq)]
enum HelmStep {
    /// `RUNNER_COMMAND=install` as `deploy/` ships it.
    Install,
    /// An install (with every right), then an upgrade with other values without the verb.
    Upgrade,
    /// An install (with every right), then an uninstall without the verb.
    Uninstall,
}

/// What a run without one verb ends in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Without {
    /// Exit 3, the API server's refusal naming the verb and resource.
    Refused,
    /// Exit 1 with an error line saying this: Helm went on and failed later.
    Fails(&'static str),
    /// Exit 0 and the verb never asked for: that Helm major does not use it in this step.
    Unused,
    /// Exit 0 alone, because the step does without it while it has the other verb (Helm 4's
    /// client watches with a streaming list, `sendInitialEvents`, and lists only when that is
    /// refused); without both, exit 3 naming this one.
    FallbackFor(&'static str),
}

/// Every pair of the Role, the step that needs it, and what that step ends in without it under
/// Helm 4 and under Helm 3. `update secrets` is how Helm marks a revision `superseded` (an
/// install without it only warns and leaves the revision `pending-install`, which the runner
/// reads back: exit 1); Helm's uninstall says only that it failed to delete the release when it
/// may not delete the chart's objects; Helm 4 watches what it installs and uninstalls (a
/// streaming list, falling back to list then watch).
const HELM_VERB_USES: [(&str, &str, HelmStep, [Without; 2]); 11] = {
    use Without::*;
    [
        ("secrets", "list", HelmStep::Install, [Refused, Refused]),
        ("secrets", "get", HelmStep::Install, [Refused, Refused]),
        ("secrets", "create", HelmStep::Install, [Refused, Refused]),
        ("secrets", "update", HelmStep::Upgrade, [Refused, Refused]),
        ("secrets", "delete", HelmStep::Uninstall, [Refused, Refused]),
        ("configmaps", "get", HelmStep::Install, [Refused, Refused]),
        ("configmaps", "patch", HelmStep::Install, [Refused, Refused]),
        (
            "configmaps",
            "create",
            HelmStep::Install,
            [Refused, Refused],
        ),
        (
            "configmaps",
            "delete",
            HelmStep::Uninstall,
            [
                Fails("failed to delete release"),
                Fails("failed to delete release"),
            ],
        ),
        (
            "configmaps",
            "watch",
            HelmStep::Uninstall,
            [Refused, Unused],
        ),
        (
            "configmaps",
            "list",
            HelmStep::Install,
            [FallbackFor("watch"), Unused],
        ),
    ]
};

/// Runs `step` with `helm` in `d` (whose Role lacks one verb); the upgrade and the uninstall
/// first install with the administrator's kubeconfig.
async fn run_helm_step(d: &DeployedRunner, step: HelmStep, helm: &Path) -> RunnerOutput {
    let base = d
        .command()
        .var("RUNNER_HELM_BINARY_PATH", Some(&helm.display().to_string()));
    if step == HelmStep::Install {
        return base.run().await.unwrap();
    }
    let input = PathBuf::from(&base.env["RUNNER_INPUT_MANIFEST_PATH"]);
    let out = base
        .clone()
        .var(
            "KUBECONFIG",
            Some(&d.env.kubeconfig().display().to_string()),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "the install with every right: {}", out.stderr);
    let release = d.env.dir.path().join("installed.yaml");
    std::fs::copy(&base.env["RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH"], &release).unwrap();
    let installed = std::fs::read_to_string(&input).unwrap();
    let (command, manifest) = if step == HelmStep::Upgrade {
        (
            "upgrade",
            installed.replace("hello from helm-runner", "changed"),
        )
    } else {
        ("uninstall", "name: hello-release\n".to_string())
    };
    let path = d.env.dir.path().join("step.yaml");
    std::fs::write(&path, manifest).unwrap();
    base.var("RUNNER_COMMAND", Some(command))
        .var(
            "RUNNER_HELM_RELEASE_PATH",
            Some(&release.display().to_string()),
        )
        .var(
            "RUNNER_INPUT_MANIFEST_PATH",
            Some(&path.display().to_string()),
        )
        .run()
        .await
        .unwrap()
}

/// Each verb of helm-runner's Role is used by some step (see [`HELM_VERB_USES`]), under
/// Helm 4 and Helm 3: without it that step ends as the table says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_any_verb_from_the_helm_role_fails_the_step_that_needs_it() {
    let role = find(&deploy_objects("helm-runner"), "Role", "helm-runner").clone();
    let mut granted = granted(&role);
    granted.sort();
    let mut named: Vec<(String, String)> = HELM_VERB_USES
        .iter()
        .map(|(r, v, ..)| (r.to_string(), v.to_string()))
        .collect();
    named.sort();
    assert_eq!(granted, named, "the Role's pairs and the table's");
    let tools = Tools::locate().unwrap();
    let cases = HELM_VERB_USES.iter().flat_map(|&(r, v, step, [on4, on3])| {
        [
            (r, v, step, on4, 4, tools.helm4.clone()),
            (r, v, step, on3, 3, tools.helm3.clone()),
        ]
    });
    let runs = cases.map(|(resource, verb, step, expect, major, helm)| async move {
        let prefix = format!("rbac-helm{major}-no");
        let d = match expect {
            Without::FallbackFor(other) => {
                let prefix = format!("{prefix}-{verb}-{other}-{}", &resource[..4]);
                let edit = |r: &mut Value| {
                    without_verb(r, resource, verb);
                    without_verb(r, resource, other);
                };
                DeployedRunner::new("helm-runner", &prefix, edit, None).await
            }
            _ => DeployedRunner::without("helm-runner", &prefix, resource, verb).await,
        };
        let out = run_helm_step(&d, step, &helm).await;
        let asked = d.audited_requests().iter().any(|e| {
            e["verb"] == verb
                && e["objectRef"]["resource"] == resource
                && e["responseStatus"]["code"].as_i64() == Some(403)
        });
        let case = format!("helm {major} without {verb} {resource}, {step:?}");
        (
            case,
            resource,
            verb,
            expect,
            asked,
            out,
            d.termination_message(),
        )
    });
    let results = futures::future::join_all(runs).await;
    assert_eq!(results.len(), 2 * HELM_VERB_USES.len());
    let wrong: Vec<String> = results
        .iter()
        .filter(|(_, _, _, expect, asked, out, _)| {
            let errors = error_lines(&out.stderr);
            match expect {
                Without::Refused | Without::FallbackFor(_) => out.code != 3,
                Without::Fails(says) => out.code != 1 || !errors.iter().any(|l| l.contains(says)),
                Without::Unused => out.code != 0 || *asked,
            }
        })
        .map(|(case, _, _, expect, asked, out, _)| {
            format!(
                "{case}: exit {}, asked for it: {asked} (expected {expect:?}): {}",
                out.code,
                error_lines(&out.stderr).join(" | ")
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let refused: Vec<_> = results
        .into_iter()
        .filter(|r| matches!(r.3, Without::Refused | Without::FallbackFor(_)))
        .map(|(_, resource, verb, _, _, out, termination)| {
            (resource.to_string(), verb.to_string(), out, termination)
        })
        .collect();
    assert!(!refused.is_empty());
    assert_each_exits_3_naming_the_verb(refused);
}

/// The whole lifecycle with nothing but the runner's ServiceAccount token and `deploy/`'s Role,
/// which grants no verb for it beyond the install's: install, upgrade (another action: the same
/// context and owner, another command), rollback to the install's revision, uninstall, and the Job's retry of the
/// uninstall; each helm. Nothing is denied, but Helm 3's `get` of the namespace while
/// `uninstall --wait` waits, which it does without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_runner_upgrades_rolls_back_and_uninstalls_with_only_its_role() {
    let tools = Tools::locate().unwrap();
    for (major, helm) in [(3, &tools.helm3), (4, &tools.helm4)] {
        let d = DeployedRunner::new(
            "helm-runner",
            &format!("rbac-helm{major}-life"),
            |_| {},
            None,
        )
        .await;
        let install = d
            .command()
            .var("RUNNER_HELM_BINARY_PATH", Some(&helm.display().to_string()));
        let out = install.run().await.unwrap();
        assert_eq!(out.code, 0, "helm {major} install: {}", out.stderr);
        let output = PathBuf::from(&install.env["RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH"]);
        let release = d.env.dir.path().join("release.yaml");
        std::fs::copy(&output, &release).unwrap();
        let lifecycle = d.env.dir.path().join("lifecycle.yaml");
        std::fs::write(&lifecycle, "name: hello-release\n").unwrap();
        let on_release = |command: &str, manifest: &Path| {
            install
                .clone()
                .var("RUNNER_COMMAND", Some(command))
                .var(
                    "RUNNER_HELM_RELEASE_PATH",
                    Some(&release.display().to_string()),
                )
                .var(
                    "RUNNER_INPUT_MANIFEST_PATH",
                    Some(&manifest.display().to_string()),
                )
        };
        let input = PathBuf::from(&install.env["RUNNER_INPUT_MANIFEST_PATH"]);
        let steps = [
            // The install's context and owner, another command: another action.
            ("upgrade", on_release("upgrade", &input)),
            ("rollback", on_release("rollback", &lifecycle)),
            ("uninstall", on_release("uninstall", &lifecycle)),
            ("uninstall again", on_release("uninstall", &lifecycle)),
        ];
        for (step, cmd) in steps {
            let out = cmd.run().await.unwrap();
            assert_eq!(out.code, 0, "helm {major} {step}: {}", out.stderr);
        }
        let status = d.env.expect_status("hello-release").await;
        assert_eq!(status.runner_status["phase"], "Uninstalled", "{status:?}");
        assert_eq!(
            status.runner_status["alreadyUninstalled"], true,
            "{status:?}"
        );
        let cms: Api<ConfigMap> = Api::namespaced(d.env.client.clone(), &d.env.ns);
        assert!(
            cms.get_opt("hello-release-greeting")
                .await
                .unwrap()
                .is_none()
        );
        // Helm 3's `uninstall --wait` also reads the release's namespace (`get namespaces`,
        // cluster-scoped, not granted); it goes on without it (the uninstall succeeded, and
        // the greeting is gone). That is the one denial allowed, and Helm 3's only.
        let denied: Vec<String> = d
            .audited_requests()
            .iter()
            .filter(|e| e["responseStatus"]["code"].as_i64() == Some(403))
            .map(|e| {
                format!(
                    "{} {} by {}",
                    e["verb"].as_str().unwrap_or_default(),
                    e["objectRef"]["resource"].as_str().unwrap_or_default(),
                    e["userAgent"].as_str().unwrap_or_default()
                )
            })
            .collect();
        assert!(
            denied
                .iter()
                .all(|r| major == 3 && r.starts_with("get namespaces by Helm/3")),
            "helm {major}: denied {denied:?}"
        );
    }
}

/// `createNamespace: true` (helm install `--create-namespace`) is opt-in because it needs rights
/// on `namespaces`, which the shipped Role cannot grant (they are cluster-scoped). With only
/// `deploy/`'s Role the install exits 3 naming the verb; with the ClusterRole the commented rule
/// in `deploy/helm-runner/role.yaml` describes, bound to the runner's ServiceAccount, it
/// succeeds (the namespace exists: Helm goes on). Each helm: Helm 3 creates the namespace
/// (`create`, AlreadyExists tolerated), Helm 4 applies it server-side (a `patch`, which creates
/// it when it is missing, and then also needs `create`): the rule grants both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_namespace_needs_the_opt_in_cluster_role() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let tools = Tools::locate().unwrap();
    for (major, helm, verbs, denied) in [
        (3, &tools.helm3, vec!["create", "patch"], "create"),
        (4, &tools.helm4, vec!["create", "patch"], "patch"),
    ] {
        let d =
            DeployedRunner::new("helm-runner", &format!("rbac-helm{major}-ns"), |_| {}, None).await;
        let cmd = d
            .command()
            .var("RUNNER_HELM_BINARY_PATH", Some(&helm.display().to_string()));
        let manifest = PathBuf::from(&cmd.env["RUNNER_INPUT_MANIFEST_PATH"]);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, format!("{text}createNamespace: true\n")).unwrap();

        let out = cmd.run().await.unwrap();
        assert_eq!(out.code, 3, "helm {major}: {}", out.stderr);
        let needle = format!("cannot {denied} resource \\\"namespaces\\\"");
        assert!(
            error_lines(&out.stderr).iter().any(|l| l.contains(&needle)),
            "helm {major}: {}",
            out.stderr
        );

        let name = format!("{}-create-namespace", d.env.ns);
        let role: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": verbs}],
        }))
        .unwrap();
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "helm-runner", "namespace": d.env.ns}],
        }))
        .unwrap();
        let pp = PostParams::default();
        Api::<ClusterRole>::all(d.env.client.clone())
            .create(&pp, &role)
            .await
            .unwrap();
        Api::<ClusterRoleBinding>::all(d.env.client.clone())
            .create(&pp, &binding)
            .await
            .unwrap();
        // RBAC's authorizer sees the new binding from its informer: give it a moment.
        let mut attempts = 0;
        let out = loop {
            let out = cmd.run().await.unwrap();
            attempts += 1;
            if out.code != 3 || attempts == 20 {
                break out;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(out.code, 0, "helm {major}, {verbs:?}: {}", out.stderr);
        assert_helm_job_outcome(&d.env.client, &d.env.ns).await;
    }
}

/// `valuesFrom` with `deploy/`'s Role: the ConfigMap and the Secret of values are read with the
/// `get` the Role grants (for the chart's ConfigMaps and Helm's storage); the Secret's value
/// (last, so it wins) is the greeting the chart renders. Without `get secrets`, the run exits 3
/// naming the entry and the Secret, before helm runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_runner_reads_values_from_configmaps_and_secrets_with_its_role() {
    async fn setup(d: &DeployedRunner) -> RunnerCommand {
        let pp = PostParams::default();
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "greeting-defaults"},
            "data": {"values.yaml": "greeting: from the ConfigMap\n"}}))
            .unwrap();
        Api::<ConfigMap>::namespaced(d.env.client.clone(), &d.env.ns)
            .create(&pp, &cm)
            .await
            .unwrap();
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(json!({"metadata": {"name": "greeting-secret"},
            "stringData": {"prod.yaml": "greeting: hello from helm-runner\n"}}))
            .unwrap();
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(d.env.client.clone(), &d.env.ns)
            .create(&pp, &secret)
            .await
            .unwrap();
        // The Job's input, with valuesFrom instead of inline values.
        let manifest = d.env.dir.path().join("values-from-input.yaml");
        std::fs::write(
            &manifest,
            format!(
                "name: hello-release\nchart: {{name: {}}}\nvaluesFrom:\n\
                 - {{kind: ConfigMap, name: greeting-defaults}}\n\
                 - {{kind: Secret, name: greeting-secret, key: prod.yaml}}\n",
                d.env.dir.path().join("pod/runner/chart").display()
            ),
        )
        .unwrap();
        helm_command(d).var(
            "RUNNER_INPUT_MANIFEST_PATH",
            Some(manifest.to_str().unwrap()),
        )
    }

    let d = DeployedRunner::new("helm-runner", "rbac-helm-values", |_| {}, None).await;
    let out = setup(&d).await.run().await.unwrap();
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_helm_job_outcome(&d.env.client, &d.env.ns).await;
    d.assert_nothing_denied();

    let d = DeployedRunner::without("helm-runner", "rbac-helm-values", "secrets", "get").await;
    let out = setup(&d).await.run().await.unwrap();
    assert_eq!(out.code, 3, "stderr: {}", out.stderr);
    let err = error_lines(&out.stderr).join("\n");
    assert!(
        err.contains(&format!(
            "valuesFrom[1]: Secret {}/greeting-secret: GET",
            d.env.ns
        )) && err.contains("forbidden"),
        "{err}"
    );
}

/// Run by `hack/kind-e2e.sh` (not by `hack/test.sh`: it needs a kind cluster where both Jobs of
/// `deploy/` ran): `KAR_KIND_KUBECONFIG` and `KAR_KIND_NAMESPACE` say where. Each Job must
/// have succeeded, and leave what the local tests check, with the same assertions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kind cluster: run by hack/kind-e2e.sh"]
async fn kind_jobs_completed_with_the_expected_status() {
    let kubeconfig = std::env::var("KAR_KIND_KUBECONFIG").expect("KAR_KIND_KUBECONFIG");
    let ns = std::env::var("KAR_KIND_NAMESPACE").expect("KAR_KIND_NAMESPACE");
    let client = client_from(Path::new(&kubeconfig)).await.unwrap();
    assert_deploy_jobs_completed(&client, &ns).await;
}

/// Runs `d`'s runner while the stand-in Argo controller ends its Workflow `Succeeded`, and
/// checks it exits 0.
async fn run_to_success(d: &DeployedRunner) -> RunnerOutput {
    let controller = tokio::spawn(play_argo_controller(
        d.env.client.clone(),
        d.env.ns.clone(),
        d.context_name(),
        Duration::from_millis(200),
        Outcome::Succeeded,
    ));
    let out = d.command().run().await.unwrap();
    controller.await.unwrap().unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    out
}

/// Events are told, never needed: without `create events` the whole flow still succeeds, and
/// the runner says, at `warn`, that it could not record them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_events_the_run_goes_on() {
    let d = DeployedRunner::without("argo-runner", "rbac-noev", "events", "create").await;
    let out = run_to_success(&d).await;
    assert!(
        out.stderr.contains("cannot record an Event"),
        "{}",
        out.stderr
    );
}

/// With the Role as shipped, the run records its Events on the Job and on the Workflow:
/// `Started` then `Succeeded`, by `argo-runner`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_the_story_on_the_job_and_the_workflow() {
    use k8s_openapi::api::events::v1::Event;
    let d = DeployedRunner::without("argo-runner", "events", "none", "none").await;
    run_to_success(&d).await;
    let events: Api<Event> = Api::namespaced(d.env.client.clone(), &d.env.ns);
    let mut told: Vec<(String, String, String)> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            let regarding = e.regarding.unwrap_or_default();
            assert_eq!(e.reporting_controller.as_deref(), Some("argo-runner"));
            (
                regarding.kind.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.type_.unwrap_or_default(),
            )
        })
        .collect();
    told.sort();
    let want = [
        ("Job", "Started", "Normal"),
        ("Job", "Succeeded", "Normal"),
        ("Workflow", "Started", "Normal"),
        ("Workflow", "Succeeded", "Normal"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(told, want);
}

//! End-to-end tests of the real `helm-runner` binary driving the real helm CLI, Helm 4 (v4.3.2,
//! the default, as the image ships it) and Helm 3 (v3.22.0), against a real kube-apiserver and
//! etcd. Every test runs once per helm: `helm4::<test>` and `helm3::<test>` (see
//! [`both_helms!`]); where the two behave differently the test says so and checks each. Charts
//! come from the harness's fixtures (`action_runner_tests::fixtures`): a chart repository the
//! tests serve on loopback (`helm package` + `helm repo index`, a small HTTP server), a private
//! one over HTTPS with basic auth, and an OCI registry, holding Helm's own standard chart (`helm
//! create webapp`) and, from Helm's Go module in the module cache,
//! `testdata/testcharts/chart-with-secret` and `chart-with-template-with-invalid-yaml`.
//! No kubelet runs: charts with workloads are installed with `wait: false`, except in
//! `wait_true_waits_for_the_rollout`, where the test plays the Deployment controller.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use action_runner::identity::INPUT_DIGEST_LABEL;
use action_runner::status::{Phase, Reason};
use action_runner_tests::controllers::play_deployment_controller;
use action_runner_tests::fixtures::chart_repository::{ChartRepository, serve_repository};
use action_runner_tests::fixtures::charts::helm_testchart;
use action_runner_tests::fixtures::noise;
use action_runner_tests::fixtures::oci_registry::{
    OciRegistry, PASSWORD as REGISTRY_PASSWORD, USERNAME as REGISTRY_USER,
};
use action_runner_tests::fixtures::tls_chart_repository::{
    PASSWORD as REPO_PASSWORD, TlsChartRepository, USERNAME as REPO_USER,
};
use action_runner_tests::helm::{HelmBin, parse_yaml, stable_status};
use action_runner_tests::process::{RunnerCommand, RunnerOutput, collect, error_lines};
use action_runner_tests::test_env::TestEnv;
use action_runner_tests::tools::{helm_cmd, repo_root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ListParams};

const PASSWORD: &str = "s3cr3t-Pa55w0rd-never-shown";

/// Everything the run `name` showed, by where: its log (stdout and stderr), its status
/// ConfigMap, its termination message (when given), its output files (when it `wrote`
/// them: the release file and the additional file; else there must be none), and the
/// Events about its owner (the run must be [`OwnedByAJob`]). Each place must hold
/// something: a "never shown" check over an empty one would pass whatever the runner did.
async fn everything_shown(
    env: &TestEnv,
    name: &str,
    out: &RunnerOutput,
    termination: Option<&Path>,
    wrote: bool,
) -> Vec<(String, String)> {
    use k8s_openapi::api::events::v1::Event;
    let mut places = vec![(
        format!("{name}: the log"),
        format!("{}{}", out.stdout, out.stderr),
    )];
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get(name)
        .await
        .unwrap();
    places.push((
        format!("{name}: the status ConfigMap"),
        serde_json::to_string(&cm.data).unwrap(),
    ));
    if let Some(t) = termination {
        places.push((
            format!("{name}: the termination message"),
            std::fs::read_to_string(t).unwrap(),
        ));
    }
    for f in [
        format!("{name}-release.yaml"),
        format!("{name}-additional.yaml"),
    ] {
        match std::fs::read_to_string(env.path(&f)) {
            Ok(text) if wrote => places.push((format!("{name}: output file {f}"), text)),
            Ok(_) => panic!("{name}: a failed run wrote {f}"),
            Err(e) if wrote => panic!("{name}: output file {f}: {e}"),
            Err(_) => {}
        }
    }
    let events: Vec<String> = Api::<Event>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| serde_json::to_string(&e).unwrap())
        .collect();
    places.push((format!("{name}: its Events"), events.join("\n")));
    for (place, text) in &places {
        assert!(
            !text.trim().is_empty(),
            "{place} is empty: nothing to look in"
        );
    }
    places
}

/// What `/proc` showed of one process while a runner ran: its command line and environment,
/// NUL-separated, as the kernel gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    pid: u32,
    cmdline: Vec<u8>,
    environ: Vec<u8>,
}

impl Seen {
    fn argv(&self) -> Vec<String> {
        self.cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
}

/// The parent of every process, from `/proc/<pid>/stat` (its fourth field, after the command
/// name in parentheses, which may itself hold spaces and parentheses).
fn parents() -> std::collections::HashMap<u32, u32> {
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            out.insert(pid, ppid);
        }
    }
    out
}

/// Watches `root` and every process descending from it, every 2 ms until `stop` is set, and
/// returns each distinct (pid, command line, environment) seen. A process that ends between
/// two reads is skipped; one that has exited (a zombie: empty command line) too.
fn watch_processes(
    root: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<Seen>> {
    std::thread::spawn(move || {
        let mut seen: Vec<Seen> = Vec::new();
        loop {
            let done = stop.load(std::sync::atomic::Ordering::SeqCst);
            let parents = parents();
            let mut family = vec![root];
            let mut i = 0;
            while i < family.len() {
                let p = family[i];
                family.extend(parents.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
                i += 1;
            }
            for pid in family {
                let read = |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).ok();
                if let (Some(cmdline), Some(environ)) = (read("cmdline"), read("environ"))
                    && !cmdline.is_empty()
                {
                    let s = Seen {
                        pid,
                        cmdline,
                        environ,
                    };
                    if !seen.contains(&s) {
                        seen.push(s);
                    }
                }
            }
            if done {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// Runs `cmd` to its end while [`watch_processes`] watches it and its children, and records
/// every helm it starts exactly: `RUNNER_HELM_BINARY_PATH` becomes a shell wrapper that writes
/// its arguments and environment (`/proc/self/environ`, what helm inherits through `exec`) to a
/// file of its own, then runs the real helm with them. Polling alone can miss a short helm
/// call on a busy machine (CI did: a `helm pull` from the local registry ended between two
/// reads). Each helm call is in the result as a [`Seen`] whose command line starts with the
/// real helm's path.
async fn run_watched(cmd: &RunnerCommand) -> (RunnerOutput, Vec<Seen>) {
    let helm = cmd.env["RUNNER_HELM_BINARY_PATH"].clone();
    let calls = tempfile::tempdir().unwrap();
    let wrapper = calls.path().join("helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nf=$(mktemp {dir}/call.XXXXXX)\nprintf '%s\\0' {helm:?} \"$@\" >\"$f.cmdline\"\n\
             cat /proc/$$/environ >\"$f.environ\"\nexec {helm:?} \"$@\"\n",
            dir = calls.path().display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cmd = cmd
        .clone()
        .var("RUNNER_HELM_BINARY_PATH", Some(wrapper.to_str().unwrap()));
    let child = cmd.spawn().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = watch_processes(child.id().unwrap(), stop.clone());
    let out = collect(child).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut seen = tokio::task::spawn_blocking(move || watch.join().unwrap())
        .await
        .unwrap();
    for entry in std::fs::read_dir(calls.path()).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "cmdline") {
            seen.push(Seen {
                pid: 0,
                cmdline: std::fs::read(&path).unwrap(),
                environ: std::fs::read(path.with_extension("environ")).unwrap_or_default(),
            });
        }
    }
    (out.unwrap(), seen)
}

/// No process of the run (the runner, every helm it started) had `password`, in any form the
/// redactor knows, on its command line or in its environment; and helm was seen pulling, and
/// logging in when `login` says how (`["repo", "add"]` or `["registry", "login"]`, with
/// `--password-stdin`): an assertion over processes never seen would prove nothing.
fn assert_no_credential_in_processes(
    seen: &[Seen],
    helm: &Path,
    password: &str,
    login: Option<[&str; 2]>,
) {
    let helm = helm.to_str().unwrap();
    let helms: Vec<Vec<String>> = seen
        .iter()
        .map(Seen::argv)
        .filter(|a| a.first().map(String::as_str) == Some(helm))
        .collect();
    if let Some(login) = login {
        assert!(
            helms.iter().any(|a| a.get(1..3).is_some_and(|x| x == login)
                && a.iter().any(|x| x == "--password-stdin")),
            "helm {login:?} --password-stdin was seen running: {helms:?}"
        );
    }
    assert!(
        helms.iter().any(|a| a.get(1).is_some_and(|x| x == "pull")),
        "helm pull was seen running: {helms:?}"
    );
    let forms = action_runner_helm::redact::forms_of(password);
    for s in seen {
        for (what, bytes) in [("command line", &s.cmdline), ("environment", &s.environ)] {
            let text = String::from_utf8_lossy(bytes);
            for form in &forms {
                assert!(
                    !text.contains(form.as_str()),
                    "the {what} of process {} ({:?}) holds {form:?}",
                    s.pid,
                    s.argv()
                );
            }
        }
    }
}

/// A runner run as a Job's pod is: with an owner (`RUNNER_CONTEXT_PLATFORM_OWNER_*`, the Job
/// `name`), on which it records its Events.
trait OwnedByAJob {
    fn owned_by_a_job(self, name: &str) -> Self;
}

impl OwnedByAJob for RunnerCommand {
    fn owned_by_a_job(self, name: &str) -> Self {
        let uid = format!("00000000-0000-4000-8000-{:012x}", name.len());
        self.var("RUNNER_CONTEXT_PLATFORM_OWNER_NAME", Some(name))
            .var("RUNNER_CONTEXT_PLATFORM_OWNER_UID", Some(&uid))
    }
}

/// Every form of each of `texts` and of each of their lines, as the redactor knows them.
fn forms_of_all(texts: &[&str]) -> Vec<String> {
    texts
        .iter()
        .flat_map(|t| std::iter::once(*t).chain(t.lines()))
        .flat_map(action_runner_helm::redact::forms_of)
        .collect()
}

/// No `form` and no `needle` in any of `places` (as [`everything_shown`] returns
/// them), which must not be empty.
fn assert_never_in(places: &[(String, String)], forms: &[String], needles: &[&str]) {
    assert!(!places.is_empty() && !forms.is_empty(), "nothing to check");
    for (place, text) in places {
        for form in forms
            .iter()
            .map(String::as_str)
            .chain(needles.iter().copied())
        {
            assert!(!text.contains(form), "{place} shows {form:?}: {text}");
        }
    }
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or_default()
}

fn image(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

const WEBAPP_TEMPLATE: &str = "host: {{ template \\\"webapp.fullname\\\" . }}.{{ .Release.Namespace }}.svc\\nport: {{ .Values.service.port }}\\nreplicas: {{ .Values.replicaCount }}\\nrevision: {{ .Release.Revision }}\\n";

async fn install_from_repository_then_upgrade_with_reuse_and_reset_values(h: HelmBin) {
    let env = TestEnv::bare("helm-install").await;
    let repo = &ChartRepository::shared().url;
    let manifest = format!(
        "name: shop\nchart: {{name: webapp, repo: \"{repo}\", version: 0.1.0}}\nwait: false\n\
         values:\n  replicaCount: 2\n  podAnnotations: {{db-password: \"{PASSWORD}\"}}\n\
         output:\n  additional:\n    goTemplate: \"{WEBAPP_TEMPLATE}\"\n"
    );
    let out = env.run_helm(h, "install", "install", &manifest).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("install").await.unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert_eq!(status.runner, "helm");
    assert_eq!(
        stable_status(&status.runner_status),
        serde_json::json!({"phase": "Installed", "helmVersion": h.version(), "adopted": false,
            "release": {"name": "shop", "namespace": env.ns, "revision": 1, "status": "deployed"}})
    );
    let msg = status.message.as_str();
    assert!(
        msg.contains("\"shop\" installed successfully")
            && msg.contains(&env.ns)
            && msg.contains("revision 1"),
        "{msg}"
    );
    env.assert_never_shown("install", &out, PASSWORD).await;

    // The chart's objects and Helm's release record are in the API server.
    let d = env
        .deployment("shop-webapp")
        .await
        .expect("Deployment shop-webapp");
    assert_eq!(replicas(&d), 2);
    assert!(
        Api::<Service>::namespaced(env.client.clone(), &env.ns)
            .get_opt("shop-webapp")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        env.helm_record_names::<Secret>("shop").await,
        vec!["sh.helm.release.v1.shop.v1"]
    );

    // Both outputs, as documents; the additional one uses the chart's named template.
    let ns = &env.ns;
    assert_eq!(
        env.release_output("install"),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  chart:\n    name: webapp\n    repo: {repo}\n    version: 0.1.0\n  name: shop\n  namespace: {ns}\n"
        ))
    );
    assert_eq!(
        env.additional_output("install").unwrap(),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  host: shop-webapp.{ns}.svc\n  port: 80\n  replicas: 2\n  revision: 1\n"
        ))
    );

    // Upgrade with reuseValues: the release file from the install, a new value, a new chart
    // version; the old values are kept.
    let release_file = env.path("install-release.yaml");
    let manifest = format!(
        "chart: {{version: 0.2.0}}\nwait: false\nreuseValues: true\nvalues: {{image: {{tag: \"1.27\"}}}}\n\
         output: {{additional: {{goTemplate: \"{WEBAPP_TEMPLATE}\"}}}}\n"
    );
    let out = env
        .helm_runner(h, "upgrade-reuse", "upgrade", &manifest)
        .await
        .on_release(&release_file)
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("upgrade-reuse").await.unwrap();
    assert_eq!(
        stable_status(&status.runner_status),
        serde_json::json!({"phase": "Upgraded", "helmVersion": h.version(), "adopted": false,
            "release": {"name": "shop", "namespace": env.ns, "revision": 2, "status": "deployed"}})
    );
    assert!(
        status.message.contains("upgraded successfully"),
        "{status:?}"
    );
    assert!(status.message.as_str().contains("revision 2"), "{status:?}");
    let d = env.deployment("shop-webapp").await.unwrap();
    assert_eq!(replicas(&d), 2, "replicaCount reused");
    assert!(image(&d).ends_with(":1.27"), "{}", image(&d));
    assert_eq!(
        env.release_output("upgrade-reuse"),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  chart:\n    name: webapp\n    repo: {repo}\n    version: 0.2.0\n  name: shop\n  namespace: {ns}\n"
        ))
    );
    assert_eq!(
        env.additional_output("upgrade-reuse").unwrap(),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  host: shop-webapp.{ns}.svc\n  port: 80\n  replicas: 2\n  revision: 2\n"
        ))
    );
    env.assert_never_shown("upgrade-reuse", &out, PASSWORD)
        .await;

    // Upgrade with resetValues and maxHistory 2: back to the chart's values; Helm keeps only
    // the last two revisions.
    let manifest =
        "wait: false\nresetValues: true\nmaxHistory: 2\nvalues: {service: {port: 8080}}\n";
    let out = env
        .helm_runner(h, "upgrade-reset", "upgrade", manifest)
        .await
        .on_release(&env.path("upgrade-reuse-release.yaml"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = env.deployment("shop-webapp").await.unwrap();
    assert_eq!(replicas(&d), 1, "replicaCount reset to the chart's 1");
    assert!(!image(&d).ends_with(":1.27"), "{}", image(&d));
    assert!(
        env.status("upgrade-reset")
            .await
            .unwrap()
            .message
            .as_str()
            .contains("revision 3")
    );
    assert_eq!(
        env.helm_record_names::<Secret>("shop").await,
        vec!["sh.helm.release.v1.shop.v2", "sh.helm.release.v1.shop.v3"]
    );
    assert!(
        env.additional_output("upgrade-reset").is_none(),
        "no goTemplate, no additional file"
    );
}

async fn generate_name_configmap_driver_values_file_and_storage_outputs(h: HelmBin) {
    let env = TestEnv::bare("helm-genname").await;
    let repo = &ChartRepository::shared().url;
    let values = env.file("values.yaml", &format!("password: \"{PASSWORD}\"\n"));
    let manifest = format!(
        "generateName: true\nchart: {{name: chart-with-secret, repo: \"{repo}\"}}\n\
         valuesFromFile: {}\n\
         output:\n  helmRelease: {{useHelmReleaseStorage: true}}\n  additional:\n    useHelmTemplateStorage: true\n    goTemplate: \"name: {{{{ .Release.Name }}}}\"\n",
        values.display()
    );
    let out = env
        .helm_runner(h, "gen", "install", &manifest)
        .await
        .var("RUNNER_HELM_DRIVER", Some("configmap"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    env.assert_never_shown("gen", &out, PASSWORD).await;

    // Helm generated `<chart>-<unix time>`; read it back from the release storage output.
    let release = env.release_output("gen");
    let name = release["backend"]["context"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with("chart-with-secret-"), "{release}");
    let ns = &env.ns;
    assert_eq!(
        release,
        parse_yaml(&format!(
            "backend:\n  context:\n    chartLocation: {repo}\n    driver: configmap\n    name: {name}\n    namespace: {ns}\nvalue: null\n"
        ))
    );
    assert_eq!(
        env.additional_output("gen").unwrap(),
        parse_yaml(&format!(
            "backend:\n  context:\n    goTemplate: 'name: {{{{ .Release.Name }}}}'\n    release:\n      driver: configmap\n      name: {name}\n      namespace: {ns}\nvalue: null\n"
        ))
    );
    // The configmap driver stores the release as a ConfigMap, not a Secret.
    assert_eq!(
        env.helm_record_names::<ConfigMap>(&name).await,
        vec![format!("sh.helm.release.v1.{name}.v1")]
    );
    assert!(env.helm_record_names::<Secret>(&name).await.is_empty());
    // The chart's own objects.
    let secret = Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .get_opt("test-secret")
        .await
        .unwrap();
    assert!(secret.is_some());
}

async fn local_chart_dir_and_archive(h: HelmBin) {
    let env = TestEnv::bare("helm-local").await;
    // Helm's test chart directory, read from the module cache in place.
    let dir = helm_testchart("chart-with-secret");
    let out = env
        .run_helm(
            h,
            "dir",
            "install",
            &format!("name: from-dir\nchart: {{name: {}}}\n", dir.display()),
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        env.release_output("dir"),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  chart:\n    name: chart-with-secret\n    repo: \"\"\n    version: 0.0.1\n  name: from-dir\n  namespace: {}\n",
            env.ns
        ))
    );
    // A chart archive made by `helm package` (Helm's standard chart).
    let archive = ChartRepository::shared().archive("webapp-0.1.0.tgz");
    let out = env
        .run_helm(
            h,
            "tgz",
            "install",
            &format!(
                "name: from-tgz\nchart: {{name: {}}}\nwait: false\n",
                archive.display()
            ),
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        env.helm_record_names::<Secret>("from-tgz").await,
        vec!["sh.helm.release.v1.from-tgz.v1"]
    );
    // Where Helm 4 differs: it applies the chart's objects with server-side apply (its
    // `--server-side` defaults to true for an install), Helm 3 with client-side create/patch.
    // The runner keeps each helm's default; the object's managedFields tell which was used.
    let d = env.deployment("from-tgz-webapp").await.unwrap();
    let operations: Vec<(String, String)> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            (
                f.manager.unwrap_or_default(),
                f.operation.unwrap_or_default(),
            )
        })
        .collect();
    let applied = operations
        .iter()
        .any(|(m, op)| m == "helm" && op == "Apply");
    assert_eq!(applied, h == HelmBin::V4, "{h:?}: {operations:?}");
}

async fn failing_template_exits_1_with_helms_message(h: HelmBin) {
    let env = TestEnv::bare("helm-fail").await;
    let chart = helm_testchart("chart-with-template-with-invalid-yaml");
    let out = env
        .run_helm(
            h,
            "bad-yaml",
            "install",
            &format!("name: broken\nchart: {{name: {}}}\n", chart.display()),
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("bad-yaml").await.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    let msg = status.message.as_str();
    assert!(msg.contains("YAML parse error"), "{msg}");
    assert!(
        error_lines(&out.stderr)
            .join("\n")
            .contains("YAML parse error")
    );
    assert!(env.helm_record_names::<Secret>("broken").await.is_empty());

    // A chart that fails with a message built from a value: the value is redacted everywhere.
    let out = env
        .run_helm(
            h,
            "boom",
            "install",
            &format!(
                "name: boom\nchart: {{name: boom, repo: \"{}\"}}\nvalues: {{boom: true, password: \"{PASSWORD}\"}}\n",
                ChartRepository::shared().url
            ),
        ).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let msg = env
        .status("boom")
        .await
        .unwrap()
        .message
        .as_str()
        .to_string();
    assert!(msg.contains("cannot use password <redacted>"), "{msg}");
    env.assert_never_shown("boom", &out, PASSWORD).await;
}

async fn missing_chart_version_exits_1(h: HelmBin) {
    let env = TestEnv::bare("helm-missing").await;
    let out = env
        .run_helm(
            h,
            "missing",
            "install",
            &format!(
                "name: nope\nchart: {{name: webapp, repo: \"{}\", version: 9.9.9}}\n",
                ChartRepository::shared().url
            ),
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let msg = env
        .status("missing")
        .await
        .unwrap()
        .message
        .as_str()
        .to_string();
    assert!(msg.contains("9.9.9") && msg.contains("not found"), "{msg}");
}

async fn dry_run_stores_nothing(h: HelmBin) {
    let env = TestEnv::bare("helm-dry").await;
    let out = env
        .helm_runner(
            h,
            "dry",
            "install",
            &format!(
                "name: dry\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nvalues: {{password: \"{PASSWORD}\"}}\n\
                 output: {{additional: {{goTemplate: \"{WEBAPP_TEMPLATE}\"}}}}\n",
                ChartRepository::shared().url
            ),
        )
        .await
        .var("RUNNER_CONTEXT_DRY_RUN", Some("true"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("dry").await.unwrap();
    assert!(status.dry_run);
    assert!(status.message.as_str().contains("dry run"), "{status:?}");
    assert!(status.message.contains("would be installed"), "{status:?}");
    assert!(env.helm_record_names::<Secret>("dry").await.is_empty());
    assert!(env.deployment("dry-webapp").await.is_none());
    env.assert_never_shown("dry", &out, PASSWORD).await;
}

async fn bad_input_exits_2_and_writes_nothing(h: HelmBin) {
    let env = TestEnv::bare("helm-bad").await;
    let good = format!(
        "name: bad\nchart: {{name: webapp, repo: \"{}\"}}\nwait: false\n",
        ChartRepository::shared().url
    );
    let values = env.file("v.yaml", "a: b\n");
    type Case<'a> = (&'a str, String, Vec<(&'a str, Option<&'a str>)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no-command",
            good.clone(),
            vec![("RUNNER_COMMAND", None)],
            "RUNNER_COMMAND is required",
        ),
        (
            "bad-command",
            good.clone(),
            vec![("RUNNER_COMMAND", Some("delete"))],
            "is not a command: use install, upgrade, uninstall or rollback",
        ),
        (
            "no-release-path",
            good.clone(),
            vec![("RUNNER_COMMAND", Some("upgrade"))],
            "RUNNER_HELM_RELEASE_PATH",
        ),
        (
            "no-release-path-uninstall",
            good.clone(),
            vec![("RUNNER_COMMAND", Some("uninstall"))],
            "RUNNER_HELM_RELEASE_PATH is required when RUNNER_COMMAND=uninstall",
        ),
        (
            "no-release-path-rollback",
            good.clone(),
            vec![("RUNNER_COMMAND", Some("rollback"))],
            "RUNNER_HELM_RELEASE_PATH is required when RUNNER_COMMAND=rollback",
        ),
        (
            "bad-release-path",
            good.clone(),
            vec![
                ("RUNNER_COMMAND", Some("upgrade")),
                (
                    "RUNNER_HELM_RELEASE_PATH",
                    Some("/nonexistent/release.yaml"),
                ),
            ],
            "/nonexistent/release.yaml (RUNNER_HELM_RELEASE_PATH): cannot read",
        ),
        (
            "missing-second-values-file",
            format!(
                "{good}values: {{a: c}}\nvaluesFromFile: [{}, /nonexistent/v.yaml]\n",
                values.display()
            ),
            vec![],
            "valuesFromFile /nonexistent/v.yaml: cannot read",
        ),
        (
            "bad-values-from-kind",
            format!("{good}valuesFrom: [{{kind: Pod, name: x}}]\n"),
            vec![],
            "Pod",
        ),
        (
            "missing-password-file",
            format!(
                "name: bad\nchart: {{name: webapp, repo: \"{}\", auth: {{usernameFile: {}, passwordFile: /nonexistent/password, allowPlainHttp: true}}}}\n",
                ChartRepository::shared().url,
                values.display()
            ),
            vec![],
            "chart.auth.passwordFile /nonexistent/password: cannot read",
        ),
        (
            "unknown-field",
            format!("{good}valuez: {{}}\n"),
            vec![],
            "valuez",
        ),
    ];
    for (name, manifest, vars, needle) in cases {
        let mut cmd = env.helm_runner(h, name, "install", &manifest).await;
        for (k, v) in vars {
            cmd = cmd.var(k, v);
        }
        let out = cmd.run().await.unwrap();
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        let err = error_lines(&out.stderr).join("\n");
        assert!(err.contains(needle), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
    let unknown = env
        .helm_runner(
            h,
            "unknown-field-2",
            "install",
            &format!("{good}valuez: {{}}\n"),
        )
        .await;
    let out = unknown.run().await.unwrap();
    assert!(
        error_lines(&out.stderr).join("\n").contains("line 4"),
        "{}",
        out.stderr
    );
    assert!(env.helm_record_names::<Secret>("bad").await.is_empty());
    assert!(env.deployment("bad-webapp").await.is_none());
}

/// Helm 4's apply options and `takeOwnership`, against a ServiceAccount the chart would make
/// that exists already without Helm's ownership annotations: without `takeOwnership` helm
/// refuses the install (exit 1, naming the object); with it the release adopts the object.
/// `serverSide: false` applies client-side (the Deployment's managed fields hold no `Apply`),
/// `serverSide: true` server-side; under Helm 3, which has no server-side apply, `serverSide`
/// is exit 2 naming the field and the version. `forceConflicts` without server-side apply is
/// exit 2 under both.
async fn apply_options_take_ownership_and_server_side(h: HelmBin) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let env = TestEnv::bare("helm-apply").await;
    let chart = format!(
        "chart: {{name: webapp, repo: \"{}\"}}\nwait: false\n",
        ChartRepository::shared().url
    );
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
    for name in ["refused-webapp", "adopted-webapp"] {
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        sas.create(&Default::default(), &sa).await.unwrap();
    }

    let out = env
        .run_helm(h, "refused", "install", &format!("name: refused\n{chart}"))
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let err = error_lines(&out.stderr).join("\n");
    assert!(err.contains("refused-webapp"), "{err}");

    let out = env
        .run_helm(
            h,
            "adopted",
            "install",
            &format!("name: adopted\n{chart}takeOwnership: true\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sa = sas.get("adopted-webapp").await.unwrap();
    let annotations = sa.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some("adopted")
    );

    let out = env
        .run_helm(
            h,
            "conflicts",
            "install",
            &format!("name: conflicts\n{chart}serverSide: false\nforceConflicts: true\n"),
        )
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        error_lines(&out.stderr)
            .join("\n")
            .contains("forceConflicts: true needs server-side apply"),
        "{}",
        out.stderr
    );

    let applied = |d: &Deployment| {
        d.metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|f| f.operation.as_deref() == Some("Apply"))
    };
    for (name, server_side) in [("client", false), ("server", true)] {
        let out = env
            .run_helm(
                h,
                name,
                "install",
                &format!("name: {name}\n{chart}serverSide: {server_side}\n"),
            )
            .await;
        if h == HelmBin::V3 {
            assert_eq!(out.code, 2, "{}", out.stderr);
            let err = error_lines(&out.stderr).join("\n");
            assert!(err.contains("serverSide needs Helm 4 or later"), "{err}");
            assert!(env.helm_record_names::<Secret>(name).await.is_empty());
            continue;
        }
        assert_eq!(out.code, 0, "{}", out.stderr);
        let d = env.deployment(&format!("{name}-webapp")).await.unwrap();
        assert_eq!(
            applied(&d),
            server_side,
            "{name}: {:?}",
            d.metadata.managed_fields
        );
    }
}

/// The release-size preflight, with a chart whose `files/blob.bin` does not compress: at 640 KiB
/// the record Helm stores is about 84% of the 1 MiB a Secret holds, so the install succeeds with
/// a warning in the log and the status (`releaseSize`); at 800 KiB it would be over the limit,
/// so the run is exit 2 before helm writes anything, naming the size, the limit and the file.
async fn release_size_preflight_warns_then_refuses(h: HelmBin) {
    let env = TestEnv::bare("helm-size").await;
    let chart = |name: &str, kib: usize| {
        let dir = env.path(name);
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::create_dir_all(dir.join("files")).unwrap();
        std::fs::write(
            dir.join("Chart.yaml"),
            "apiVersion: v2\nname: sized\nversion: 0.1.0\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("templates/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"{{ .Release.Name }}-data\"}\n\
             data: {size: \"{{ len (.Files.Get \"files/blob.bin\") }}\"}\n",
        )
        .unwrap();
        std::fs::write(dir.join("files/blob.bin"), noise(kib * 1024, kib as u64)).unwrap();
        dir
    };
    let near = chart("near", 640);
    let out = env
        .run_helm(
            h,
            "near",
            "install",
            &format!(
                "name: near\nchart: {{name: {}}}\nwait: false\n",
                near.display()
            ),
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("the release record Helm would store")
            && out.stderr.contains("\"level\":\"WARN\""),
        "{}",
        out.stderr
    );
    let size = env.status("near").await.unwrap().runner_status["releaseSize"].clone();
    let percent = size["percent"].as_u64().unwrap();
    assert!((80..100).contains(&percent), "{size}");
    assert!(
        size["warning"]
            .as_str()
            .is_some_and(|w| w.contains("files/blob.bin")),
        "{size}"
    );

    let over = chart("over", 800);
    let out = env
        .run_helm(
            h,
            "over",
            "install",
            &format!(
                "name: over\nchart: {{name: {}}}\nwait: false\n",
                over.display()
            ),
        )
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let err = error_lines(&out.stderr).join("\n");
    assert!(
        err.contains("of the 1.0 MiB a Secret holds")
            && err.contains("largest parts: files/blob.bin")
            && err.contains("over the limit"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(env.helm_record_names::<Secret>("over").await.is_empty());
}

/// `chart.verify` with a keyring, on a local chart archive signed here (a fresh OpenPGP key made
/// with gpg, `helm package --sign`): the signed archive installs; the same archive with bytes
/// appended (its `.prov`'s checksum no longer matches) is exit 2 naming the signature check, as
/// is a keyring without the signer's key; `verify` without `keyring`, and `verify` on a chart
/// directory, are exit 2 before anything runs. The same from a chart repository (`helm pull
/// --verify`): the signed chart installs; the tampered archive beside the signer's `.prov`, and
/// a repository serving no `.prov`, are exit 2 naming the signature check. Nothing is stored for
/// the refused ones.
async fn a_signed_chart_installs_and_a_tampered_one_is_refused(h: HelmBin) {
    let env = TestEnv::bare("helm-signed").await;
    let dir = env.path("signing");
    let gnupg = dir.join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str], out: Option<&str>| {
        let o = std::process::Command::new("gpg")
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .env("GNUPGHOME", &gnupg)
            .output()
            .expect("gpg (Debian's gnupg, hack/install-tools.sh installs it)");
        assert!(
            o.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if let Some(file) = out {
            std::fs::write(dir.join(file), &o.stdout).unwrap();
        }
    };
    let key = "KAR Chart Signer <signer@kar.test>";
    gpg(&["--quick-gen-key", key, "rsa2048", "sign", "never"], None);
    gpg(&["--export"], Some("pubring.gpg"));
    gpg(&["--export-secret-keys"], Some("secring.gpg"));
    helm_cmd(&["create", "webapp"], &dir).unwrap();
    helm_cmd(
        &[
            "package",
            "--sign",
            "--key",
            "KAR Chart Signer",
            "--keyring",
            "secring.gpg",
            "webapp",
        ],
        &dir,
    )
    .unwrap();
    let archive = dir.join("webapp-0.1.0.tgz");
    assert!(dir.join("webapp-0.1.0.tgz.prov").is_file());
    let pubring = dir.join("pubring.gpg");
    let manifest = |name: &str, chart: &Path, extra: &str| {
        format!(
            "name: {name}\nchart: {{name: {}{extra}}}\nwait: false\n",
            chart.display()
        )
    };
    let verified = format!(", verify: true, keyring: {}", pubring.display());

    // The same archive, a few bytes longer, beside the same .prov.
    let tampered_dir = env.path("tampered");
    std::fs::create_dir_all(&tampered_dir).unwrap();
    let tampered = tampered_dir.join("webapp-0.1.0.tgz");
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.extend_from_slice(b"\0\0\0\0");
    std::fs::write(&tampered, bytes).unwrap();
    std::fs::copy(
        dir.join("webapp-0.1.0.tgz.prov"),
        tampered_dir.join("webapp-0.1.0.tgz.prov"),
    )
    .unwrap();
    // A keyring without the signer's key.
    let other = env.path("other-gnupg");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let o = std::process::Command::new("gpg")
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args([
            "--quick-gen-key",
            "Someone Else <else@kar.test>",
            "rsa2048",
            "sign",
            "never",
        ])
        .env("GNUPGHOME", &other)
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = std::process::Command::new("gpg")
        .args(["--batch", "--export"])
        .env("GNUPGHOME", &other)
        .output()
        .unwrap();
    let wrong_ring = env.file("wrong-ring.gpg", "");
    std::fs::write(&wrong_ring, o.stdout).unwrap();
    let wrong = format!(", verify: true, keyring: {}", wrong_ring.display());

    // The same through a chart repository, where `helm pull --verify` fetches the archive's URL
    // plus `.prov`: a repository serving `archive`, with the signer's `.prov` beside it or not.
    let serve = |name: &str, archive: &Path, with_prov: bool| {
        let root = env.path(name);
        std::fs::create_dir_all(root.join("served")).unwrap();
        std::fs::copy(archive, root.join("served/webapp-0.1.0.tgz")).unwrap();
        if with_prov {
            std::fs::copy(
                dir.join("webapp-0.1.0.tgz.prov"),
                root.join("served/webapp-0.1.0.tgz.prov"),
            )
            .unwrap();
        }
        serve_repository(&root)
    };
    let from_repo = |name: &str, url: &str, extra: &str| {
        format!(
            "name: {name}\nchart: {{name: webapp, repo: \"{url}\", version: 0.1.0{extra}}}\n\
             wait: false\n"
        )
    };
    let signed_repo = serve("repo-signed", &archive, true);
    for (name, m) in [
        ("signed", manifest("signed", &archive, &verified)),
        ("from-repo", from_repo("from-repo", &signed_repo, &verified)),
    ] {
        let out = env.run_helm(h, name, "install", &m).await;
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
    }
    let tampered_repo = serve("repo-tampered", &tampered, true);
    let unsigned_repo = serve("repo-unsigned", &archive, false);

    for (name, m, needle) in [
        (
            "repo-tampered",
            from_repo("repo-tampered", &tampered_repo, &verified),
            "chart.verify: the chart's signature check failed",
        ),
        (
            "repo-unsigned",
            from_repo("repo-unsigned", &unsigned_repo, &verified),
            "chart.verify: the chart's signature check failed",
        ),
        (
            "tampered",
            manifest("tampered", &tampered, &verified),
            "chart.verify: the chart's signature check failed",
        ),
        (
            "wrong-key",
            manifest("wrong-key", &archive, &wrong),
            "chart.verify: the chart's signature check failed",
        ),
        (
            "no-keyring",
            manifest("no-keyring", &archive, ", verify: true"),
            "chart.verify needs chart.keyring",
        ),
        (
            "directory",
            manifest("directory", &dir.join("webapp"), &verified),
            "is a directory, which carries no signature",
        ),
    ] {
        let out = env.run_helm(h, name, "install", &m).await;
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        let err = error_lines(&out.stderr).join("\n");
        assert!(err.contains(needle), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            env.helm_record_names::<Secret>(name).await.is_empty(),
            "{name}"
        );
    }
}

/// Registry credentials from the cluster, against the TLS OCI registry of the other tests: a
/// `kubernetes.io/dockerconfigjson` Secret named by `chart.auth.secretName` (its entry by
/// `auth`), and a ServiceAccount's `imagePullSecrets` (`fromServiceAccount`: a missing one first,
/// then one with `username`/`password` for another registry, then the right one). The password
/// is never shown. A Secret without an entry for the registry, a missing Secret and a Secret of
/// another type are exit 2 naming the Secret and the host, with nothing stored. Then the same
/// for an HTTPS chart repository with basic auth (`chart.repo`), its entry keyed by its URL.
async fn registry_credentials_from_the_cluster(h: HelmBin) {
    use base64::Engine;
    use kube::api::PostParams;
    let env = TestEnv::bare("helm-regcred").await;
    let r = OciRegistry::tls();
    fn b64(t: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(t)
    }
    async fn docker_secret(env: &TestEnv, name: &str, auths: serde_json::Value) {
        let config = serde_json::json!({"auths": auths}).to_string();
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": b64(&config)},
        }))
        .unwrap();
        Api::<Secret>::namespaced(env.client.clone(), &env.ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }
    let pair = format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}");
    docker_secret(
        &env,
        "regcred",
        serde_json::json!({r.host.clone(): {"auth": b64(&pair)}}),
    )
    .await;
    docker_secret(
        &env,
        "elsewhere",
        serde_json::json!({"https://registry.example.com/v1/": {"username": "u", "password": "p"}}),
    )
    .await;
    create_values_object(&env, "Secret", "opaque", "values.yaml", "a: b\n").await;
    let sa: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "puller"},
            "imagePullSecrets": [{"name": "absent"}, {"name": "elsewhere"}, {"name": "regcred"}],
        }))
        .unwrap();
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let manifest = |name: &str, auth: &str| {
        format!(
            "name: {name}\nchart: {{name: webapp, repo: \"oci://{}/charts\", version: 0.1.0, auth: {{{auth}}}, caFile: {}}}\nwait: false\n",
            r.host,
            r.ca_file.as_ref().unwrap().display()
        )
    };
    for (name, auth) in [
        ("from-secret", "secretName: regcred"),
        ("from-sa", "fromServiceAccount: puller"),
    ] {
        let out = env
            .run_helm(h, name, "install", &manifest(name, auth))
            .await;
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        assert!(
            env.deployment(&format!("{name}-webapp")).await.is_some(),
            "{name}"
        );
        env.assert_never_shown(name, &out, REGISTRY_PASSWORD).await;
    }
    let ns = &env.ns;
    for (name, auth, needle) in [
        (
            "no-entry",
            "secretName: elsewhere",
            format!(
                "chart.auth.secretName: no credentials for {} in Secret {ns}/elsewhere",
                r.host
            ),
        ),
        (
            "missing",
            "secretName: absent",
            format!("chart.auth.secretName: Secret {ns}/absent not found"),
        ),
        (
            "opaque",
            "secretName: opaque",
            format!(
                "chart.auth.secretName: Secret {ns}/opaque is not of type kubernetes.io/dockerconfigjson"
            ),
        ),
    ] {
        let out = env
            .run_helm(h, name, "install", &manifest(name, auth))
            .await;
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        let err = error_lines(&out.stderr).join("\n");
        assert!(err.contains(&needle), "{name}: {err}");
        assert!(
            env.helm_record_names::<Secret>(name).await.is_empty(),
            "{name}"
        );
    }

    // An HTTPS chart repository (basic auth, a CA of its own) takes the same Secret's entry for
    // its host, written as a URL.
    let repo = TlsChartRepository::shared();
    docker_secret(
        &env,
        "repocred",
        serde_json::json!({format!("{}/", repo.url): {"username": REPO_USER, "password": REPO_PASSWORD}}),
    )
    .await;
    let out = env
        .run_helm(
            h,
            "from-repo",
            "install",
            &format!(
                "name: from-repo\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0, auth: {{secretName: repocred}}, caFile: {}}}\nwait: false\n",
                repo.url,
                repo.ca_file.display()
            ),
        )
        .await;
    assert_eq!(out.code, 0, "from-repo: {}", out.stderr);
    assert!(env.deployment("from-repo-webapp").await.is_some());
    env.assert_never_shown("from-repo", &out, REPO_PASSWORD)
        .await;
}

/// The examples shipped in `cmd/helm-runner/example-input/` (install, upgrade, rollback,
/// uninstall), with the chart repository URL and namespace of this test.
async fn shipped_examples_install_then_upgrade(h: HelmBin) {
    let env = TestEnv::bare("helm-example").await;
    let example = |name: &str| {
        std::fs::read_to_string(repo_root().join("cmd/helm-runner/example-input").join(name))
            .unwrap()
            .replace("http://127.0.0.1:8879", &ChartRepository::shared().url)
            .replace("namespace: helm-example", &format!("namespace: {}", env.ns))
    };
    let out = env
        .run_helm(h, "example-install", "install", &example("install.yaml"))
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ns = &env.ns;
    assert_eq!(
        env.release_output("example-install"),
        parse_yaml(&example("helm-release.yaml"))
    );
    assert_eq!(
        env.additional_output("example-install").unwrap(),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  host: shop-webapp.{ns}.svc\n  port: 80\n  replicas: 2\n"
        ))
    );
    let release = env.file("example-release.yaml", &example("helm-release.yaml"));
    let out = env
        .helm_runner(h, "example-upgrade", "upgrade", &example("upgrade.yaml"))
        .await
        .on_release(&release)
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        env.additional_output("example-upgrade").unwrap(),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  host: shop-webapp.{ns}.svc\n  revision: 2\n"
        ))
    );
    let d = env.deployment("shop-webapp").await.unwrap();
    assert_eq!(replicas(&d), 2);
    assert!(image(&d).ends_with(":1.27"));

    // Back to the install's revision, then uninstalled.
    let out = env
        .run_helm_on(
            h,
            "example-rollback",
            "rollback",
            &example("rollback.yaml"),
            "example-release.yaml",
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!image(&env.deployment("shop-webapp").await.unwrap()).ends_with(":1.27"));
    assert_eq!(
        env.release_output("example-rollback"),
        parse_yaml(&example("helm-release.yaml"))
    );
    let out = env
        .run_helm_on(
            h,
            "example-uninstall",
            "uninstall",
            &example("uninstall.yaml"),
            "example-rollback-release.yaml",
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.deployment("shop-webapp").await.is_none());
    assert!(env.helm_record_statuses("shop").await.is_empty());
}

/// `wait: true` runs Helm with `--wait`: the install ends only once the Deployment's rollout
/// is done. No kubelet runs here, so the test plays the Deployment controller, finishing the
/// rollout 1 s after it sees it. Without a controller the rollout never ends and the run fails
/// when `RUNNER_TIMEOUT` (Helm's `--timeout`) runs out, with Helm's reason.
async fn wait_true_waits_for_the_rollout(h: HelmBin) {
    let env = TestEnv::bare("helm-wait").await;
    let controller = tokio::spawn(play_deployment_controller(
        env.client.clone(),
        env.ns.clone(),
        Duration::from_secs(1),
    ));
    let input = |name: &str| {
        format!(
            "name: {name}\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nwait: true\n",
            ChartRepository::shared().url
        )
    };
    let out = env.run_helm(h, "ready", "install", &input("ready")).await;
    controller.abort();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = env.deployment("ready-webapp").await.unwrap();
    let observed = d.status.and_then(|s| s.observed_generation);
    assert_eq!(
        observed, d.metadata.generation,
        "the run ended before the rollout"
    );

    let out = env
        .helm_runner(h, "stuck", "install", &input("stuck"))
        .await
        .var("RUNNER_TIMEOUT", Some("3s"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("stuck").await.unwrap();
    assert_eq!(status.phase, Phase::Failed, "{status:?}");
    let message = status.message.as_str();
    // Two ways to the end, both failures that leave the release recorded as failed: the
    // runner's RUNNER_TIMEOUT usually runs out first (helm's own --timeout, the same length,
    // starts a little later), and the runner stops helm with SIGTERM; or helm's runs out first
    // and helm fails with its own reason.
    if status.reason == Some(Reason::DeadlineExceeded) {
        assert!(
            message.contains("RUNNER_TIMEOUT") && message.contains("helm stopped on SIGTERM"),
            "{message}"
        );
    } else {
        assert!(message.contains("context deadline exceeded"), "{message}");
    }
    assert_eq!(
        env.helm_record_statuses("stuck").await,
        vec![(1, "failed".to_string())],
        "Helm's record: failed, not pending-install"
    );
}

/// SIGTERM while helm installs (waiting for a rollout that never comes): the status said
/// `Installing` while helm ran; the runner forwards SIGTERM to helm, which records the release
/// as failed (not `pending-install`, which would block the next attempt), and the run reports
/// `Cancelled` and exits 143.
async fn sigterm_mid_install_stops_helm_and_leaves_the_release_failed(h: HelmBin) {
    let env = TestEnv::bare("helm-term").await;
    let manifest = format!(
        "name: term\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nwait: true\n",
        ChartRepository::shared().url
    );
    let child = env
        .helm_runner(h, "term", "install", &manifest)
        .await
        .spawn()
        .unwrap();
    // Helm has stored revision 1 as pending-install and waits for the rollout.
    let mut polls = 0;
    while env.helm_record_statuses("term").await != vec![(1, "pending-install".to_string())] {
        polls += 1;
        assert!(
            polls < 600,
            "helm never stored the release as pending-install"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = env.status("term").await.unwrap();
    assert_eq!(running.phase, Phase::Running, "{running:?}");
    assert_eq!(
        stable_status(&running.runner_status),
        serde_json::json!({"phase": "Installing", "helmVersion": h.version(),
            "release": {"name": "term", "namespace": env.ns}})
    );
    let pid = child.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 143, "{}", out.stderr);
    let status = env.status("term").await.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.reason, Some(Reason::Cancelled));
    let message = status.message.as_str();
    assert!(
        message.contains("received SIGTERM")
            && message.contains("helm stopped on SIGTERM")
            && message.contains("context canceled")
            && message.contains("revision 1 of the release as \"failed\""),
        "{message}"
    );
    assert_eq!(
        env.helm_record_statuses("term").await,
        vec![(1, "failed".to_string())]
    );
}

/// A secret that only Helm's storage holds: installed with the release, then reused
/// (`reuseValues`) by an upgrade that fails with a message holding it as is, Go-quoted, as JSON,
/// base64, URL-escaped and as YAML, and a long number (printed by Go as `3.1415926e+07`) and a
/// short one (`pin: 7`). The runner read the stored values before the upgrade, so no form of
/// any is shown anywhere the run shows something: its stdout and stderr (the ERROR line), the
/// status ConfigMap, the termination message, the Events, and the output files of the install
/// and of a reused upgrade that succeeds (the failed one writes none). Every place looked in is
/// checked to hold something, so that an empty one cannot pass.
async fn stored_values_never_shown_in_any_form_when_a_reused_upgrade_fails(h: HelmBin) {
    const STORED: &str = "0ld \"st0red\" pa\\ss <&>\tend\nsecond-line-of-it";
    let env = TestEnv::bare("helm-stored").await;
    let values =
        serde_json::json!({"password": STORED, "code": 31_415_926, "pin": 7, "boom": false});
    let manifest = format!(
        "name: vault\nchart: {{name: boom, repo: \"{}\"}}\nwait: false\nvalues: {values}\n\
         output: {{additional: {{goTemplate: \"release: {{{{ .Release.Name }}}}\"}}}}\n",
        ChartRepository::shared().url
    );
    let out = env
        .helm_runner(h, "stored-install", "install", &manifest)
        .await
        .owned_by_a_job("stored-install")
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut shown = everything_shown(&env, "stored-install", &out, None, true).await;

    let termination = env.file("termination-log", "");
    let wr = &env;
    let upgrade = move |name: &'static str, values: &'static str| async move {
        let env = wr;
        env.helm_runner(
            h,
            name,
            "upgrade",
            &format!(
                "wait: false\nreuseValues: true\nvalues: {values}\n\
                 output: {{additional: {{goTemplate: \"boom: {{{{ .Values.boom }}}}\"}}}}\n"
            ),
        )
        .await
        .on_release(&env.path("stored-install-release.yaml"))
        .owned_by_a_job(name)
    };
    let out = upgrade("stored-upgrade", "{boom: true}")
        .await
        .var(
            "RUNNER_TERMINATION_MESSAGE_PATH",
            Some(termination.to_str().unwrap()),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("stored-upgrade").await.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    let message = status.message.as_str();
    assert!(
        message.contains(
            "cannot use password <redacted> (quoted \"<redacted>\", as JSON \"<redacted>\", \
             base64 <redacted>, in a URL <redacted>, as YAML \"<redacted>\") code <redacted> \
             pin: <redacted>"
        ),
        "{message}"
    );
    assert_eq!(
        status.runner_status,
        serde_json::json!({"phase": "UpgradeFailed", "helmVersion": h.version(),
            "release": {"name": "vault", "namespace": env.ns, "revision": 1, "status": "deployed"}})
    );
    shown.extend(everything_shown(&env, "stored-upgrade", &out, Some(&termination), false).await);

    // The same values reused by an upgrade that succeeds: its outputs hold none of them either.
    let out = upgrade("stored-reupgrade", "{boom: false}")
        .await
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        env.additional_output("stored-reupgrade"),
        Some(serde_json::json!({"backend": null, "value": {"boom": false}}))
    );
    shown.extend(everything_shown(&env, "stored-reupgrade", &out, None, true).await);
    let forms = forms_of_all(&[STORED, "31415926", "3.1415926e+07"]);
    assert_never_in(&shown, &forms, &["pin: 7"]);
}

/// Creates a ConfigMap or Secret `name` with one key holding `text`.
async fn create_values_object(env: &TestEnv, kind: &str, name: &str, key: &str, text: &str) {
    use kube::api::PostParams;
    let pp = PostParams::default();
    if kind == "Secret" {
        let s: Secret = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name}, "stringData": {key: text}}),
        )
        .unwrap();
        Api::<Secret>::namespaced(env.client.clone(), &env.ns)
            .create(&pp, &s)
            .await
            .unwrap();
    } else {
        let c: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name}, "data": {key: text}}),
        )
        .unwrap();
        Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
            .create(&pp, &c)
            .await
            .unwrap();
    }
}

/// Values from a ConfigMap, a Secret (and two optional entries that are missing: skipped), two
/// files and inline values are layered in the documented order: each layer overrides the keys
/// of the ones before it (`podAnnotations.lN` is set by layers N and later; the last one to set
/// it wins), and keys only an early layer sets (`replicaCount`) survive. A Secret's value that
/// a chart's error message holds is never shown; a missing non-optional ConfigMap or key, or a
/// key that is not a YAML mapping, exits 2 naming it, before anything is written.
async fn values_layered_from_configmaps_secrets_files_and_inline(h: HelmBin) {
    const FROM_SECRET: &str = "fr0m-a-Secret \"never\" <shown>";
    let env = TestEnv::bare("helm-layers").await;
    let annotations = |from: &str, first: u32| {
        (first..=5)
            .map(|n| format!("l{n}: {from}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    create_values_object(
        &env,
        "ConfigMap",
        "base",
        "values.yaml",
        &format!(
            "replicaCount: 2\npodAnnotations: {{{}}}\n",
            annotations("from-configmap", 1)
        ),
    )
    .await;
    create_values_object(
        &env,
        "Secret",
        "creds",
        "prod.yaml",
        &format!("podAnnotations: {{{}}}\n", annotations("from-secret", 2)),
    )
    .await;
    let f1 = env.file(
        "f1.yaml",
        &format!("podAnnotations: {{{}}}\n", annotations("from-file-1", 3)),
    );
    let f2 = env.file(
        "f2.yaml",
        &format!("podAnnotations: {{{}}}\n", annotations("from-file-2", 4)),
    );
    let manifest = format!(
        "name: layers\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nwait: false\n\
         valuesFrom:\n\
         - {{kind: ConfigMap, name: base}}\n\
         - {{kind: Secret, name: absent, optional: true}}\n\
         - {{kind: Secret, name: creds, key: prod.yaml}}\n\
         - {{kind: ConfigMap, name: base, key: absent.yaml, optional: true}}\n\
         valuesFromFile: [{}, {}]\n\
         values: {{podAnnotations: {{l5: from-inline}}}}\n",
        ChartRepository::shared().url,
        f1.display(),
        f2.display()
    );
    let out = env.run_helm(h, "layers", "install", &manifest).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = env.deployment("layers-webapp").await.unwrap();
    assert_eq!(replicas(&d), 2, "replicaCount from the ConfigMap");
    let pod_annotations = d.spec.template.metadata.unwrap().annotations.unwrap();
    let want: std::collections::BTreeMap<String, String> = [
        ("l1", "from-configmap"),
        ("l2", "from-secret"),
        ("l3", "from-file-1"),
        ("l4", "from-file-2"),
        ("l5", "from-inline"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(pod_annotations, want);

    secret_values_never_shown(&env, h, FROM_SECRET).await;

    // Missing sources and bad content: exit 2, one line naming it, nothing written.
    create_values_object(&env, "ConfigMap", "a-list", "values.yaml", "- a\n- b\n").await;
    let ns = &env.ns;
    for (name, entry, needle) in [
        (
            "no-object",
            "{kind: ConfigMap, name: absent}",
            format!("valuesFrom[0]: ConfigMap {ns}/absent not found"),
        ),
        (
            "no-key",
            "{kind: Secret, name: creds}",
            format!("valuesFrom[0]: Secret {ns}/creds has no key \"values.yaml\""),
        ),
        (
            "not-a-mapping",
            "{kind: ConfigMap, name: a-list}",
            format!("valuesFrom[0]: ConfigMap {ns}/a-list key \"values.yaml\": not a YAML mapping"),
        ),
    ] {
        let out = env
            .run_helm(
                h,
                name,
                "install",
                &format!(
                    "name: {name}\nchart: {{name: webapp, repo: \"{}\"}}\nwait: false\nvaluesFrom: [{entry}]\n",
                    ChartRepository::shared().url
                ),
            )
            .await;
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        let err = error_lines(&out.stderr).join("\n");
        // The log line is JSON: quotes escaped.
        let needle = action_runner_helm::cli::json_escape(&needle);
        assert!(err.contains(&needle), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            env.status(name).await.is_none(),
            "{name}: no status written"
        );
        assert!(
            env.helm_record_names::<Secret>(name).await.is_empty(),
            "{name}"
        );
    }
}

/// A Secret's values (`password`, a long `code` and a short `pin`) in a chart's error message:
/// redacted in every form, everywhere the run shows something; an install with them that
/// succeeds writes none of them to its outputs either.
async fn secret_values_never_shown(env: &TestEnv, h: HelmBin, password: &str) {
    for (name, boom) in [("boom", true), ("quiet", false)] {
        create_values_object(
            env,
            "Secret",
            &format!("{name}-values"),
            "values.yaml",
            &format!(
                "boom: {boom}\npassword: {}\ncode: 27182818\npin: 42\n",
                serde_json::json!(password)
            ),
        )
        .await;
    }
    let termination = env.file("boom-termination-log", "");
    let boom = |name: &str| {
        format!(
            "name: {name}\nchart: {{name: boom, repo: \"{}\"}}\nwait: false\n\
             valuesFrom: [{{kind: Secret, name: {name}-values}}]\n\
             output: {{helmRelease: {{valuesPreview: true}}, \
             additional: {{goTemplate: \"boom: {{{{ .Values.boom }}}}\"}}}}\n",
            ChartRepository::shared().url
        )
    };
    let out = env
        .helm_runner(h, "boom", "install", &boom("boom"))
        .await
        .owned_by_a_job("boom")
        .var(
            "RUNNER_TERMINATION_MESSAGE_PATH",
            Some(termination.to_str().unwrap()),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let msg = env.status("boom").await.unwrap().message;
    assert!(
        msg.contains(
            "cannot use password <redacted> (quoted \"<redacted>\", as JSON \"<redacted>\", \
             base64 <redacted>, in a URL <redacted>, as YAML <redacted>) code <redacted> pin: \
             <redacted>"
        ),
        "{msg}"
    );
    let mut shown = everything_shown(env, "boom", &out, Some(&termination), false).await;
    let out = env
        .helm_runner(h, "quiet", "install", &boom("quiet"))
        .await
        .owned_by_a_job("quiet")
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The values' digest, and their preview with every value from the Secret masked (the
    // status and the release file, both in `shown` below).
    let release = &env.status("quiet").await.unwrap().runner_status["release"];
    assert!(
        release["valuesDigest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71),
        "{release}"
    );
    assert_eq!(
        release["valuesPreview"],
        serde_json::json!({"boom": "(masked)", "password": "(masked)", "code": "(masked)", "pin": "(masked)"}),
        "{release}"
    );
    assert_eq!(
        env.release_output("quiet")["value"]["valuesPreview"],
        release["valuesPreview"]
    );
    shown.extend(everything_shown(env, "quiet", &out, None, true).await);
    let forms = forms_of_all(&[password, "27182818", "2.7182818e+07"]);
    assert_never_in(&shown, &forms, &["pin: 42"]);
}

/// A chart from a private repository (HTTPS with a CA of its own, basic auth): with `chart.auth`
/// and `chart.caFile` the install, and an upgrade whose release file names the repository,
/// succeed; the password is never shown, not even in the debug log of helm's command lines, and
/// no process of the run (the runner, `helm repo add`, `helm pull`) ever holds it on its
/// command line or in its environment (watched in `/proc` while it runs). Without the
/// credentials Helm's 401, without the CA its certificate error, exit 1.
async fn private_chart_repository_with_basic_auth_and_ca(h: HelmBin) {
    let env = TestEnv::bare("helm-private").await;
    let r = TlsChartRepository::shared();
    let access = format!(
        "auth: {{usernameFile: {}, passwordFile: {}}}, caFile: {}",
        r.username_file.display(),
        r.password_file.display(),
        r.ca_file.display()
    );
    let cmd = env
        .helm_runner(
            h,
            "private",
            "install",
            &format!(
                "name: private\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0, {access}}}\nwait: false\n",
                r.url
            ),
        )
        .await
        .var("RUST_LOG", Some("info,action_runner_helm=debug"));
    let (out, seen) = run_watched(&cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "repo add helm-runner-chart-source {} --username {REPO_USER} --password-stdin",
            r.url
        )),
        "helm's command line is logged, with no password on it: {}",
        out.stderr
    );
    assert_no_credential_in_processes(&seen, &h.path(), REPO_PASSWORD, Some(["repo", "add"]));
    env.assert_never_shown("private", &out, REPO_PASSWORD).await;
    assert!(env.deployment("private-webapp").await.is_some());
    // The release file names the chart, not how to reach it.
    assert_eq!(
        env.release_output("private"),
        parse_yaml(&format!(
            "backend: null\nvalue:\n  chart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\n  name: private\n  namespace: {}\n",
            r.url, env.ns
        ))
    );

    // An upgrade pulls again from the release file's repository, with the input's access.
    let out = env
        .helm_runner(
            h,
            "private-upgrade",
            "upgrade",
            &format!("chart: {{{access}}}\nwait: false\nvalues: {{replicaCount: 2}}\n"),
        )
        .await
        .on_release(&env.path("private-release.yaml"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    env.assert_never_shown("private-upgrade", &out, REPO_PASSWORD)
        .await;
    assert_eq!(
        replicas(&env.deployment("private-webapp").await.unwrap()),
        2
    );

    // Without the credentials, and without the CA.
    for (name, chart_access, needle) in [
        ("no-auth", format!("caFile: {}", r.ca_file.display()), "401"),
        (
            "no-ca",
            format!(
                "auth: {{usernameFile: {}, passwordFile: {}}}",
                r.username_file.display(),
                r.password_file.display()
            ),
            "certificate",
        ),
    ] {
        let out = env
            .run_helm(
                h,
                name,
                "install",
                &format!(
                    "name: {name}\nchart: {{name: webapp, repo: \"{}\", {chart_access}}}\nwait: false\n",
                    r.url
                ),
            )
            .await;
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        let msg = env.status(name).await.unwrap().message;
        assert!(msg.contains(needle), "{name}: {msg}");
        env.assert_never_shown(name, &out, REPO_PASSWORD).await;
        assert!(env.helm_record_names::<Secret>(name).await.is_empty());
    }
}

/// Basic auth over plain HTTP needs `chart.auth.allowPlainHttp: true`: without it, to an
/// `http://` chart repository or to an `oci://` registry with `plainHttp: true`, the input is
/// refused (exit 2, one line naming the fields, nothing written); with it, the install from the
/// `http://` repository (the open one, which takes any credentials) succeeds, the password on
/// no command line and in no environment of the run's processes.
async fn credentials_over_plain_http_need_the_opt_in(h: HelmBin) {
    let env = TestEnv::bare("helm-plain-auth").await;
    let (r, oci) = (TlsChartRepository::shared(), OciRegistry::plain_http());
    let auth = |opt_in: &str| {
        format!(
            "auth: {{usernameFile: {}, passwordFile: {}{opt_in}}}",
            r.username_file.display(),
            r.password_file.display()
        )
    };
    let repository = |name: &str, opt_in: &str| {
        format!(
            "name: {name}\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0, {}}}\nwait: false\n",
            ChartRepository::shared().url,
            auth(opt_in)
        )
    };
    for (name, manifest, needle) in [
        (
            "http-auth",
            repository("http-auth", ""),
            format!(
                "chart.repo {:?} is plain HTTP",
                ChartRepository::shared().url
            ),
        ),
        (
            "oci-plain-auth",
            format!(
                "name: oci-plain-auth\nchart: {{name: webapp, repo: \"oci://{}/charts\", {}, plainHttp: true}}\nwait: false\n",
                oci.host,
                auth("")
            ),
            "chart.plainHttp: true talks plain HTTP to the registry".to_string(),
        ),
    ] {
        let out = env.run_helm(h, name, "install", &manifest).await;
        env.assert_bad_input(name, &out, &needle).await;
        assert!(
            out.stderr.contains("set chart.auth.allowPlainHttp: true"),
            "{name}: {}",
            out.stderr
        );
        assert!(
            env.helm_record_names::<Secret>(name).await.is_empty(),
            "{name}"
        );
        env.assert_never_shown(name, &out, REPO_PASSWORD).await;
    }

    let name = "http-auth-allowed";
    let cmd = env
        .helm_runner(
            h,
            name,
            "install",
            &repository(name, ", allowPlainHttp: true"),
        )
        .await;
    let (out, seen) = run_watched(&cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_credential_in_processes(&seen, &h.path(), REPO_PASSWORD, Some(["repo", "add"]));
    env.assert_never_shown(name, &out, REPO_PASSWORD).await;
    assert!(env.deployment("http-auth-allowed-webapp").await.is_some());
}

/// A chart from an OCI registry that asks for credentials, over plain HTTP (a local registry):
/// with `chart.auth` (`allowPlainHttp: true`) and `chart.plainHttp` the install succeeds, the
/// password never shown and never on a command line or in an environment of the run's
/// processes; without the credentials, Helm's authorization error; without `plainHttp`, Helm
/// 4's HTTPS error, Helm 3's 401 (see below), both exit 1, and in neither case did the
/// credentials reach the registry (its log).
async fn oci_registry_with_credentials_and_plain_http(h: HelmBin) {
    let env = TestEnv::bare("helm-oci").await;
    let r = OciRegistry::plain_http();
    let auth = |allow: bool| {
        format!(
            "auth: {{usernameFile: {}, passwordFile: {}{}}}",
            r.username_file.display(),
            r.password_file.display(),
            if allow { ", allowPlainHttp: true" } else { "" }
        )
    };
    let cmd = env
        .helm_runner(
            h,
            "oci",
            "install",
            &format!(
                "name: oci\nchart: {{name: \"oci://{}/charts/webapp\", version: 0.1.0, {}, plainHttp: true}}\nwait: false\n",
                r.host,
                auth(true)
            ),
        )
        .await
        .var("RUST_LOG", Some("info,action_runner_helm=debug"));
    let from = r.log_len();
    let (out, seen) = run_watched(&cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !r.authorized_since(from, h).is_empty(),
        "the registry's log records the requests authorized with the credentials"
    );
    assert!(
        out.stderr.contains(&format!(
            "registry login {} --username {REGISTRY_USER} --password-stdin",
            r.host
        )),
        "{}",
        out.stderr
    );
    assert_no_credential_in_processes(
        &seen,
        &h.path(),
        REGISTRY_PASSWORD,
        Some(["registry", "login"]),
    );
    env.assert_never_shown("oci", &out, REGISTRY_PASSWORD).await;

    for (name, chart, needle) in [
        (
            "oci-no-auth",
            format!(
                "{{name: webapp, repo: \"oci://{}/charts\", plainHttp: true}}",
                r.host
            ),
            // Helm: `GET ".../tags/list": basic credential not found`.
            "credential",
        ),
        (
            "oci-no-plain-http",
            format!(
                "{{name: webapp, repo: \"oci://{}/charts\", {}}}",
                r.host,
                auth(false)
            ),
            // Helm 4 speaks HTTPS to the plain HTTP registry and fails; Helm 3 falls back to
            // plain HTTP, but its pull sends no credentials then (and its login, which would,
            // is not run: the runner writes Helm's registry configuration itself): 401.
            if h == HelmBin::V4 { "https" } else { "401" },
        ),
    ] {
        let from = r.log_len();
        let out = env
            .run_helm(
                h,
                name,
                "install",
                &format!("name: {name}\nchart: {chart}\nwait: false\n"),
            )
            .await;
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        let authorized = r.authorized_since(from, h);
        assert!(
            authorized.is_empty(),
            "{name}: the credentials reached the registry over plain HTTP: {authorized:?}"
        );
        let msg = env.status(name).await.unwrap().message;
        assert!(msg.to_lowercase().contains(needle), "{name}: {msg}");
        env.assert_never_shown(name, &out, REGISTRY_PASSWORD).await;
    }
}

/// A chart from an OCI registry over HTTPS with a certificate of its own CA, and credentials:
/// with `chart.caFile` and `chart.auth` the install succeeds (the password never on a command
/// line or in an environment of the run's processes); without the CA, Helm's certificate
/// error, exit 1.
async fn oci_registry_with_credentials_and_ca(h: HelmBin) {
    let env = TestEnv::bare("helm-oci-tls").await;
    let r = OciRegistry::tls();
    let auth = format!(
        "auth: {{usernameFile: {}, passwordFile: {}}}",
        r.username_file.display(),
        r.password_file.display()
    );
    let ca = format!("caFile: {}", r.ca_file.as_ref().unwrap().display());
    let cmd = env
        .helm_runner(
            h,
            "oci-tls",
            "install",
            &format!(
                "name: oci-tls\nchart: {{name: webapp, repo: \"oci://{}/charts\", version: 0.1.0, {auth}, {ca}}}\nwait: false\n",
                r.host
            ),
        )
        .await;
    let (out, seen) = run_watched(&cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Helm 3's login would fall back to plain HTTP: the runner writes Helm's registry
    // configuration itself, and no login runs.
    let login = (h == HelmBin::V4).then_some(["registry", "login"]);
    assert_no_credential_in_processes(&seen, &h.path(), REGISTRY_PASSWORD, login);
    env.assert_never_shown("oci-tls", &out, REGISTRY_PASSWORD)
        .await;
    assert!(env.deployment("oci-tls-webapp").await.is_some());

    let out = env
        .run_helm(
            h,
            "oci-no-ca",
            "install",
            &format!(
                "name: oci-no-ca\nchart: {{name: \"oci://{}/charts/webapp\", {auth}}}\nwait: false\n",
                r.host
            ),
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let msg = env.status("oci-no-ca").await.unwrap().message;
    assert!(msg.contains("certificate"), "{msg}");
    env.assert_never_shown("oci-no-ca", &out, REGISTRY_PASSWORD)
        .await;
}

/// Kills `pid` and every process it started (SIGKILL, children first): what the kubelet does to
/// a pod's processes when the pod is deleted and its grace period runs out.
fn kill_with_children(pid: u32) {
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            children.extend(
                text.split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    for child in children {
        kill_with_children(child);
    }
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// A Job retries its pod; the retried pod runs the same action (same owner uid, same name).
/// Install: a retry after success adopts the release (no new revision, outputs written); an
/// attempt killed mid-install (runner and helm SIGKILLed, as when a pod's grace period runs out)
/// leaves the release `pending-install`, and the retry marks it failed and installs it again;
/// another action that installs the same name exits 2 and changes nothing. Upgrade: a retry
/// after success adopts the new revision.
async fn a_retried_attempt_adopts_or_recovers_and_another_action_is_refused(h: HelmBin) {
    let env = TestEnv::bare("helm-retry").await;
    let manifest = |name: &str, wait: bool| {
        format!(
            "name: {name}\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nwait: {wait}\n",
            ChartRepository::shared().url
        )
    };
    let attempt = |context: &'static str, uid: &'static str, command: &'static str, m: String| {
        let env = &env;
        async move {
            env.helm_runner(h, context, command, &m)
                .await
                .var("RUNNER_CONTEXT_PLATFORM_OWNER_NAME", Some(context))
                .var("RUNNER_CONTEXT_PLATFORM_OWNER_UID", Some(uid))
        }
    };

    // Done, then retried: adopted.
    let first = attempt("shop", "uid-shop", "install", manifest("shop", false)).await;
    let out = first.run().await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::remove_file(env.path("shop-release.yaml")).unwrap();
    let out = first.run().await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("shop").await.unwrap();
    assert!(
        status.message.contains("adopted, no new revision"),
        "{}",
        status.message
    );
    assert_eq!(status.runner_status["adopted"], true);
    assert_eq!(status.runner_status["release"]["revision"], 1);
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![(1, "deployed".into())]
    );
    assert_eq!(env.release_output("shop")["value"]["name"], "shop");

    // Another action, the same name: refused before anything is written.
    let out = attempt("thief", "uid-thief", "install", manifest("shop", false))
        .await
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let said = format!(
        "release \"shop\" in namespace \"{}\" already exists (revision 1, deployed, made by \
         action \"shop\" of owner uid-shop) and this action did not install it",
        env.ns
    );
    assert!(
        error_lines(&out.stderr).iter().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                .as_str()
                .is_some_and(|m| m.contains(&said))
        }),
        "{}",
        out.stderr
    );
    assert!(
        env.status("thief").await.is_none(),
        "bad input writes no status"
    );
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![(1, "deployed".into())]
    );

    // An upgrade by a third action, retried: adopted at revision 2.
    let upgrade = attempt(
        "restock",
        "uid-restock",
        "upgrade",
        "wait: false\nvalues: {replicaCount: 2}\n".into(),
    )
    .await
    .on_release(&env.path("shop-release.yaml"));
    for _ in 0..2 {
        let out = upgrade.run().await.unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let status = env.status("restock").await.unwrap();
    assert_eq!(status.runner_status["adopted"], true, "{status:?}");
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![(1, "superseded".into()), (2, "deployed".into())]
    );

    // Killed mid-install: the record stays pending-install; the retry recovers it.
    let killed = attempt("cart", "uid-cart", "install", manifest("cart", true)).await;
    let child = killed.spawn().unwrap();
    let mut polls = 0;
    while env.helm_record_statuses("cart").await != vec![(1, "pending-install".to_string())] {
        polls += 1;
        assert!(
            polls < 600,
            "helm never stored the release as pending-install"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill_with_children(child.id().unwrap());
    let _ = collect(child).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.helm_record_statuses("cart").await,
        vec![(1, "pending-install".into())],
        "a killed helm leaves the release pending"
    );
    let controller = tokio::spawn(play_deployment_controller(
        env.client.clone(),
        env.ns.clone(),
        Duration::from_secs(1),
    ));
    let out = killed.run().await.unwrap();
    controller.abort();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("marking the revision failed"),
        "{}",
        out.stderr
    );
    let records = env.helm_record_statuses("cart").await;
    assert_eq!(
        records.last().map(|r| r.1.as_str()),
        Some("deployed"),
        "{records:?}"
    );
    assert!(
        records.iter().all(|r| !r.1.starts_with("pending")),
        "{records:?}"
    );
    let status = env.status("cart").await.unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
}

/// The path from the old image to the new one: a release installed by Helm 3 is upgraded by
/// Helm 4 (with `reuseValues`). Helm 4's `--server-side=auto` keeps the release's own method,
/// client-side apply, so no field is taken over by server-side apply; the values are reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_3_release_is_upgraded_by_helm_4() {
    let env = TestEnv::bare("helm-3to4").await;
    let manifest = format!(
        "name: old\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nwait: false\nvalues: {{replicaCount: 3}}\n",
        ChartRepository::shared().url
    );
    let out = env
        .run_helm(HelmBin::V3, "install3", "install", &manifest)
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = env
        .helm_runner(
            HelmBin::V4,
            "upgrade4",
            "upgrade",
            "chart: {version: 0.2.0}\nwait: false\nreuseValues: true\n",
        )
        .await
        .on_release(&env.path("install3-release.yaml"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("upgrade4").await.unwrap();
    assert_eq!(
        stable_status(&status.runner_status),
        serde_json::json!({"phase": "Upgraded", "helmVersion": "v4.3.2", "adopted": false,
            "release": {"name": "old", "namespace": env.ns, "revision": 2, "status": "deployed"}})
    );
    let d = env.deployment("old-webapp").await.unwrap();
    assert_eq!(replicas(&d), 3, "replicaCount reused");
    let applied = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .any(|f| f.operation.as_deref() == Some("Apply"));
    assert!(!applied, "Helm 4 kept the release's client-side apply");
    assert_eq!(
        env.helm_record_statuses("old").await,
        vec![(1, "superseded".to_string()), (2, "deployed".to_string())]
    );
}

/// `RUNNER_COMMAND=uninstall` on the release file an install wrote: Helm waits (`wait` is true
/// by default) until the objects are gone, the records are deleted, the status says
/// `Uninstalled`. The Job's retry of a done uninstall finds nothing and succeeds, saying so.
/// `keepHistory` keeps the records, marked `uninstalled` (and a retry is again a success).
/// The manifest's `name`, if given, must be the release file's; install-only fields and a bad
/// `timeout` are refused with exit 2 before anything is written. An uninstall whose wait runs
/// out of its `timeout` (a finalizer holds an object) ends `UninstallFailed`; Helm has purged
/// the records by then, so its retry finds the release gone.
async fn uninstall_is_idempotent_and_keeps_history_on_request(h: HelmBin) {
    let env = TestEnv::bare("helm-uninstall").await;
    let install = |name: &str| {
        format!(
            "name: {name}\nchart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nwait: false\n\
             values: {{podAnnotations: {{db-password: \"{PASSWORD}\"}}}}\n",
            ChartRepository::shared().url
        )
    };
    let out = env.run_helm(h, "shop", "install", &install("shop")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Input errors first: nothing is written.
    for (name, manifest, needle) in [
        (
            "wrong-name",
            "name: other\n",
            "name \"other\" is not the release \"shop\" of the release file",
        ),
        (
            "install-field",
            "createNamespace: true\n",
            "createNamespace applies to install only, not to RUNNER_COMMAND=uninstall at line 1, \
             column 1",
        ),
        (
            "bad-timeout",
            "timeout: 5 minutes\n",
            "timeout \"5 minutes\" is not a Go duration",
        ),
    ] {
        let out = env
            .run_helm_on(h, name, "uninstall", manifest, "shop-release.yaml")
            .await;
        env.assert_bad_input(name, &out, needle).await;
    }
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![(1, "deployed".into())]
    );

    let out = env
        .helm_runner(h, "dry", "uninstall", "name: shop\n")
        .await
        .on_release(&env.path("shop-release.yaml"))
        .var("RUNNER_CONTEXT_DRY_RUN", Some("true"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("dry").await.unwrap();
    assert_eq!(status.runner_status["phase"], "Uninstalled", "{status:?}");
    assert!(
        status
            .message
            .starts_with("dry run: release \"shop\" would be uninstalled"),
        "{}",
        status.message
    );
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![(1, "deployed".into())]
    );
    assert!(env.deployment("shop-webapp").await.is_some());

    let remove = env
        .helm_runner(h, "remove", "uninstall", "name: shop\ntimeout: 1m\n")
        .await
        .on_release(&env.path("shop-release.yaml"));
    let out = remove.run().await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("remove").await.unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert_eq!(status.runner_status["phase"], "Uninstalled", "{status:?}");
    assert_eq!(status.runner_status["alreadyUninstalled"], false);
    assert_eq!(status.runner_status["helmVersion"], h.version());
    assert_eq!(
        status.message,
        format!(
            "release \"shop\" uninstalled successfully from namespace \"{}\"",
            env.ns
        )
    );
    assert!(env.helm_record_statuses("shop").await.is_empty());
    assert!(env.deployment("shop-webapp").await.is_none());
    env.assert_never_shown("remove", &out, PASSWORD).await;

    // The Job retries the pod: the release is already gone, which is what was asked.
    let out = remove.run().await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("remove").await.unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert_eq!(status.runner_status["phase"], "Uninstalled");
    assert_eq!(status.runner_status["alreadyUninstalled"], true);
    assert!(
        status.message.contains("is not installed")
            && status.message.contains("nothing to uninstall"),
        "{}",
        status.message
    );

    // keepHistory: the records stay, marked uninstalled; a retry succeeds without helm.
    let out = env.run_helm(h, "kept", "install", &install("kept")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let keep = env
        .helm_runner(h, "keep", "uninstall", "keepHistory: true\nwait: false\n")
        .await
        .on_release(&env.path("kept-release.yaml"));
    for attempt in 0..2 {
        let out = keep.run().await.unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
        let status = env.status("keep").await.unwrap();
        assert_eq!(
            status.runner_status["alreadyUninstalled"],
            attempt == 1,
            "{status:?}"
        );
        let said = if attempt == 0 {
            "uninstalled successfully"
        } else {
            "is already uninstalled"
        };
        assert!(status.message.contains(said), "{}", status.message);
        assert_eq!(
            env.helm_record_statuses("kept").await,
            vec![(1, "uninstalled".into())]
        );
    }
    assert!(env.deployment("kept-webapp").await.is_none());

    // A finalizer holds the chart's Service: helm's wait for the deletion runs out of the
    // manifest's timeout. The status said Uninstalling while helm ran, then UninstallFailed.
    let out = env.run_helm(h, "held", "install", &install("held")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
    let finalizers = |f: serde_json::Value| {
        kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": f}}))
    };
    let pp = kube::api::PatchParams::default();
    services
        .patch(
            "held-webapp",
            &pp,
            &finalizers(serde_json::json!(["kube-action-runners.io/test"])),
        )
        .await
        .unwrap();
    let unhold = env
        .helm_runner(h, "unhold", "uninstall", "timeout: 2s\n")
        .await
        .on_release(&env.path("held-release.yaml"));
    let child = unhold.spawn().unwrap();
    let mut polls = 0;
    loop {
        if let Some(s) = env
            .status("unhold")
            .await
            .filter(|s| s.phase == Phase::Running)
        {
            assert_eq!(
                s.runner_status,
                serde_json::json!({"phase": "Uninstalling", "helmVersion": h.version(),
                    "release": {"name": "held", "namespace": env.ns}})
            );
            break;
        }
        polls += 1;
        assert!(polls < 600, "the status never said Uninstalling");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("unhold").await.unwrap();
    assert_eq!(status.phase, Phase::Failed, "{status:?}");
    assert_eq!(
        status.runner_status["phase"], "UninstallFailed",
        "{status:?}"
    );
    assert!(
        status.message.starts_with("helm uninstall ") && status.message.contains("/held"),
        "{}",
        status.message
    );
    env.assert_never_shown("unhold", &out, PASSWORD).await;

    // Helm deleted the objects and, without keepHistory, purged the records before it reported
    // the failed wait ("uninstallation completed with 1 error(s)"): the Job's retry finds the
    // release gone and succeeds; the Service goes once the finalizer does.
    assert!(
        status
            .message
            .contains("uninstallation completed with 1 error(s)"),
        "{}",
        status.message
    );
    services
        .patch("held-webapp", &pp, &finalizers(serde_json::Value::Null))
        .await
        .unwrap();
    let out = unhold.run().await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("unhold").await.unwrap();
    assert_eq!(status.runner_status["phase"], "Uninstalled", "{status:?}");
    assert_eq!(status.runner_status["alreadyUninstalled"], true);
    assert!(env.helm_record_statuses("held").await.is_empty());
    assert!(services.get_opt("held-webapp").await.unwrap().is_none());
}

/// `RUNNER_COMMAND=rollback`: without `revision` to the previous revision, with one to that
/// revision; each makes a new revision and rewrites the release file (the chart version of
/// the revision rolled back to). A revision not in the history is refused (exit 2, one line
/// naming `revision`, nothing written). While helm runs the status says `RollingBack`; a
/// rollback whose `--wait` runs out of its `timeout` ends `RollbackFailed` with Helm's reason.
async fn rollback_to_the_previous_or_a_given_revision(h: HelmBin) {
    let env = TestEnv::bare("helm-rollback").await;
    let repo = &ChartRepository::shared().url;
    let out = env
        .run_helm(
            h,
            "v1",
            "install",
            &format!(
                "name: shop\nchart: {{name: webapp, repo: \"{repo}\", version: 0.1.0}}\nwait: false\n\
                 values: {{podAnnotations: {{db-password: \"{PASSWORD}\"}}}}\n"
            ),
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = env
        .run_helm_on(
            h,
            "v2",
            "upgrade",
            "chart: {version: 0.2.0}\nwait: false\nreuseValues: true\nvalues: {replicaCount: 3}\n",
            "v1-release.yaml",
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(replicas(&env.deployment("shop-webapp").await.unwrap()), 3);

    // Not in the history: refused before anything is written.
    let out = env
        .run_helm_on(
            h,
            "bad-revision",
            "rollback",
            "revision: 9\nwait: false\n",
            "v2-release.yaml",
        )
        .await;
    env.assert_bad_input(
        "bad-revision",
        &out,
        "input manifest: revision 9 is not in the release's history (revisions 1, 2)",
    )
    .await;
    let out = env
        .run_helm_on(
            h,
            "values",
            "rollback",
            "values: {a: b}\n",
            "v2-release.yaml",
        )
        .await;
    env.assert_bad_input("values", &out, "values applies to install and upgrade only")
        .await;
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![(1, "superseded".into()), (2, "deployed".into())]
    );

    // A dry run: Helm checks it and stores nothing; the release file is the target's.
    let out = env
        .helm_runner(h, "dry", "rollback", "wait: false\n")
        .await
        .on_release(&env.path("v2-release.yaml"))
        .var("RUNNER_CONTEXT_DRY_RUN", Some("true"))
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("dry").await.unwrap();
    assert_eq!(status.runner_status["phase"], "RolledBack", "{status:?}");
    assert_eq!(
        status.message,
        format!(
            "dry run: release \"shop\" in namespace \"{}\" would be rolled back to revision 1; \
             Helm stored nothing",
            env.ns
        )
    );
    assert_eq!(
        env.release_output("dry")["value"]["chart"]["version"],
        "0.1.0"
    );
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![(1, "superseded".into()), (2, "deployed".into())]
    );
    assert_eq!(replicas(&env.deployment("shop-webapp").await.unwrap()), 3);

    // The previous revision.
    let out = env
        .run_helm_on(h, "back", "rollback", "wait: false\n", "v2-release.yaml")
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = env.status("back").await.unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert_eq!(
        status.runner_status["release"],
        serde_json::json!({"name": "shop", "namespace": env.ns, "revision": 3, "status": "deployed"})
    );
    assert_eq!(status.runner_status["phase"], "RolledBack");
    assert_eq!(status.runner_status["targetRevision"], 1);
    assert_eq!(
        status.message,
        format!(
            "release \"shop\" rolled back successfully to revision 1 in namespace \"{}\" (revision 3)",
            env.ns
        )
    );
    assert_eq!(replicas(&env.deployment("shop-webapp").await.unwrap()), 1);
    assert_eq!(
        env.release_output("back")["value"]["chart"]["version"],
        "0.1.0"
    );
    assert_eq!(env.release_output("back")["value"]["name"], "shop");
    env.assert_never_shown("back", &out, PASSWORD).await;

    // A given revision, from the release file the rollback wrote.
    let out = env
        .run_helm_on(
            h,
            "to-2",
            "rollback",
            "revision: 2\nwait: false\n",
            "back-release.yaml",
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(replicas(&env.deployment("shop-webapp").await.unwrap()), 3);
    assert_eq!(
        env.release_output("to-2")["value"]["chart"]["version"],
        "0.2.0"
    );
    assert_eq!(
        env.helm_record_statuses("shop").await,
        vec![
            (1, "superseded".into()),
            (2, "superseded".into()),
            (3, "superseded".into()),
            (4, "deployed".into())
        ]
    );

    // Waiting for a rollout that never comes (no kubelet), up to the manifest's timeout.
    let child = env
        .helm_runner(h, "stuck", "rollback", "revision: 1\ntimeout: 3s\n")
        .await
        .on_release(&env.path("to-2-release.yaml"))
        .spawn()
        .unwrap();
    let mut polls = 0;
    loop {
        let running = env.status("stuck").await;
        if let Some(s) = running.filter(|s| s.phase == Phase::Running) {
            assert_eq!(
                s.runner_status,
                serde_json::json!({"phase": "RollingBack", "helmVersion": h.version(),
                    "release": {"name": "shop", "namespace": env.ns}, "targetRevision": 1})
            );
            break;
        }
        polls += 1;
        assert!(polls < 600, "the status never said RollingBack");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = collect(child).await.unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("stuck").await.unwrap();
    assert_eq!(status.phase, Phase::Failed, "{status:?}");
    assert_eq!(
        status.runner_status["phase"], "RollbackFailed",
        "{status:?}"
    );
    assert_eq!(status.runner_status["release"]["revision"], 5, "{status:?}");
    assert_eq!(
        status.runner_status["release"]["status"], "failed",
        "{status:?}"
    );
    assert!(
        status.message.contains("context deadline exceeded")
            || status.message.contains("timed out"),
        "{}",
        status.message
    );
}

/// `rollbackOnFailure` (Helm 4 `--rollback-on-failure`, Helm 3 `--atomic`): an install whose
/// wait runs out of its `timeout` (no kubelet: the rollout never ends) is uninstalled by Helm,
/// even with `wait: false` (the flag implies waiting). `createNamespace` passes
/// `--create-namespace` (the namespace exists: Helm goes on).
async fn rollback_on_failure_create_namespace_and_timeout(h: HelmBin) {
    let env = TestEnv::bare("helm-atomic").await;
    let chart = format!(
        "chart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\n",
        ChartRepository::shared().url
    );
    let out = env
        .run_helm(
            h,
            "undone",
            "install",
            &format!("name: undone\n{chart}wait: false\nrollbackOnFailure: true\ntimeout: 2s\n"),
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("undone").await.unwrap();
    assert_eq!(status.runner_status["phase"], "InstallFailed", "{status:?}");
    assert!(
        status.message.contains("has been uninstalled"),
        "{}",
        status.message
    );
    assert!(env.helm_record_statuses("undone").await.is_empty());
    assert!(env.deployment("undone-webapp").await.is_none());

    let out = env
        .run_helm(
            h,
            "made",
            "install",
            &format!("name: made\n{chart}wait: false\ncreateNamespace: true\ntimeout: 90s\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        env.helm_record_statuses("made").await,
        vec![(1, "deployed".into())]
    );

    for (name, manifest, needle) in [
        (
            "bad-timeout",
            format!("name: x\n{chart}timeout: \"90\"\n"),
            "input manifest: timeout \"90\" is not a Go duration",
        ),
        (
            "keep-on-install",
            format!("name: x\n{chart}keepHistory: true\n"),
            "keepHistory applies to uninstall only, not to RUNNER_COMMAND=install at line 3, \
             column 1",
        ),
    ] {
        let out = env.run_helm(h, name, "install", &manifest).await;
        env.assert_bad_input(name, &out, needle).await;
    }
}

/// An action is its owner, its name and its input (`ownership`): run by hand (no owner), an
/// `upgrade` under the name its `install` used makes a new revision; the same upgrade run again
/// adopts it; new values under the same name make another revision. Two Jobs (two owner uids)
/// under one context name: the second is refused with exit 2 naming the first's owner, and
/// writes nothing. Every revision the runner makes carries the input digest label.
async fn a_changed_input_is_a_new_action_and_another_owner_is_refused(h: HelmBin) {
    let env = TestEnv::bare("helm-identity").await;
    let chart = format!(
        "chart: {{name: webapp, repo: \"{}\", version: 0.1.0}}\nwait: false\n",
        ChartRepository::shared().url
    );
    let install = env
        .helm_runner(h, "cfg", "install", &format!("name: cfg\n{chart}"))
        .await;
    let out = install.run().await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let release = env.path("cfg-installed.yaml");
    std::fs::copy(env.path("cfg-release.yaml"), &release).unwrap();
    let upgrade = |values: &str| {
        let manifest = env.file(
            &format!("cfg-upgrade-{values}.yaml"),
            &format!("wait: false\nvalues: {{replicaCount: {values}}}\n"),
        );
        install
            .clone()
            .var("RUNNER_COMMAND", Some("upgrade"))
            .on_release(&release)
            .var(
                "RUNNER_INPUT_MANIFEST_PATH",
                Some(manifest.to_str().unwrap()),
            )
    };
    let statuses = |n: u64| {
        (1..=n)
            .map(|r| {
                let s = if r == n { "deployed" } else { "superseded" };
                (r, s.to_string())
            })
            .collect::<Vec<_>>()
    };
    // Each upgrade: its values, then the revisions Helm holds and whether the run adopted.
    for (values, revisions, adopted, why) in [
        (
            "2",
            2,
            false,
            "the install's name, another command: a new action",
        ),
        ("2", 2, true, "the same upgrade again: a retry"),
        (
            "3",
            3,
            false,
            "new values under the same name: a new action",
        ),
    ] {
        let out = upgrade(values).run().await.unwrap();
        assert_eq!(out.code, 0, "{why}: {}", out.stderr);
        assert_eq!(
            env.helm_record_statuses("cfg").await,
            statuses(revisions),
            "{why}"
        );
        let status = env.status("cfg").await.unwrap();
        assert_eq!(
            status.runner_status["adopted"], adopted,
            "{why}: {status:?}"
        );
    }

    // Every revision carries the digest of its input, and no two inputs share one.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let records = secrets
        .list(&ListParams::default().labels("owner=helm,name=cfg"))
        .await
        .unwrap()
        .items;
    let mut digests: Vec<String> = records
        .iter()
        .map(|r| r.metadata.labels.as_ref().unwrap()[INPUT_DIGEST_LABEL].clone())
        .collect();
    assert_eq!(digests.len(), 3);
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 3, "three inputs, three digests");

    // Two Jobs under one context name: the second is refused, nothing written.
    let job = |uid: &'static str| {
        let env = &env;
        let upgrade = upgrade("4");
        async move {
            upgrade
                .var(
                    "RUNNER_CONTEXT_PLATFORM_OWNER_NAME",
                    Some(&format!("job-{uid}")),
                )
                .var("RUNNER_CONTEXT_PLATFORM_OWNER_UID", Some(uid))
                .var("RUNNER_CONTEXT_NAME", Some("cfg-job"))
                .var(
                    "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                    Some(env.path(&format!("{uid}-release.yaml")).to_str().unwrap()),
                )
        }
    };
    env.create_status_configmap("cfg-job").await;
    let out = job("uid-a").await.run().await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.helm_record_statuses("cfg").await, statuses(4));
    let before = env.status("cfg-job").await.unwrap();
    let out = job("uid-b").await.run().await.unwrap();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let said = "was made by action \"cfg-job\" of another owner (uid uid-a; this runner's owner \
                is uid-b)";
    assert!(
        error_lines(&out.stderr).iter().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                .as_str()
                .is_some_and(|m| m.contains(said))
        }),
        "{}",
        out.stderr
    );
    assert_eq!(env.helm_record_statuses("cfg").await, statuses(4));
    assert_eq!(
        env.status("cfg-job").await.unwrap(),
        before,
        "bad input writes no status"
    );
}

/// `RUNNER_TIMEOUT` bounds the start too: a chart repository that accepts connections and never
/// answers ends the run at the deadline with `DeadlineExceeded`, naming the repository, and
/// nothing is left of the release.
async fn a_repository_that_never_answers_ends_at_the_timeout(h: HelmBin) {
    let env = TestEnv::bare("helm-silent").await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts every connection and holds it open, saying nothing (bounded: the test's end
    // drops the thread's listener with the process).
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    let manifest = format!("name: silent\nchart: {{name: webapp, repo: \"{url}\"}}\n");
    let cmd = env
        .helm_runner(h, "silent", "install", &manifest)
        .await
        .var("RUNNER_TIMEOUT", Some("5s"));
    let out = cmd.run().await.unwrap();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let status = env.status("silent").await.unwrap();
    assert_eq!(status.reason, Some(Reason::DeadlineExceeded), "{status:?}");
    assert!(
        status
            .message
            .contains("timed out after 5s (RUNNER_TIMEOUT) while starting")
            && status.message.contains(&url),
        "{}",
        status.message
    );
    assert_eq!(env.helm_record_statuses("silent").await, vec![]);
}

action_runner_tests::both_helms!(
    uninstall_is_idempotent_and_keeps_history_on_request,
    rollback_to_the_previous_or_a_given_revision,
    rollback_on_failure_create_namespace_and_timeout,
    a_retried_attempt_adopts_or_recovers_and_another_action_is_refused,
    a_changed_input_is_a_new_action_and_another_owner_is_refused,
    a_repository_that_never_answers_ends_at_the_timeout,
    sigterm_mid_install_stops_helm_and_leaves_the_release_failed,
    stored_values_never_shown_in_any_form_when_a_reused_upgrade_fails,
    install_from_repository_then_upgrade_with_reuse_and_reset_values,
    generate_name_configmap_driver_values_file_and_storage_outputs,
    local_chart_dir_and_archive,
    failing_template_exits_1_with_helms_message,
    missing_chart_version_exits_1,
    dry_run_stores_nothing,
    bad_input_exits_2_and_writes_nothing,
    apply_options_take_ownership_and_server_side,
    release_size_preflight_warns_then_refuses,
    a_signed_chart_installs_and_a_tampered_one_is_refused,
    registry_credentials_from_the_cluster,
    shipped_examples_install_then_upgrade,
    wait_true_waits_for_the_rollout,
    values_layered_from_configmaps_secrets_files_and_inline,
    private_chart_repository_with_basic_auth_and_ca,
    oci_registry_with_credentials_and_plain_http,
    oci_registry_with_credentials_and_ca,
    credentials_over_plain_http_need_the_opt_in,
);

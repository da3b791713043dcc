//! A runner deployed as `deploy/<runner>` describes it, on the bare API server, where no
//! kubelet runs: [`DeployedRunner`]. Its Job is applied (so it has its name and `uid`) but never
//! started; [`DeployedRunner::command`] runs the runner binary as that Job's pod would run it:
//! the container's environment with the downward API fields resolved, its ConfigMap volumes
//! written to a scratch directory, a termination-message file, and a kubeconfig holding only
//! the ServiceAccount's token. Used by `rbac_e2e.rs` to prove the Roles verb by verb; on the
//! local cluster a real kubelet runs the real pods instead.

use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use crate::control_plane::{kubeconfig_yaml, service_account_token};
use crate::deploy::{apply, context_of, deploy_objects, find, kind_of, name_of};
use crate::process::RunnerCommand;
use crate::test_env::TestEnv;
use crate::tools::runner_binary;

/// One runner deployed as `deploy/<runner>` describes it, in a [`TestEnv`] of its own on the
/// shared bare API server, plus the pieces a kubelet would give its Job's pod.
pub struct DeployedRunner {
    /// The test's environment: the namespace everything is applied in, an administrator's
    /// client, the scratch directory the pod's files are written to.
    pub env: TestEnv,
    /// `argo-runner` or `helm-runner`.
    pub runner: String,
    /// The objects of `deploy/<runner>` as they ship (the Role before any edit), with their
    /// files.
    pub objects: Vec<(String, Value)>,
    /// The Job's manifest.
    pub job: Value,
    /// The applied Job's `uid`.
    pub job_uid: String,
    /// A kubeconfig holding only the runner's ServiceAccount token.
    pub kubeconfig: PathBuf,
}

impl DeployedRunner {
    /// [`DeployedRunner::new`] with `verb` on `resource` removed from the Role, in a namespace
    /// named after them (`<prefix>-<verb>-<first 4 letters of resource>`).
    ///
    /// # Panics
    /// As [`DeployedRunner::new`].
    pub async fn without(runner: &str, prefix: &str, resource: &str, verb: &str) -> DeployedRunner {
        let prefix = format!("{prefix}-{verb}-{}", &resource[..4]);
        DeployedRunner::new(runner, &prefix, |r| without_verb(r, resource, verb), None).await
    }

    /// Applies every object of `deploy/<runner>` into a new [`TestEnv::bare`] named after
    /// `prefix`, after `edit_role` has changed the runner's Role; then mints a token for the
    /// runner's ServiceAccount and writes a kubeconfig holding only it, for `server` (the API
    /// server's URL, possibly with `localhost` as the host; by default its own).
    ///
    /// # Panics
    /// On API errors.
    pub async fn new(
        runner: &str,
        prefix: &str,
        edit_role: impl Fn(&mut Value),
        server: Option<String>,
    ) -> DeployedRunner {
        let env = TestEnv::bare(prefix).await;
        let cp = env.control_plane();
        let (admin, ns) = (&env.client, &env.ns);
        let objects = deploy_objects(runner);
        let mut job = None;
        let mut job_uid = None;
        for (file, obj) in &objects {
            let mut obj = obj.clone();
            if kind_of(&obj) == "Role" && name_of(&obj) == runner {
                edit_role(&mut obj);
            }
            let applied = apply(admin, ns, &obj, false)
                .await
                .unwrap_or_else(|e| panic!("apply {file}: {e}"));
            if kind_of(&obj) == "Job" {
                job_uid = applied.metadata.uid.clone();
                job = Some(obj);
            }
        }
        let token = service_account_token(admin, ns, runner).await.unwrap();
        let kubeconfig = env.path("kubeconfig");
        let server = server.unwrap_or_else(|| cp.server.clone());
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server, &cp.dir().join("ca.crt"), &token),
        )
        .unwrap();
        DeployedRunner {
            env,
            runner: runner.into(),
            objects,
            job: job.expect("deploy/ has a Job"),
            job_uid: job_uid.expect("the Job has a uid"),
            kubeconfig,
        }
    }

    /// The runner as the Job's pod would run it: the Job's container environment (downward API
    /// fields resolved as the kubelet does), its ConfigMap volumes written to a scratch
    /// directory (paths in the environment and in those files that point into a mount are
    /// mapped there), and
    /// `terminationMessagePath` as an existing empty file.
    pub fn command(&self) -> RunnerCommand {
        let job: Job = serde_json::from_value(self.job.clone()).expect("a batch/v1 Job");
        let pod = job
            .spec
            .and_then(|s| s.template.spec)
            .expect("the Job has a pod template");
        let container = &pod.containers[0];
        let root = self.env.path("pod");
        // Container path -> host path, for each mount.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let host = root.join(m.mount_path.trim_start_matches('/'));
            std::fs::create_dir_all(&host).unwrap();
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .expect("volume of a mount");
            if let Some(source) = &volume.config_map {
                let cm: ConfigMap =
                    serde_json::from_value(find(&self.objects, "ConfigMap", &source.name).clone())
                        .expect("a ConfigMap");
                let data = cm.data.unwrap_or_default();
                let items: Vec<(String, String)> = match &source.items {
                    Some(items) => items
                        .iter()
                        .map(|i| (i.key.clone(), i.path.clone()))
                        .collect(),
                    None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
                };
                for (key, path) in items {
                    let file = host.join(path);
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(&file, &data[&key]).unwrap();
                    files.push(file);
                }
            }
            mounts.push((m.mount_path.clone(), host));
        }
        // Paths inside the mounted files (the input manifest naming the chart directory) too.
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, map_paths(&text, &mounts)).unwrap();
        }
        let job_name = name_of(&self.job);
        let mut cmd = RunnerCommand::new(
            runner_binary(&self.runner),
            &self.kubeconfig,
            &self.env.ns,
            "unset",
            Path::new("unset"),
        );
        for e in container.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => map_paths(v, &mounts),
                (None, Some(from)) => {
                    let field = from.field_ref.as_ref().map(|f| f.field_path.as_str());
                    match field {
                        Some("metadata.namespace") => self.env.ns.clone(),
                        Some("metadata.labels['batch.kubernetes.io/job-name']") => job_name.into(),
                        Some("metadata.labels['batch.kubernetes.io/controller-uid']") => {
                            self.job_uid.clone()
                        }
                        other => panic!("{}: the test does not resolve {other:?}", e.name),
                    }
                }
                (None, None) => String::new(),
            };
            cmd = cmd.var(&e.name, Some(&value));
        }
        let termination = self.termination_log();
        std::fs::write(&termination, "").unwrap();
        cmd.var(
            "RUNNER_TERMINATION_MESSAGE_PATH",
            Some(&termination.display().to_string()),
        )
    }

    /// The termination-message file the runner writes its one-line reason to.
    pub fn termination_log(&self) -> PathBuf {
        self.env.path("termination-log")
    }

    /// What the runner wrote to its termination-message file.
    pub fn termination_message(&self) -> String {
        std::fs::read_to_string(self.termination_log()).unwrap_or_default()
    }

    /// `RUNNER_CONTEXT_NAME` of the Job.
    pub fn context_name(&self) -> String {
        context_of(&self.job)
    }

    /// The ServiceAccount's user name, as RBAC and the audit log see it.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.env.ns, self.runner)
    }

    /// The audit log's entries for requests made by the runner's ServiceAccount.
    pub fn audited_requests(&self) -> Vec<Value> {
        self.env.control_plane().audit_events(&self.user())
    }

    /// Asserts that the runner's ServiceAccount made requests and none was denied (403), and
    /// prints the distinct "verb resource" pairs it used.
    pub fn assert_nothing_denied(&self) {
        let requests = self.audited_requests();
        assert!(
            !requests.is_empty(),
            "no request by {} audited",
            self.user()
        );
        let denied: Vec<&Value> = requests
            .iter()
            .filter(|e| e["responseStatus"]["code"].as_i64().unwrap_or(0) == 403)
            .collect();
        assert!(denied.is_empty(), "denied: {denied:?}");
        let mut used: Vec<String> = requests
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["verb"].as_str().unwrap_or_default(),
                    e["objectRef"]["resource"].as_str().unwrap_or_default()
                )
            })
            .collect();
        used.sort();
        used.dedup();
        println!("{} used: {used:?}", self.runner);
    }
}

/// `text` with every path that starts at a mount point (`mounts`: container path, host path)
/// moved to the host path. A path starts at the beginning of `text` or after a space, quote,
/// colon, `=` or newline, and the mount point must end there or be followed by `/`.
pub fn map_paths(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    let mut at_boundary = true;
    while let Some(c) = rest.chars().next() {
        if at_boundary {
            let hit = mounts
                .iter()
                .filter(|(m, _)| {
                    rest.strip_prefix(m.as_str()).is_some_and(|after| {
                        after
                            .chars()
                            .next()
                            .is_none_or(|n| n == '/' || n == '"' || n == '\'' || n.is_whitespace())
                    })
                })
                .max_by_key(|(m, _)| m.len());
            if let Some((m, host)) = hit {
                out.push_str(&host.display().to_string());
                rest = &rest[m.len()..];
                at_boundary = false;
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        at_boundary = matches!(c, ' ' | '"' | '\'' | ':' | '=' | '\n');
    }
    out
}

/// Removes `verb` on `resource` from every rule of `role` that grants it.
pub fn without_verb(role: &mut Value, resource: &str, verb: &str) {
    for rule in role["rules"].as_array_mut().unwrap() {
        let covers = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == resource);
        if covers {
            let verbs = rule["verbs"].as_array_mut().unwrap();
            verbs.retain(|v| v != verb);
        }
    }
}

//! A real local control plane (etcd + kube-apiserver on loopback) for the integration and
//! end-to-end tests and the demo, plus helpers that spawn the runner binaries and play the part
//! of Argo's workflow controller.
//!
//! The binaries come from `hack/install-tools.sh` (built from their Go modules at pinned
//! versions); their paths are read from `KAR_ETCD`, `KAR_KUBE_APISERVER`, `KAR_ARGO_DIR`, or
//! else from `hack/install-tools.sh --print`.

pub mod cluster;
pub mod deploy;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

/// Paths of the peer tools built by `hack/install-tools.sh`.
#[derive(Debug, Clone)]
pub struct Tools {
    /// etcd server binary.
    pub etcd: PathBuf,
    /// kube-apiserver binary.
    pub kube_apiserver: PathBuf,
    /// Unpacked `github.com/argoproj/argo-workflows/v3` module (CRDs, examples).
    pub argo_dir: PathBuf,
    /// helm CLI binary.
    pub helm: PathBuf,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

impl Tools {
    /// Finds the tools (see the crate docs).
    ///
    /// # Errors
    /// When a tool is missing: run `hack/install-tools.sh`.
    pub fn locate() -> Result<&'static Tools> {
        static TOOLS: OnceLock<Tools> = OnceLock::new();
        if let Some(t) = TOOLS.get() {
            return Ok(t);
        }
        let mut vars: BTreeMap<String, String> = std::env::vars().collect();
        if !["KAR_ETCD", "KAR_KUBE_APISERVER", "KAR_ARGO_DIR", "KAR_HELM"]
            .iter()
            .all(|k| vars.contains_key(*k))
        {
            let out = Command::new("bash")
                .arg(repo_root().join("hack/install-tools.sh"))
                .arg("--print")
                .output()
                .context("running hack/install-tools.sh --print")?;
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                    vars.entry(k.to_string()).or_insert_with(|| v.to_string());
                }
            }
        }
        let get = |k: &str| -> Result<PathBuf> {
            let p = PathBuf::from(vars.get(k).with_context(|| format!("{k} is not set"))?);
            if !p.exists() {
                bail!(
                    "{k}={} does not exist: run hack/install-tools.sh",
                    p.display()
                );
            }
            Ok(p)
        };
        let tools = Tools {
            etcd: get("KAR_ETCD")?,
            kube_apiserver: get("KAR_KUBE_APISERVER")?,
            argo_dir: get("KAR_ARGO_DIR")?,
            helm: vars.get("KAR_HELM").map(PathBuf::from).unwrap_or_default(),
        };
        Ok(TOOLS.get_or_init(|| tools))
    }

    /// Path of one of Argo's example workflows, e.g. `argo_example("hello-world")`.
    pub fn argo_example(&self, name: &str) -> PathBuf {
        self.argo_dir.join("examples").join(format!("{name}.yaml"))
    }

    /// Argo's full Workflow CRD (with the OpenAPI schema, so the API server validates
    /// Workflows).
    pub fn argo_workflow_crd(&self) -> PathBuf {
        self.argo_dir
            .join("manifests/base/crds/full/argoproj.io_workflows.yaml")
    }
}

/// Spawns `cmd` so that it dies with this process: `PR_SET_PDEATHSIG` fires when the thread
/// that forked it exits, so it is forked from a thread that lives as long as the process.
fn spawn_tied_to_process(mut cmd: Command) -> Result<Child> {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.spawn());
        loop {
            std::thread::park();
        }
    });
    Ok(rx.recv()??)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the pinned Helm CLI (`KAR_HELM`) with `args` in `cwd`, its cache, configuration and
/// data homes in `cwd/.helm-*` (so nothing outside `cwd` is read or written).
///
/// # Errors
/// When helm is missing, cannot run, or fails (with its standard error).
pub fn helm_cmd(args: &[&str], cwd: &Path) -> Result<()> {
    let helm = &Tools::locate()?.helm;
    if !helm.is_file() {
        bail!(
            "helm {} is missing: run hack/install-tools.sh",
            helm.display()
        );
    }
    let out = Command::new(helm)
        .args(args)
        .current_dir(cwd)
        .env("HELM_CACHE_HOME", cwd.join(".helm-cache"))
        .env("HELM_CONFIG_HOME", cwd.join(".helm-config"))
        .env("HELM_DATA_HOME", cwd.join(".helm-data"))
        .output()?;
    if !out.status.success() {
        bail!("helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs `fut` to completion on a fresh runtime in another thread (usable from sync code and
/// from inside a Tokio runtime alike).
pub fn block_on_thread<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    })
    .join()
    .expect("thread")
}

/// Bearer token of the harness' administrator (group `system:masters`).
pub const ADMIN_TOKEN: &str = "kar-admin-token";

/// etcd and kube-apiserver on loopback, with RBAC authorization on, a static token for an
/// administrator, ServiceAccount token issuance, and Argo's Workflow CRD installed. Killed on
/// drop (and with the process).
pub struct ControlPlane {
    dir: tempfile::TempDir,
    etcd: Mutex<Child>,
    apiserver: Mutex<Option<Child>>,
    apiserver_cmd: Vec<String>,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// PEM of the CA that signed the API server's certificate.
    pub ca_pem: String,
    /// A kubeconfig for the administrator.
    pub kubeconfig: PathBuf,
}

impl ControlPlane {
    /// One control plane per test process, started on first use.
    pub fn shared() -> &'static ControlPlane {
        static CP: OnceLock<ControlPlane> = OnceLock::new();
        CP.get_or_init(|| ControlPlane::start().expect("start the local control plane"))
    }

    /// Starts etcd and kube-apiserver, waits until `/readyz` answers and installs Argo's
    /// Workflow CRD. Blocking; takes several seconds.
    ///
    /// # Errors
    /// When a tool is missing or a process does not become ready within 90 s.
    pub fn start() -> Result<ControlPlane> {
        let tools = Tools::locate()?;
        let dir = tempfile::Builder::new().prefix("kar-cp-").tempdir()?;
        let d = dir.path();

        // Certificates: a CA, the API server's serving certificate, a ServiceAccount key.
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kar-test-ca");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let serving_key = rcgen::KeyPair::generate()?;
        let serving_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        let serving = serving_params.signed_by(&serving_key, &ca)?;
        let sa_key = rcgen::KeyPair::generate()?;
        std::fs::write(d.join("ca.crt"), ca.pem())?;
        std::fs::write(d.join("apiserver.crt"), serving.pem())?;
        std::fs::write(d.join("apiserver.key"), serving_key.serialize_pem())?;
        std::fs::write(d.join("sa.key"), sa_key.serialize_pem())?;
        std::fs::write(d.join("sa.pub"), sa_key.public_key_pem())?;
        std::fs::write(
            d.join("tokens.csv"),
            format!("{ADMIN_TOKEN},kar-admin,kar-admin,system:masters\n"),
        )?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let mut etcd = Command::new(&tools.etcd);
        etcd.args([
            "--data-dir".into(),
            d.join("etcd").display().to_string(),
            "--listen-client-urls".into(),
            format!("http://127.0.0.1:{etcd_port}"),
            "--advertise-client-urls".into(),
            format!("http://127.0.0.1:{etcd_port}"),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--initial-advertise-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--initial-cluster".into(),
            format!("default=http://127.0.0.1:{peer_port}"),
            "--unsafe-no-fsync".into(),
            "--log-level".into(),
            "error".into(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("etcd.log"))?);
        let etcd = spawn_tied_to_process(etcd)?;

        let port = free_port()?;
        let p = |f: &str| d.join(f).display().to_string();
        let apiserver_cmd = vec![
            tools.kube_apiserver.display().to_string(),
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--token-auth-file={}", p("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/24".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            format!("--audit-log-path={}", p("audit.log")),
            format!("--audit-policy-file={}", p("audit-policy.yaml")),
            "--v=0".into(),
        ];
        std::fs::write(
            d.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )?;
        let ca_pem = ca.pem();
        let server = format!("https://127.0.0.1:{port}");
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server, &d.join("ca.crt"), ADMIN_TOKEN),
        )?;
        let cp = ControlPlane {
            dir,
            etcd: Mutex::new(etcd),
            apiserver: Mutex::new(None),
            apiserver_cmd,
            server,
            ca_pem,
            kubeconfig,
        };
        cp.start_apiserver()?;
        let crd_path = tools.argo_workflow_crd();
        let kubeconfig = cp.kubeconfig.clone();
        block_on_thread(async move { install_crd(&kubeconfig, &crd_path).await })?;
        Ok(cp)
    }

    /// The control plane's scratch directory (logs: `etcd.log`, `apiserver.log`, `audit.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts kube-apiserver (again) and waits until it is ready.
    ///
    /// # Errors
    /// When it exits or is not ready within 90 s.
    pub fn start_apiserver(&self) -> Result<()> {
        let mut cmd = Command::new(&self.apiserver_cmd[0]);
        cmd.args(&self.apiserver_cmd[1..])
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir().join("apiserver.log"))?,
            );
        let child = spawn_tied_to_process(cmd)?;
        let pid = child.id();
        *self.apiserver.lock().unwrap() = Some(child);
        let kubeconfig = self.kubeconfig.clone();
        let ready = block_on_thread(async move { wait_ready(&kubeconfig, pid).await });
        if let Err(e) = ready {
            let log = std::fs::read_to_string(self.dir().join("apiserver.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!(
                "kube-apiserver not ready: {e}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// The process id of the running kube-apiserver.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.lock().unwrap().as_ref().map(Child::id)
    }

    /// Creates ServiceAccount `namespace/name`, mints a token for it with the TokenRequest API
    /// (valid 1 h), and writes a kubeconfig that authenticates with that token only; returns
    /// the kubeconfig's path. The ServiceAccount has no rights until a (Cluster)RoleBinding
    /// grants them.
    ///
    /// # Errors
    /// On API errors.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let client = self.client().await?;
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        match sas.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let token = service_account_token(&client, namespace, name).await?;
        let path = self.dir().join(format!("kubeconfig-{namespace}-{name}"));
        std::fs::write(
            &path,
            kubeconfig_yaml(&self.server, &self.dir().join("ca.crt"), &token),
        )?;
        Ok(path)
    }

    /// Kills kube-apiserver (etcd keeps the data).
    pub fn stop_apiserver(&self) {
        if let Some(mut c) = self.apiserver.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// An administrator client.
    ///
    /// # Errors
    /// When the kubeconfig cannot be loaded.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from(&self.kubeconfig).await
    }

    /// Creates a fresh namespace named `<prefix>-<n>` and returns its name.
    ///
    /// # Errors
    /// On API errors.
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}", N.fetch_add(1, Ordering::SeqCst));
        let api: Api<Namespace> = Api::all(self.client().await?);
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns).await?;
        Ok(name)
    }

    /// Reads the audit log (JSON lines, one per request, level Metadata).
    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("audit.log")).unwrap_or_default()
    }

    /// The audit log's events for requests made by `user` (e.g.
    /// `system:serviceaccount:<namespace>:<name>`), parsed, in log order.
    pub fn audit_events(&self, user: &str) -> Vec<serde_json::Value> {
        self.audit_log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["user"]["username"] == user)
            .collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_apiserver();
        let mut etcd = self.etcd.lock().unwrap();
        let _ = etcd.kill();
        let _ = etcd.wait();
    }
}

/// A kubeconfig with one cluster (its CA certificate read from the file `ca_file`) and one
/// user authenticated by a bearer `token`.
pub fn kubeconfig_yaml(server: &str, ca_file: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    \
         certificate-authority: {}\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- \
         name: local\n  context:\n    cluster: local\n    user: user\ncurrent-context: local\n",
        ca_file.display()
    )
}

/// A token for the existing ServiceAccount `namespace/name` from the TokenRequest API
/// (`serviceaccounts/token`), valid 1 h.
///
/// # Errors
/// On API errors.
pub async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    Ok(sas
        .create_token_request(name, &PostParams::default(), &request)
        .await?
        .status
        .context("TokenRequest has no status")?
        .token)
}

/// The lines a runner logged at ERROR level (its JSON log lines on standard error).
pub fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .map(String::from)
        .collect()
}

/// A client for the kubeconfig at `path`.
///
/// # Errors
/// When the kubeconfig cannot be loaded.
pub async fn client_from(path: &Path) -> Result<kube::Client> {
    let kc = Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn wait_ready(kubeconfig: &Path, pid: u32) -> Result<()> {
    let client = client_from(kubeconfig).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // A zombie or a vanished process has exited: stop waiting for it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            bail!("kube-apiserver exited");
        }
        let req = http::Request::get("/readyz").body(Vec::new())?;
        match client.request_text(req).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            other if Instant::now() > deadline => bail!("/readyz: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn install_crd(kubeconfig: &Path, crd_path: &Path) -> Result<()> {
    let client = client_from(kubeconfig).await?;
    let text = std::fs::read_to_string(crd_path)?;
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client);
    match api.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let established = kube::runtime::wait::await_condition(
        api,
        &name,
        kube::runtime::wait::conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(60), established).await??;
    Ok(())
}

/// Creates the status ConfigMap `namespace/name` the ConfigMap reporter writes to.
///
/// # Errors
/// On API errors.
pub async fn create_status_configmap(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    api.create(&PostParams::default(), &cm).await?;
    Ok(())
}

/// The parsed `status` key of ConfigMap `namespace/name`, if any.
///
/// # Errors
/// On API errors or if the key is not JSON.
pub async fn reported_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<serde_json::Value>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api.get(name).await?;
    match cm.data.and_then(|d| d.get("status").cloned()) {
        Some(s) => Ok(Some(serde_json::from_str(&s)?)),
        None => Ok(None),
    }
}

/// The Workflow API in `namespace`.
pub fn workflows(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &action_runner_argo::workflow_resource(),
    )
}

/// How the stand-in Argo controller ends a Workflow.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Phase `Succeeded`.
    Succeeded,
    /// Phase `Failed` with this `status.message`.
    Failed(String),
}

/// Current time, RFC 3339 UTC, second precision.
pub fn now() -> String {
    action_runner::status::now_rfc3339()
}

/// Waits until Workflow `namespace/name` exists (watching it), then returns it.
///
/// # Errors
/// On API errors or after `timeout`.
pub async fn wait_for_workflow(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<DynamicObject> {
    let api = workflows(client, namespace);
    let cond =
        kube::runtime::wait::await_condition(api, name, |o: Option<&DynamicObject>| o.is_some());
    let obj = tokio::time::timeout(timeout, cond)
        .await
        .context("Workflow did not appear")??;
    obj.context("Workflow vanished")
}

/// Patches Workflow `namespace/name`'s status (a JSON merge patch of `status`, as Argo's
/// controller updates the whole object: its CRD has no status subresource).
///
/// # Errors
/// On API errors.
pub async fn patch_workflow_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: serde_json::Value,
) -> Result<()> {
    workflows(client, namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// Plays Argo's workflow controller for one Workflow: waits until it exists, sets phase
/// `Running`, waits `running_for`, then ends it with `outcome` (and `finishedAt`).
///
/// # Errors
/// On API errors or if the Workflow does not appear within 60 s.
pub async fn play_argo_controller(
    client: kube::Client,
    namespace: String,
    name: String,
    running_for: Duration,
    outcome: Outcome,
) -> Result<()> {
    wait_for_workflow(&client, &namespace, &name, Duration::from_secs(60)).await?;
    let started = now();
    patch_workflow_status(
        &client,
        &namespace,
        &name,
        json!({"phase": "Running", "startedAt": started}),
    )
    .await?;
    tokio::time::sleep(running_for).await;
    let (phase, message) = match outcome {
        Outcome::Succeeded => ("Succeeded", None),
        Outcome::Failed(m) => ("Failed", Some(m)),
    };
    patch_workflow_status(
        &client,
        &namespace,
        &name,
        json!({"phase": phase, "startedAt": started, "finishedAt": now(), "message": message}),
    )
    .await
}

/// Plays the Deployment and ReplicaSet controllers and the kubelet in `namespace`, just enough
/// for Helm's `--wait`: for each Deployment whose `status.observedGeneration` lags its
/// `metadata.generation`, creates the ReplicaSet of its current pod template (owned by it,
/// labelled with a `pod-template-hash`), marks all its replicas ready, and sets the
/// Deployment's status as the controller would, `rollout` after it saw the change (a stand-in
/// for the time a real rollout takes). No Pod is created.
///
/// Helm v3's readiness rule (`pkg/kube/ready.go`, `deploymentReady`): the newest ReplicaSet
/// whose template equals the Deployment's (ignoring `pod-template-hash`) has observed its
/// generation and has at least `replicas - maxUnavailable` ready replicas, and the Deployment
/// has observed its generation. Runs until the task is aborted.
///
/// # Errors
/// On API errors.
pub async fn play_deployment_controller(
    client: kube::Client,
    namespace: String,
    rollout: Duration,
) -> Result<()> {
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use std::hash::{Hash, Hasher};

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, &namespace);
    let mut events = kube::runtime::watcher(deployments.clone(), Default::default()).boxed();
    while let Some(event) = events.next().await {
        let (kube::runtime::watcher::Event::Apply(d) | kube::runtime::watcher::Event::InitApply(d)) =
            event?
        else {
            continue;
        };
        let generation = d.metadata.generation.unwrap_or(0);
        if d.status.as_ref().and_then(|s| s.observed_generation) == Some(generation) {
            continue;
        }
        let (Some(name), Some(uid), Some(spec)) = (
            d.metadata.name.clone(),
            d.metadata.uid.clone(),
            d.spec.clone(),
        ) else {
            continue;
        };
        let replicas = spec.replicas.unwrap_or(1);
        let template = serde_json::to_value(&spec.template)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        template.to_string().hash(&mut hasher);
        let hash = format!("{:x}", hasher.finish() & 0xff_ffff_ffff);
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(hash);
        let mut rs_template = template.clone();
        rs_template["metadata"]["labels"] = labels.clone();
        let mut selector = serde_json::to_value(&spec.selector)?;
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let rs_name = format!("{name}-{hash}");
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {
                "name": rs_name,
                "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
        }))?;
        tokio::time::sleep(rollout).await;
        let rs = match replica_sets.create(&PostParams::default(), &rs).await {
            Ok(rs) => rs,
            Err(kube::Error::Api(e)) if e.code == 409 => replica_sets.get(&rs_name).await?,
            Err(e) => return Err(e.into()),
        };
        let ready = json!({"replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "fullyLabeledReplicas": replicas,
            "observedGeneration": rs.metadata.generation});
        replica_sets
            .patch_status(
                &rs_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": ready})),
            )
            .await?;
        let status = json!({"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
        deployments
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
    }
    Ok(())
}

/// One test's world: the shared control plane, an admin client, a fresh namespace and a scratch
/// directory for manifests and outputs. Test files add what only they need through their own
/// extension traits.
pub struct World {
    /// The shared control plane.
    pub cp: &'static ControlPlane,
    /// An admin client.
    pub client: kube::Client,
    /// The test's own namespace.
    pub ns: String,
    /// Scratch directory, removed when the world is dropped.
    pub dir: tempfile::TempDir,
}

impl World {
    /// A fresh namespace `<prefix>-<n>` on the shared control plane.
    ///
    /// # Panics
    /// When the control plane cannot start or the namespace cannot be created.
    pub async fn new(prefix: &str) -> World {
        let cp = ControlPlane::shared();
        let client = cp.client().await.unwrap();
        let ns = cp.namespace(prefix).await.unwrap();
        World {
            cp,
            client,
            ns,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `name` in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` in the scratch directory and returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The runner binary `binary` for context `name` with `manifest`, as admin, in this
    /// namespace.
    pub fn runner(&self, binary: &str, name: &str, manifest: &Path) -> RunnerCommand {
        RunnerCommand::new(
            runner_binary(binary),
            &self.cp.kubeconfig,
            &self.ns,
            name,
            manifest,
        )
    }

    /// Creates the status ConfigMap `name`.
    ///
    /// # Panics
    /// On API errors.
    pub async fn status_cm(&self, name: &str) {
        create_status_configmap(&self.client, &self.ns, name)
            .await
            .unwrap();
    }

    /// The status reported in ConfigMap `name`, if any.
    ///
    /// # Panics
    /// On API errors.
    pub async fn status(&self, name: &str) -> Option<serde_json::Value> {
        reported_status(&self.client, &self.ns, name).await.unwrap()
    }
}

/// Path of a runner binary built by `cargo build --bins` (next to this test executable's
/// `deps/` directory).
pub fn runner_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` first (hack/test.sh does)",
        bin.display()
    );
    bin
}

/// A runner process to spawn: the binary and its environment (which starts empty but for
/// `PATH` and `HOME`, so nothing from the caller's environment leaks in).
#[derive(Debug, Clone)]
pub struct RunnerCommand {
    /// The binary.
    pub bin: PathBuf,
    /// Its environment.
    pub env: BTreeMap<String, String>,
}

/// A finished runner process.
#[derive(Debug)]
pub struct RunnerOutput {
    /// Exit code (`-signal` if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the logs).
    pub stderr: String,
}

impl RunnerCommand {
    /// `bin` with the common `RUNNER_*` variables for context `name` in `namespace`, reading the
    /// manifest at `manifest`, and `KUBECONFIG` set to `kubeconfig`.
    pub fn new(
        bin: PathBuf,
        kubeconfig: &Path,
        namespace: &str,
        name: &str,
        manifest: &Path,
    ) -> Self {
        let mut env = BTreeMap::new();
        for k in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(k) {
                env.insert(k.to_string(), v);
            }
        }
        env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
        env.insert(
            "RUNNER_INPUT_MANIFEST_PATH".into(),
            manifest.display().to_string(),
        );
        env.insert("RUNNER_CONTEXT_NAME".into(), name.into());
        env.insert("RUNNER_CONTEXT_PLATFORM_NAMESPACE".into(), namespace.into());
        RunnerCommand { bin, env }
    }

    /// Sets (or, with `None`, removes) a variable.
    pub fn var(mut self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.env.insert(k.into(), v.into()),
            None => self.env.remove(k),
        };
        self
    }

    /// Spawns the process with piped output.
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub fn spawn(&self) -> Result<tokio::process::Child> {
        Ok(tokio::process::Command::new(&self.bin)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?)
    }

    /// Runs the process to completion (at most 120 s).
    ///
    /// # Errors
    /// When it cannot be spawned or runs too long.
    pub async fn run(&self) -> Result<RunnerOutput> {
        let child = self.spawn()?;
        collect(child).await
    }
}

/// Waits (at most 120 s) for `child` and collects its output.
///
/// # Errors
/// When it runs too long.
pub async fn collect(child: tokio::process::Child) -> Result<RunnerOutput> {
    use std::os::unix::process::ExitStatusExt;
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .context("runner did not exit within 120 s")??;
    Ok(RunnerOutput {
        code: out
            .status
            .code()
            .unwrap_or_else(|| -out.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

//! A bare control plane of its own for a test: etcd and kube-apiserver on free loopback ports,
//! with certificates made here (rcgen). It knows nothing of what runs on it: the CRDs to
//! install are passed in. For what needs an API server of its own (a restart mid-wait that
//! forces `410 Gone`, RBAC with verbs removed, bad input); pods run on the local cluster
//! ([`crate::cluster`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::process::{block_on_thread, spawn_tied_to_process};
use crate::tools::Tools;

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Bearer token of the harness' administrator (group `system:masters`).
pub const ADMIN_TOKEN: &str = "kar-admin-token";

/// etcd and kube-apiserver on loopback, with RBAC authorization on, a static token for an
/// administrator, ServiceAccount token issuance, an audit log, and the CRDs it was given.
/// Killed on drop (and with the process).
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
    /// Starts etcd and kube-apiserver, waits until `/readyz` answers and installs the
    /// CustomResourceDefinitions in the files `crds` (waiting until each is `Established`).
    /// Blocking; takes several seconds.
    ///
    /// # Errors
    /// When a tool is missing or a process does not become ready within 90 s.
    pub fn start(crds: &[PathBuf]) -> Result<ControlPlane> {
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
        let mut apiserver_cmd = vec![
            tools.kube_apiserver.display().to_string(),
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            // Kubernetes 1.37 refuses a loopback advertise address with the default (lease)
            // reconciler of the `kubernetes` Service's endpoints ("may not be in the loopback
            // range"); nothing here reaches the API server through that Service.
            "--endpoint-reconciler-type=none".into(),
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
        // For experiments (for example `--watch-cache-sizes=secrets#0`, which serves every read
        // of Secrets from etcd): extra kube-apiserver flags, separated by whitespace.
        if let Ok(extra) = std::env::var("KAR_APISERVER_ARGS") {
            apiserver_cmd.extend(extra.split_whitespace().map(String::from));
        }
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
        if !tools.kube_apiserver_version.is_empty() {
            let (kubeconfig, want) = (cp.kubeconfig.clone(), tools.kube_apiserver_version.clone());
            block_on_thread(async move { check_version(&kubeconfig, &want).await })?;
        }
        for crd in crds {
            let (kubeconfig, crd) = (cp.kubeconfig.clone(), crd.clone());
            block_on_thread(async move { install_crd(&kubeconfig, &crd).await })?;
        }
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

impl ControlPlane {
    /// Kills kube-apiserver and etcd and removes their directory (certificates, etcd's data,
    /// logs). What drop does; for a control plane in a `static`, which is never dropped.
    pub fn shutdown(&self) {
        self.stop_apiserver();
        let mut etcd = self.etcd.lock().unwrap_or_else(|e| e.into_inner());
        let _ = etcd.kill();
        let _ = etcd.wait();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
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
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    sas.create_token_request(name, &PostParams::default(), &request)
        .await?
        .status
        .context("TokenRequest has no status")?
        .token
        .context("TokenRequest's status has no token")
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

/// Fails unless the API server reports `want` as its `gitVersion` (`GET /version`).
async fn check_version(kubeconfig: &Path, want: &str) -> Result<()> {
    let info = client_from(kubeconfig).await?.apiserver_version().await?;
    if info.git_version != want {
        bail!(
            "kube-apiserver {} is {}, not {want} as KAR_KUBE_APISERVER_VERSION says \
             (set both from hack/install-tools.sh --print)",
            Tools::locate()?.kube_apiserver.display(),
            info.git_version
        );
    }
    Ok(())
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

//! The one environment every end-to-end test runs in: [`TestEnv`], a fresh namespace on an API
//! server, an administrator's client for it and a scratch directory, on either of two
//! [`Backend`]s: the bare API server of this test process ([`ControlPlane::shared`], no
//! kubelet, no controllers) or the real local cluster of `hack/cluster.sh` ([`Cluster`], real
//! pods). What a test does there is written once, as methods of [`TestEnv`]: those of any test
//! here, the Argo ones in [`crate::argo`], the Helm ones in [`crate::helm`], the Job ones in
//! [`crate::cluster`]. Also the status ConfigMap the runners report to
//! ([`create_status_configmap`], [`reported_status`]), for code that holds a client only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use action_runner::status::{ActionStatus, Phase};
use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::cluster::{Cluster, describe, record_skip};
use crate::control_plane::ControlPlane;
use crate::process::{RunnerCommand, RunnerOutput, on_exit};
use crate::tools::{Tools, runner_binary};

impl ControlPlane {
    /// One control plane per test process, started on first use, with Argo's full Workflow
    /// CRD (so the API server validates Workflows as a cluster with Argo installed does): the
    /// one [`TestEnv::bare`] uses.
    ///
    /// # Panics
    /// When it cannot start.
    pub fn shared() -> &'static ControlPlane {
        static CP: OnceLock<&'static ControlPlane> = OnceLock::new();
        CP.get_or_init(|| ControlPlane::start_for_process().expect("start the local control plane"))
    }

    /// A control plane of its own (with Argo's full Workflow CRD, as [`ControlPlane::shared`]),
    /// for a test that must not disturb the others (it restarts the API server) or for the
    /// bench; it lives until the process exits, which shuts it down. Blocking; takes several
    /// seconds.
    ///
    /// # Errors
    /// When the tools are missing or it cannot start.
    pub fn start_for_process() -> Result<&'static ControlPlane> {
        let crd = Tools::locate()?.argo_workflow_crd();
        let cp: &'static ControlPlane = Box::leak(Box::new(ControlPlane::start(&[crd])?));
        on_exit(move || cp.shutdown());
        Ok(cp)
    }
}

/// Where a [`TestEnv`] runs.
#[derive(Clone, Copy)]
pub enum Backend {
    /// A bare API server (etcd and kube-apiserver on loopback): nothing runs pods or plays
    /// controllers but what the test starts ([`crate::controllers`]).
    BareApiServer(&'static ControlPlane),
    /// The local cluster of `hack/cluster.sh`: a kubelet runs real pods, Argo's real controller
    /// runs Workflows.
    LocalCluster(&'static Cluster),
}

/// One test's environment: a fresh namespace on the API server of its [`Backend`], an
/// administrator's client, and a scratch directory for manifests and outputs (removed when the
/// environment is dropped). Start one with [`TestEnv::bare`] or [`TestEnv::local_cluster`];
/// see `docs/testing.md` for how to write a test with it.
pub struct TestEnv {
    /// Where it runs.
    pub backend: Backend,
    /// An administrator's client.
    pub client: kube::Client,
    /// The test's own namespace.
    pub ns: String,
    /// Scratch directory, removed when the environment is dropped.
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    /// A fresh namespace `<prefix>-<n>` on this process's shared bare API server
    /// ([`ControlPlane::shared`], started on first use).
    ///
    /// # Panics
    /// When the control plane cannot start or the namespace cannot be created.
    pub async fn bare(prefix: &str) -> TestEnv {
        TestEnv::on_control_plane(ControlPlane::shared(), prefix)
            .await
            .unwrap()
    }

    /// A fresh namespace `<prefix>-<n>` on the bare API server `cp` (one of the test's own:
    /// [`ControlPlane::start_for_process`]).
    ///
    /// # Errors
    /// On API errors.
    pub async fn on_control_plane(cp: &'static ControlPlane, prefix: &str) -> Result<TestEnv> {
        let client = cp.client().await?;
        let ns = cp.namespace(prefix).await?;
        Ok(TestEnv {
            backend: Backend::BareApiServer(cp),
            client,
            ns,
            dir: tempfile::tempdir()?,
        })
    }

    /// A fresh namespace `<prefix>-<pid>-<n>` on the local cluster, or `None` when there is no
    /// cluster: then the test is recorded as skipped under `prefix` ([`record_skip`]) and
    /// should return at once. Panics instead when `KAR_REQUIRE_CLUSTER=1` ([`Cluster::get`]).
    ///
    /// # Panics
    /// When the cluster is required but not set, or the namespace cannot be created.
    pub async fn local_cluster(prefix: &str) -> Option<TestEnv> {
        let Some(cluster) = Cluster::get() else {
            record_skip(prefix);
            return None;
        };
        let client = cluster.client().await.unwrap();
        cluster.check_argo_version(&client).await;
        let ns = cluster.namespace(&client, prefix).await.unwrap();
        Some(TestEnv {
            backend: Backend::LocalCluster(cluster),
            client,
            ns,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// The administrator's kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        match self.backend {
            Backend::BareApiServer(cp) => &cp.kubeconfig,
            Backend::LocalCluster(cluster) => &cluster.kubeconfig,
        }
    }

    /// The bare API server it runs on.
    ///
    /// # Panics
    /// On the local cluster.
    pub fn control_plane(&self) -> &'static ControlPlane {
        match self.backend {
            Backend::BareApiServer(cp) => cp,
            Backend::LocalCluster(_) => panic!("this test needs the bare API server"),
        }
    }

    /// The local cluster it runs on.
    ///
    /// # Panics
    /// On a bare API server.
    pub fn cluster(&self) -> &'static Cluster {
        match self.backend {
            Backend::LocalCluster(cluster) => cluster,
            Backend::BareApiServer(_) => panic!("this test needs the local cluster"),
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

    /// The runner binary `binary` ([`runner_binary`]) for context `name` with `manifest`, as
    /// the administrator, in this namespace, run on this machine.
    pub fn runner(&self, binary: &str, name: &str, manifest: &Path) -> RunnerCommand {
        RunnerCommand::new(
            runner_binary(binary),
            self.kubeconfig(),
            &self.ns,
            name,
            manifest,
        )
    }

    /// Runs `cmd` to its end (at most 120 s, [`crate::process::collect`]) as a task of its
    /// own; one that does not end in time fails with its stderr so far and what went on in the
    /// namespace ([`describe`]: pods, Workflows, Events).
    pub fn spawn_run(&self, cmd: RunnerCommand) -> tokio::task::JoinHandle<RunnerOutput> {
        let (client, ns) = (self.client.clone(), self.ns.clone());
        tokio::spawn(async move {
            match cmd.run().await {
                Ok(out) => out,
                Err(e) => panic!("{e:#}\n{}", describe(&client, &ns).await),
            }
        })
    }

    /// Creates the status ConfigMap `name`.
    ///
    /// # Panics
    /// On API errors.
    pub async fn create_status_configmap(&self, name: &str) {
        create_status_configmap(&self.client, &self.ns, name)
            .await
            .unwrap();
    }

    /// The status reported in ConfigMap `name`, if any.
    ///
    /// # Panics
    /// On API errors.
    pub async fn status(&self, name: &str) -> Option<ActionStatus> {
        reported_status(&self.client, &self.ns, name).await.unwrap()
    }

    /// The status reported in ConfigMap `name`.
    ///
    /// # Panics
    /// On API errors, or naming the ConfigMap when it holds none.
    pub async fn expect_status(&self, name: &str) -> ActionStatus {
        self.status(name)
            .await
            .unwrap_or_else(|| panic!("no status in ConfigMap {}/{name}", self.ns))
    }

    /// Waits (watching, at most 60 s) until the status reported in ConfigMap `name` has
    /// `phase`, and returns it.
    ///
    /// # Panics
    /// On API errors or when it does not in time.
    pub async fn await_phase(&self, name: &str, phase: Phase) -> ActionStatus {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        let cond = kube::runtime::wait::await_condition(api, name, |cm: Option<&ConfigMap>| {
            cm.and_then(|c| c.data.as_ref())
                .and_then(|d| d.get("status"))
                .and_then(|s| serde_json::from_str::<ActionStatus>(s).ok())
                .is_some_and(|v| v.phase == phase)
        });
        tokio::time::timeout(Duration::from_secs(60), cond)
            .await
            .unwrap()
            .unwrap();
        self.status(name).await.unwrap()
    }

    /// Every status written to status ConfigMap `name`, in order, as a watch sees them (until
    /// the returned task is aborted).
    pub fn statuses_seen(
        &self,
        name: &str,
    ) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<ActionStatus>>>) {
        let seen = Arc::new(Mutex::new(Vec::<ActionStatus>::new()));
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        let config =
            kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            let mut events = kube::runtime::watcher(cms, config).boxed();
            while let Some(Ok(e)) = events.next().await {
                if let kube::runtime::watcher::Event::Apply(cm) = e
                    && let Some(s) = cm.data.and_then(|d| d.get("status").cloned())
                {
                    sink.lock().unwrap().push(serde_json::from_str(&s).unwrap());
                }
            }
        });
        (task, seen)
    }

    /// Fails when `text` (a secret) is in the run `out` of context `name`: its standard output
    /// or error, or its status ConfigMap.
    ///
    /// # Panics
    /// Naming the place that shows it, or on API errors.
    pub async fn assert_never_shown(&self, name: &str, out: &RunnerOutput, text: &str) {
        out.assert_not_shown(text);
        let cm = Api::<ConfigMap>::namespaced(self.client.clone(), &self.ns)
            .get(name)
            .await
            .unwrap();
        let all = serde_json::to_string(&cm.data).unwrap();
        assert!(!all.contains(text), "the status shows it: {all}");
    }

    /// Deployment `name`, if it exists.
    ///
    /// # Panics
    /// On API errors.
    pub async fn deployment(&self, name: &str) -> Option<Deployment> {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }
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

/// The `status` key of ConfigMap `namespace/name`, read as the runners' typed
/// [`ActionStatus`], if any.
///
/// # Errors
/// On API errors or if the key is not JSON.
pub async fn reported_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<ActionStatus>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api.get(name).await?;
    match cm.data.and_then(|d| d.get("status").cloned()) {
        Some(s) => Ok(Some(serde_json::from_str(&s)?)),
        None => Ok(None),
    }
}

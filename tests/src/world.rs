//! One test's world on the shared bare control plane: an admin client, a fresh namespace, a
//! scratch directory; and the status ConfigMap the runners report to.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use action_runner::status::ActionStatus;
use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::control_plane::ControlPlane;
use crate::process::{RunnerCommand, runner_binary};
use crate::tools::Tools;

impl ControlPlane {
    /// One control plane per test process, started on first use, with Argo's full Workflow
    /// CRD (so the API server validates Workflows as a cluster with Argo installed does).
    ///
    /// # Panics
    /// When it cannot start.
    pub fn shared() -> &'static ControlPlane {
        static CP: OnceLock<ControlPlane> = OnceLock::new();
        CP.get_or_init(|| {
            let crd = Tools::locate()
                .expect("the tools (hack/install-tools.sh)")
                .argo_workflow_crd();
            let cp = ControlPlane::start(&[crd]).expect("start the local control plane");
            crate::process::on_exit(|| {
                if let Some(cp) = CP.get() {
                    cp.shutdown();
                }
            });
            cp
        })
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
    pub async fn status(&self, name: &str) -> Option<ActionStatus> {
        reported_status(&self.client, &self.ns, name).await.unwrap()
    }
}

//! What the argo-runner tests do in a [`TestEnv`]: run `argo-runner`, wait for a Workflow, list
//! them, and, on the bare API server, play Argo's controller for one Workflow.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{DynamicObject, ListParams};

use crate::controllers::{Outcome, play_argo_controller, wait_for_workflow, workflows};
use crate::process::RunnerCommand;
use crate::test_env::TestEnv;
use crate::tools::Tools;

/// Path of one of Argo's example Workflows (`examples/<name>.yaml` of the Argo in use).
///
/// # Panics
/// When the tools are not installed.
pub fn argo_example(name: &str) -> PathBuf {
    Tools::locate().unwrap().argo_example(name)
}

impl TestEnv {
    /// `argo-runner` for context `name` with `manifest`, as the administrator.
    pub fn argo_runner(&self, name: &str, manifest: &Path) -> RunnerCommand {
        self.runner("argo-runner", name, manifest)
    }

    /// Waits (watching, at most `timeout`) until Workflow `name` exists, and returns it.
    ///
    /// # Panics
    /// On API errors or when it does not appear in time.
    pub async fn wait_for_workflow(&self, name: &str, timeout: Duration) -> DynamicObject {
        wait_for_workflow(&self.client, &self.ns, name, timeout)
            .await
            .unwrap()
    }

    /// Names of the Workflows in the namespace.
    ///
    /// # Panics
    /// On API errors.
    pub async fn workflow_names(&self) -> Vec<String> {
        workflows(&self.client, &self.ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|w| w.metadata.name)
            .collect()
    }

    /// Plays Argo's controller for Workflow `name` in a task of its own: once it exists, it
    /// runs for 300 ms and then ends with `outcome` ([`play_argo_controller`]).
    pub fn spawn_argo_controller(
        &self,
        name: &str,
        outcome: Outcome,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        tokio::spawn(play_argo_controller(
            self.client.clone(),
            self.ns.clone(),
            name.into(),
            Duration::from_millis(300),
            outcome,
        ))
    }
}

//! What the helm-runner tests do in a [`TestEnv`]: which helm a test drives ([`HelmBin`], and
//! [`both_helms!`](crate::both_helms) to run a test once with each), `helm-runner` for a
//! context ([`TestEnv::helm_runner`]), its outputs and Helm's release records, and the check of
//! a run refused as bad input ([`TestEnv::assert_bad_input`]).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

use crate::process::{RunnerCommand, RunnerOutput, error_lines};
use crate::test_env::TestEnv;
use crate::tools::Tools;

/// Which helm a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelmBin {
    /// `KAR_HELM3`: helm v3.22.0.
    V3,
    /// `KAR_HELM4`: helm v4.3.2, the default.
    V4,
}

impl HelmBin {
    /// The helm binary.
    ///
    /// # Panics
    /// When the tools are not installed.
    pub fn path(self) -> PathBuf {
        let t = Tools::locate().unwrap();
        let h = match self {
            HelmBin::V3 => t.helm3.clone(),
            HelmBin::V4 => t.helm4.clone(),
        };
        assert!(
            h.is_file(),
            "helm {} ({self:?}) is missing: run hack/install-tools.sh",
            h.display()
        );
        h
    }

    /// The version helm reports, as the runner puts it in its status.
    pub fn version(self) -> &'static str {
        match self {
            HelmBin::V3 => "v3.22.0",
            HelmBin::V4 => "v4.3.2",
        }
    }
}

impl TestEnv {
    /// `helm-runner` driving `helm` for context `name` (its status ConfigMap is created),
    /// `command`, the manifest `manifest` (written to `<name>-input.yaml`), Helm's repository
    /// cache and the outputs (`<name>-release.yaml`, `<name>-additional.yaml`) in the scratch
    /// directory.
    ///
    /// # Panics
    /// On API errors, or when the tools are not installed.
    pub async fn helm_runner(
        &self,
        helm: HelmBin,
        name: &str,
        command: &str,
        manifest: &str,
    ) -> RunnerCommand {
        self.create_status_configmap(name).await;
        let m = self.file(&format!("{name}-input.yaml"), manifest);
        let out = |suffix: &str| self.path(&format!("{name}-{suffix}.yaml"));
        self.runner("helm-runner", name, &m)
            .var("RUNNER_COMMAND", Some(command))
            .var(
                "RUNNER_HELM_BINARY_PATH",
                Some(helm.path().to_str().unwrap()),
            )
            .var(
                "RUNNER_REPOSITORY_CACHE_PATH",
                Some(self.path("cache").to_str().unwrap()),
            )
            .var(
                "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                Some(out("release").to_str().unwrap()),
            )
            .var(
                "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                Some(out("additional").to_str().unwrap()),
            )
    }

    /// [`TestEnv::helm_runner`], run to its end.
    ///
    /// # Panics
    /// As [`TestEnv::helm_runner`], or when the runner cannot run or does not end.
    pub async fn run_helm(
        &self,
        helm: HelmBin,
        name: &str,
        command: &str,
        manifest: &str,
    ) -> RunnerOutput {
        let cmd = self.helm_runner(helm, name, command, manifest).await;
        cmd.run().await.unwrap()
    }

    /// [`TestEnv::helm_runner`] on the release file `release_file` (a name in the scratch
    /// directory: another run's release output), run to its end.
    ///
    /// # Panics
    /// As [`TestEnv::run_helm`].
    pub async fn run_helm_on(
        &self,
        helm: HelmBin,
        name: &str,
        command: &str,
        manifest: &str,
        release_file: &str,
    ) -> RunnerOutput {
        let cmd = self.helm_runner(helm, name, command, manifest).await;
        cmd.on_release(&self.path(release_file))
            .run()
            .await
            .unwrap()
    }

    /// The release output file of the run `name`, parsed (Capact's consumers read it as YAML:
    /// what counts is the document, not its layout), without its `valuesDigest`, whose shape is
    /// checked (it differs with every input).
    ///
    /// # Panics
    /// When it is missing or not YAML.
    pub fn release_output(&self, name: &str) -> serde_json::Value {
        let mut doc = parse_yaml(
            &std::fs::read_to_string(self.path(&format!("{name}-release.yaml"))).unwrap(),
        );
        // The values' digest differs with every input: checked for its shape, then left out, so
        // that tests compare the rest of the document.
        if let Some(value) = doc["value"].as_object_mut()
            && let Some(digest) = value.remove("valuesDigest")
        {
            let hex = digest.as_str().and_then(|d| d.strip_prefix("sha256:"));
            assert!(
                hex.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
                "valuesDigest {digest}"
            );
        }
        doc
    }

    /// The additional output file of the run `name`, parsed, if it was written.
    ///
    /// # Panics
    /// When it is not YAML.
    pub fn additional_output(&self, name: &str) -> Option<serde_json::Value> {
        std::fs::read_to_string(self.path(&format!("{name}-additional.yaml")))
            .ok()
            .map(|t| parse_yaml(&t))
    }

    /// Names of Helm's records of `release` (the Secrets or ConfigMaps labelled `owner=helm`),
    /// sorted.
    ///
    /// # Panics
    /// On API errors.
    pub async fn helm_record_names<K>(&self, release: &str) -> Vec<String>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
        let lp = ListParams::default().labels(&format!("owner=helm,name={release}"));
        let mut names: Vec<String> = api
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|o| o.meta().name.clone())
            .collect();
        names.sort();
        names
    }

    /// `(revision, status)` of each of Helm's records (Secrets) of `release`, from their
    /// labels, oldest first.
    ///
    /// # Panics
    /// On API errors.
    pub async fn helm_record_statuses(&self, release: &str) -> Vec<(u64, String)> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let lp = ListParams::default().labels(&format!("owner=helm,name={release}"));
        let mut out: Vec<(u64, String)> = api
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| {
                let labels = o.metadata.labels.unwrap_or_default();
                (labels["version"].parse().unwrap(), labels["status"].clone())
            })
            .collect();
        out.sort();
        out
    }

    /// Checks the run `out` of context `name` refused as bad input: exit 2, exactly one
    /// `ERROR` line, on one line, holding `needle`, and no status written to its ConfigMap.
    ///
    /// # Panics
    /// When any of that does not hold.
    pub async fn assert_bad_input(&self, name: &str, out: &RunnerOutput, needle: &str) {
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        let errors: Vec<String> = error_lines(&out.stderr)
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert!(errors[0].contains(needle), "{name}: {}", errors[0]);
        assert!(!errors[0].contains('\n'), "{name}: {}", errors[0]);
        assert!(
            self.status(name).await.is_none(),
            "{name}: bad input writes no status"
        );
    }
}

impl RunnerCommand {
    /// This `helm-runner` command on the release file `path` (`RUNNER_HELM_RELEASE_PATH`:
    /// another run's release output), as upgrade, rollback and uninstall take it.
    pub fn on_release(self, path: &Path) -> RunnerCommand {
        self.var("RUNNER_HELM_RELEASE_PATH", Some(path.to_str().unwrap()))
    }
}

/// A YAML document (a runner's output file), parsed.
///
/// # Panics
/// When `text` is not YAML, showing it.
pub fn parse_yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

/// Runs each named test function (an `async fn name(h: HelmBin)` of the calling test file)
/// once per helm, as the tests `helm4::<name>` (the default) and `helm3::<name>`.
#[macro_export]
macro_rules! both_helms {
    ($($name:ident),* $(,)?) => {
        mod helm4 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::helm::HelmBin::V4).await
            })*
        }
        mod helm3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::helm::HelmBin::V3).await
            })*
        }
    };
}

/// An install's or upgrade's `runnerStatus` without what differs from run to run, after checking
/// its shape: `releaseSize` (the release-size preflight's figures: `limit` 1 MiB, `bytes`) and
/// `release.valuesDigest` (`sha256:<hex>`). The tests then compare the rest exactly.
///
/// # Panics
/// When either is present with another shape.
pub fn stable_status(runner_status: &serde_json::Value) -> serde_json::Value {
    let mut v = runner_status.clone();
    if let Some(size) = v.as_object_mut().and_then(|o| o.remove("releaseSize")) {
        assert_eq!(size["limit"], 1048576, "releaseSize {size}");
        assert!(size["bytes"].as_u64().is_some(), "releaseSize {size}");
    }
    if let Some(digest) = v["release"]
        .as_object_mut()
        .and_then(|o| o.remove("valuesDigest"))
    {
        assert!(
            digest
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71),
            "valuesDigest {digest}"
        );
    }
    v
}

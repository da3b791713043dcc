//! What the helm-runner tests share: which helm a test drives ([`HelmBin`]), the `helm-runner`
//! command for a test's [`World`] ([`helm_runner`]), and the check of a run refused as bad
//! input ([`assert_bad_input`]).

use std::path::PathBuf;

use crate::{RunnerCommand, RunnerOutput, Tools, World, create_status_configmap, error_lines};

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

/// `helm-runner` driving `helm` for context `name` (its status ConfigMap is created),
/// `command`, the manifest `manifest` (written to `<name>-input.yaml`), Helm's repository cache
/// and the outputs (`<name>-release.yaml`, `<name>-additional.yaml`) in `w`'s scratch directory.
///
/// # Panics
/// On API errors, or when the tools are not installed.
pub async fn helm_runner(
    w: &World,
    helm: HelmBin,
    name: &str,
    command: &str,
    manifest: &str,
) -> RunnerCommand {
    create_status_configmap(&w.client, &w.ns, name)
        .await
        .unwrap();
    let m = w.file(&format!("{name}-input.yaml"), manifest);
    let out = |suffix: &str| w.path(&format!("{name}-{suffix}.yaml"));
    w.runner("helm-runner", name, &m)
        .var("RUNNER_COMMAND", Some(command))
        .var(
            "RUNNER_HELM_BINARY_PATH",
            Some(helm.path().to_str().unwrap()),
        )
        .var(
            "RUNNER_REPOSITORY_CACHE_PATH",
            Some(w.path("cache").to_str().unwrap()),
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

/// Checks a run refused as bad input: exit 2, exactly one `ERROR` line, on one line, holding
/// `needle`, and no status written to the ConfigMap `name`.
///
/// # Panics
/// When any of that does not hold.
pub async fn assert_bad_input(w: &World, name: &str, out: &RunnerOutput, needle: &str) {
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
        w.status(name).await.is_none(),
        "{name}: bad input writes no status"
    );
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

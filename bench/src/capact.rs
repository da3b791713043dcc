//! Capact's Go runners as peers: how to invoke them, and what the report says about them.
//!
//! Their contract (read from Capact's `pkg/runner`): `RUNNER_CONTEXT_PATH` names a context file
//! `{name, dryRun, timeout, platform: {namespace, serviceAccountName, ownerRef}}` (a `timeout` is
//! required: without one the run's deadline has already passed) and `RUNNER_ARGS_PATH` an args
//! file. The argo-runner's args are `{workflow: <WorkflowSpec>}`; it names the Workflow after
//! the context, sets the context's `ownerRef` on it (required: an empty one is rejected by the
//! API server) and writes its status into a Secret of the context's name, which must exist.
//! The helm-runner reads the same `RUNNER_*` variables as ours and always waits (`Wait = true`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Creates what Capact's argo-runner needs for Workflow `ns/name` (the owner object and the
/// status Secret) and writes its context and args files into `dir`; returns the variables.
pub async fn argo_prepare(
    admin: &kube::Client,
    manifest: &Path,
    ns: &str,
    name: &str,
    dir: &Path,
) -> Result<Vec<(&'static str, PathBuf)>> {
    let owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": format!("{name}-owner")}}))?;
    let owner = Api::<ConfigMap>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &owner)
        .await?;
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let workflow: Value = serde_saphyr::from_str(&std::fs::read_to_string(manifest)?)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let context = json!({
        "name": name, "dryRun": false, "timeout": "10m",
        "platform": {"namespace": ns, "serviceAccountName": "", "ownerRef": {
            "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid,
        }},
    });
    let (context_path, args_path) = (dir.join("context.json"), dir.join("args.json"));
    std::fs::write(&context_path, context.to_string())?;
    std::fs::write(
        &args_path,
        json!({"workflow": workflow["spec"]}).to_string(),
    )?;
    Ok(vec![
        ("RUNNER_CONTEXT_PATH", context_path),
        ("RUNNER_ARGS_PATH", args_path),
    ])
}

/// Sets up `cmd` to run Capact's helm-runner with `args` (`{name, chart, values}`): `install`,
/// or with `upgrade_from` (an install's release file) `upgrade`.
pub fn helm_env(
    cmd: &mut std::process::Command,
    args: &Value,
    ns: &str,
    key: &str,
    dir: &Path,
    upgrade_from: Option<PathBuf>,
) -> Result<()> {
    let context =
        json!({"name": key, "dryRun": false, "timeout": "5m", "platform": {"namespace": ns}});
    let (context_path, args_path) = (
        dir.join(format!("{key}-context.json")),
        dir.join(format!("{key}-args.json")),
    );
    std::fs::write(&context_path, context.to_string())?;
    std::fs::write(&args_path, args.to_string())?;
    cmd.env("RUNNER_CONTEXT_PATH", context_path)
        .env("RUNNER_ARGS_PATH", args_path)
        .env("RUNNER_REPOSITORY_CACHE_PATH", dir.join("cache"))
        .env(
            "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
            dir.join(format!("{key}-release.yaml")),
        )
        .env(
            "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
            dir.join(format!("{key}-additional.yaml")),
        );
    match upgrade_from {
        Some(release_file) => cmd
            .env("RUNNER_COMMAND", "upgrade")
            .env("RUNNER_HELM_RELEASE_PATH", release_file),
        None => cmd.env("RUNNER_COMMAND", "install"),
    };
    Ok(())
}

/// What the report says about Capact.
pub fn status(argo: Option<&Path>, helm: Option<&Path>) -> String {
    match (argo, helm) {
        (None, None) => "not measured in this run: KAR_CAPACT_ARGO_RUNNER and KAR_CAPACT_HELM_RUNNER are not set. The Go module proxy answers 403 Forbidden for capact.io/capact (and github.com/capactio/*) at every version, so no hack/ script can build it; docs/benchmarks.md gives figures measured with binaries built by hand outside this repository (how: bench/README.md)".into(),
        _ => format!(
            "measured with binaries built outside this repository (see bench/README.md): argo-runner {}, helm-runner {}",
            argo.map(|p| p.display().to_string()).unwrap_or("(not given)".into()),
            helm.map(|p| p.display().to_string()).unwrap_or("(not given)".into())
        ),
    }
}

//! Where the binaries are: the pinned tools `hack/install-tools.sh` builds (etcd,
//! kube-apiserver, helm, an OCI registry) and the Argo module it downloads (CRDs, examples),
//! read from `KAR_ETCD`, `KAR_KUBE_APISERVER` (and `KAR_KUBE_APISERVER_VERSION`), `KAR_ARGO_DIR`,
//! `KAR_HELM` (and `KAR_HELM3`, `KAR_HELM4`), `KAR_REGISTRY`, or else from
//! `hack/install-tools.sh --print` ([`Tools`]); and this workspace's runner binaries
//! ([`runner_binary`], the one place that finds them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// Paths of the peer tools built by `hack/install-tools.sh`.
#[derive(Debug, Clone)]
pub struct Tools {
    /// etcd server binary.
    pub etcd: PathBuf,
    /// kube-apiserver binary: the default Kubernetes minor's, or the oldest's
    /// (`KAR_KUBERNETES=oldest hack/install-tools.sh --print`).
    pub kube_apiserver: PathBuf,
    /// The version `kube_apiserver` must report (`KAR_KUBE_APISERVER_VERSION`, e.g. `v1.37.2`):
    /// the harness checks it once the API server is up, so that a run meant for one minor cannot
    /// pass on another. Empty when not set: no check.
    pub kube_apiserver_version: String,
    /// Unpacked Argo module of the Argo in use (`github.com/argoproj/argo-workflows/v4`, or `/v3`
    /// with `KAR_ARGO_MAJOR=3`): CRDs, examples.
    pub argo_dir: PathBuf,
    /// The default helm CLI binary (`KAR_HELM`: Helm 4, as the image ships).
    pub helm: PathBuf,
    /// Helm 3 (`KAR_HELM3`), still supported; empty when not set.
    pub helm3: PathBuf,
    /// Helm 4 (`KAR_HELM4`); empty when not set.
    pub helm4: PathBuf,
    /// CNCF Distribution's OCI registry (`KAR_REGISTRY`), for the helm tests of `oci://`
    /// charts; empty when not set.
    pub registry: PathBuf,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a runner binary of this workspace (`argo-runner`, `helm-runner`, `echo-runner`):
/// from the directory `KAR_RUNNER_DIR` names when it is set (for example the static release
/// build of `hack/build-images.sh`), else the one `cargo build --bins` built (next to the
/// running executable, or next to its `deps/` directory, as test executables are).
///
/// # Panics
/// When the binary is missing.
pub fn runner_binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("KAR_RUNNER_DIR") {
        let bin = PathBuf::from(dir).join(name);
        assert!(
            bin.exists(),
            "{} is missing (KAR_RUNNER_DIR)",
            bin.display()
        );
        return bin;
    }
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
        if ![
            "KAR_ETCD",
            "KAR_KUBE_APISERVER",
            "KAR_ARGO_DIR",
            "KAR_HELM",
            "KAR_HELM3",
            "KAR_HELM4",
            "KAR_REGISTRY",
        ]
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
            kube_apiserver_version: vars
                .get("KAR_KUBE_APISERVER_VERSION")
                .cloned()
                .unwrap_or_default(),
            argo_dir: get("KAR_ARGO_DIR")?,
            helm: vars.get("KAR_HELM").map(PathBuf::from).unwrap_or_default(),
            helm3: vars.get("KAR_HELM3").map(PathBuf::from).unwrap_or_default(),
            helm4: vars.get("KAR_HELM4").map(PathBuf::from).unwrap_or_default(),
            registry: vars
                .get("KAR_REGISTRY")
                .map(PathBuf::from)
                .unwrap_or_default(),
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

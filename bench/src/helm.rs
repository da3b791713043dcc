//! The Helm side: an install and an upgrade of the same chart, `helm-runner` against the bare
//! Helm CLI (`helm upgrade --install`) and Capact's Go `helm-runner` when its binary is given.
//!
//! The chart is the one `helm create webapp` writes (a Deployment, a Service and a
//! ServiceAccount), packaged once; the upgrade changes the image tag, so a new ReplicaSet rolls
//! out. No kubelet runs: the driver plays the Deployment controller
//! ([`play_deployment_controller`]), and marks a rollout done 100 ms after it sees it. Helm's
//! `--wait` checks readiness at once and then every 2 s (`pkg/kube/wait.go`), so every `--wait`
//! run takes one 2 s poll, the same for each tool, instead of winning or losing a race with the
//! driver. The same install and upgrade without `--wait` (a second release) show what each
//! tool costs on top of Helm's own work; Capact's runner always waits, so it has no such figure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use action_runner_tests::control_plane::ControlPlane;
use action_runner_tests::controllers::play_deployment_controller;
use action_runner_tests::test_env::{TestEnv, create_status_configmap};
use action_runner_tests::tools::{helm_cmd, runner_binary};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};

use crate::measure::*;
use crate::{audit, runner_env, tool_command};

/// The upgrade's values: a new image tag.
const UPGRADE_VALUES: &str = "image:\n  tag: \"1.27\"\n";
/// How long the stand-in Deployment controller takes to finish a rollout.
const ROLLOUT: Duration = Duration::from_millis(100);

/// One tool of the Helm comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// Our `helm-runner` (which runs the Helm CLI).
    Ours,
    /// `helm upgrade --install`.
    HelmCli,
    /// Capact's Go `helm-runner` (the Helm SDK in process).
    Capact,
}

impl Tool {
    pub fn label(self) -> &'static str {
        match self {
            Tool::Ours => "helm-runner (ours)",
            Tool::HelmCli => "helm upgrade --install",
            Tool::Capact => "Capact helm-runner",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Tool::Ours => "helm-runner",
            Tool::HelmCli => "helm-cli",
            Tool::Capact => "capact-helm-runner",
        }
    }
}

/// One measured Helm operation.
struct Step {
    /// Figure prefix and file prefix: `install`, `upgrade`, `installNoWait`, `upgradeNoWait`.
    key: &'static str,
    release: &'static str,
    /// For an upgrade: the key of the install step whose release file it reads.
    upgrades: Option<&'static str>,
    wait: bool,
}

const STEPS: [Step; 4] = [
    Step {
        key: "install",
        release: "shop",
        upgrades: None,
        wait: true,
    },
    Step {
        key: "upgrade",
        release: "shop",
        upgrades: Some("install"),
        wait: true,
    },
    Step {
        key: "installNoWait",
        release: "shop-nowait",
        upgrades: None,
        wait: false,
    },
    Step {
        key: "upgradeNoWait",
        release: "shop-nowait",
        upgrades: Some("installNoWait"),
        wait: false,
    },
];

/// The Helm comparison's fixtures.
pub struct HelmBench {
    /// The bench's control plane: each run has a [`TestEnv`] of its own there.
    pub cp: &'static ControlPlane,
    /// The Helm CLI (`KAR_HELM`), also the one our runner runs.
    pub helm: PathBuf,
    /// Capact's helm-runner (`KAR_CAPACT_HELM_RUNNER`).
    pub capact: Option<PathBuf>,
    /// The packaged chart (`webapp-0.1.0.tgz`).
    pub chart: PathBuf,
    /// Keeps the chart's directory.
    _dir: tempfile::TempDir,
}

impl HelmBench {
    /// Creates and packages the chart with `helm create` and `helm package`.
    pub fn new(cp: &'static ControlPlane, helm: PathBuf, capact: Option<PathBuf>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("bench-helm-").tempdir()?;
        helm_cmd(&["create", "webapp"], dir.path())?;
        helm_cmd(&["package", "webapp"], dir.path())?;
        let chart = dir.path().join("webapp-0.1.0.tgz");
        Ok(HelmBench {
            cp,
            helm,
            capact,
            chart,
            _dir: dir,
        })
    }

    /// The tools present, ours first.
    pub fn tools(&self) -> Vec<Tool> {
        let mut t = vec![Tool::Ours, Tool::HelmCli];
        if self.capact.is_some() {
            t.push(Tool::Capact);
        }
        t
    }

    pub fn binary(&self, tool: Tool) -> PathBuf {
        match tool {
            Tool::Ours => runner_binary("helm-runner"),
            Tool::HelmCli => self.helm.clone(),
            Tool::Capact => self.capact.clone().unwrap_or_default(),
        }
    }

    /// The command for `step` in `env`'s namespace, in its scratch directory (Helm's homes,
    /// manifests, release files).
    fn command(
        &self,
        env: &TestEnv,
        tool: Tool,
        step: &Step,
        kubeconfig: &Path,
    ) -> Result<std::process::Command> {
        let (ns, dir) = (env.ns.as_str(), env.dir.path());
        let mut cmd = tool_command(env, &self.binary(tool), kubeconfig);
        let chart = self.chart.display().to_string();
        let values_yaml = if step.upgrades.is_some() {
            UPGRADE_VALUES
        } else {
            "{}\n"
        };
        let values: Value = serde_saphyr::from_str(values_yaml)?;
        let upgrade_from = step.upgrades.map(|k| dir.join(format!("{k}-release.yaml")));
        match tool {
            Tool::Ours => {
                let manifest = dir.join(format!("{}.json", step.key));
                let input = json!({"name": step.release, "chart": {"name": chart}, "values": values, "wait": step.wait});
                std::fs::write(&manifest, input.to_string())?;
                cmd.env(
                    "RUNNER_COMMAND",
                    if upgrade_from.is_some() {
                        "upgrade"
                    } else {
                        "install"
                    },
                )
                .env("RUNNER_INPUT_MANIFEST_PATH", &manifest)
                .env("RUNNER_CONTEXT_NAME", step.key.to_lowercase())
                .env("RUNNER_CONTEXT_PLATFORM_NAMESPACE", ns)
                .env("RUNNER_HELM_BINARY_PATH", &self.helm)
                .env("RUNNER_REPOSITORY_CACHE_PATH", dir.join("cache"))
                .env(
                    "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                    dir.join(format!("{}-release.yaml", step.key)),
                )
                .env(
                    "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                    dir.join(format!("{}-additional.yaml", step.key)),
                );
                if let Some(release_file) = upgrade_from {
                    cmd.env("RUNNER_HELM_RELEASE_PATH", release_file);
                }
            }
            Tool::HelmCli => {
                let file = dir.join(format!("{}-values.yaml", step.key));
                std::fs::write(&file, values_yaml)?;
                cmd.args(["upgrade", "--install", step.release])
                    .arg(&self.chart)
                    .args(["--namespace", ns, "--values"])
                    .arg(&file)
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .env("HELM_CACHE_HOME", dir.join(".cache"))
                    .env("HELM_CONFIG_HOME", dir.join(".config"))
                    .env("HELM_DATA_HOME", dir.join(".data"));
                if step.wait {
                    cmd.arg("--wait");
                }
            }
            Tool::Capact => {
                let args =
                    json!({"name": step.release, "chart": {"name": chart}, "values": values});
                crate::capact::helm_env(&mut cmd, &args, ns, step.key, dir, upgrade_from)?
            }
        }
        Ok(cmd)
    }

    /// Every step with `tool`, in a fresh namespace.
    async fn run(&self, tool: Tool, rep: usize) -> Result<Value> {
        let (env, kubeconfig) = runner_env(self.cp, &format!("helm-{}-{rep}", tool.key())).await?;
        for step in &STEPS {
            create_status_configmap(&env.client, &env.ns, &step.key.to_lowercase()).await?;
        }
        let controller = tokio::spawn(play_deployment_controller(
            env.client.clone(),
            env.ns.clone(),
            ROLLOUT,
        ));
        let since = audit::now();
        let mut out = serde_json::Map::new();
        let mut revisions = std::collections::BTreeMap::new();
        let mut windows = Vec::new();
        for step in STEPS.iter().filter(|s| s.wait || tool != Tool::Capact) {
            let cmd = self.command(&env, tool, step, &kubeconfig)?;
            let step_since = audit::now();
            let t0 = Instant::now();
            let (_, exited) = spawn_measured(cmd, Some(Duration::from_millis(5)))?;
            let done = tokio::time::timeout(Duration::from_secs(300), exited)
                .await
                .context("did not exit")??;
            if done.code != 0 {
                controller.abort();
                bail!(
                    "{} {} exited with {}: {}",
                    tool.label(),
                    step.key,
                    done.code,
                    done.stderr_tail
                );
            }
            out.insert(format!("{}Ms", step.key), json!(ms(done.at - t0)));
            out.insert(format!("{}RssKiB", step.key), json!(done.max_rss_kib));
            out.insert(format!("{}CpuMs", step.key), json!(ms(done.cpu)));
            windows.push((step.key, step_since, audit::now()));
            *revisions.entry(step.release).or_insert(0) += 1;
        }
        controller.abort();
        // Every revision is stored, as Helm stores them (a Secret per revision). Checked with
        // GETs, which etcd answers: a LIST of Secrets here would make the next run's first
        // helm LIST wait for the API server's next watch-cache progress request (see
        // `audit::helm_timeline`), a cost of this driver, not of the tool under test.
        let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
        for (release, expected) in revisions {
            for revision in 1..=expected + 1 {
                let name = format!("sh.helm.release.v1.{release}.v{revision}");
                let stored = secrets.get_opt(&name).await?.is_some();
                if stored != (revision <= expected) {
                    bail!(
                        "{}: Secret {name} is {}, expected {expected} revisions of release {release}",
                        tool.label(),
                        if stored { "there" } else { "missing" }
                    );
                }
            }
        }
        // Where each step's time went, from the audit log (see `audit::helm_timeline`).
        for (key, since, until) in windows {
            for (figure, v) in audit::helm_timeline(&env, &since, &until) {
                // `firstListMs` -> `installFirstListMs`, ...
                let mut name = figure.clone();
                name[..1].make_ascii_uppercase();
                out.insert(format!("{key}{name}"), v);
            }
        }
        out.insert("apiRequests".into(), json!(audit::counts(&env, &since)));
        Ok(Value::Object(out))
    }

    /// Every figure of each of `tools`, medians of `reps` runs. The tools take turns, one run
    /// each per repetition, so a drift of the machine's speed during the benchmark (seen here:
    /// helm's own CPU time for the same install moving from 240 to 170 ms over a minute) falls
    /// on every tool alike instead of on whichever ran last.
    pub async fn measure(&self, tools: &[Tool], reps: usize) -> Result<Vec<(Tool, Value)>> {
        let mut runs: Vec<Vec<Value>> = vec![Vec::new(); tools.len()];
        for rep in 0..reps {
            for (i, &tool) in tools.iter().enumerate() {
                eprintln!(
                    "bench: {} installs and upgrades {}/{reps}",
                    tool.label(),
                    rep + 1
                );
                runs[i].push(self.run(tool, rep).await?);
            }
        }
        Ok(tools
            .iter()
            .zip(runs)
            .map(|(&tool, runs)| (tool, self.summary(tool, runs)))
            .collect())
    }

    /// The medians of `runs` of `tool`, with the runs themselves.
    fn summary(&self, tool: Tool, runs: Vec<Value>) -> Value {
        let mut v = json!({
            "label": tool.label(),
            "binaryBytes": file_size(&self.binary(tool)),
            "apiRequests": runs.last().map(|s| s["apiRequests"].clone()),
        });
        for step in &STEPS {
            for figure in [
                "Ms",
                "RssKiB",
                "CpuMs",
                "FirstListMs",
                "FirstRequestMs",
                "BeforeHelmMs",
                "AfterHelmMs",
            ] {
                let key = format!("{}{figure}", step.key);
                if runs.iter().all(|r| r.get(&key).is_some()) {
                    v[&key] = json!(median_of(&runs, &key));
                }
            }
        }
        v["runs"] = json!(runs);
        v
    }
}

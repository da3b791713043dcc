//! The Helm runner's input manifest and the release file an upgrade reads.
//!
//! Field names and defaults follow Capact's Helm runner arguments (`maxHistory` 10, as
//! `helm upgrade --history-max`); `wait` (default `true`) is this runner's addition.

use std::fmt;
use std::path::Path;

use action_runner::RunnerError;
use action_runner::validation::NameError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Helm's default `--history-max` (`helm.sh/helm/v3/pkg/cli`, `defaultMaxHistory`).
pub const DEFAULT_MAX_HISTORY: u32 = 10;

/// Helm's limit on release names (`chartutil.ValidateReleaseName`): 53 characters, because
/// the name is used in object names and labels with suffixes.
pub const MAX_RELEASE_NAME_LENGTH: usize = 53;

/// The input manifest (`RUNNER_INPUT_MANIFEST_PATH`). Unknown fields are an input error.
///
/// ```yaml
/// name: my-release            # install: the release name (or generateName: true)
/// generateName: false         # install: let Helm pick the name (helm install --generate-name)
/// replace: false              # install: reuse the name of a deleted release (--replace)
/// chart: {name: nginx, repo: https://charts.example.com, version: 1.2.3}
/// values: {replicaCount: 2}   # or valuesFromFile: /path/values.yaml, not both
/// noHooks: false              # --no-hooks
/// reuseValues: false          # upgrade: --reuse-values
/// resetValues: false          # upgrade: --reset-values
/// maxHistory: 10              # upgrade, rollback: --history-max (0: unlimited)
/// wait: true                  # --wait
/// timeout: 5m                 # --timeout, a Go duration (default: RUNNER_TIMEOUT, else Helm's 5m)
/// rollbackOnFailure: false    # install, upgrade: --rollback-on-failure (Helm 4), --atomic (Helm 3)
/// createNamespace: false      # install: --create-namespace (needs namespaces: create)
/// keepHistory: false          # uninstall: --keep-history
/// revision: 0                 # rollback: the revision to go back to (absent or 0: the previous)
/// output:
///   helmRelease: {useHelmReleaseStorage: false}
///   additional: {useHelmTemplateStorage: false, goTemplate: "host: {{ .Values.host }}"}
/// ```
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmInput {
    /// Release name (install). Helm's release-name rules apply.
    #[serde(default)]
    pub name: String,
    /// Let Helm generate the release name (install; `--generate-name`).
    #[serde(default)]
    pub generate_name: bool,
    /// Re-use the name of a deleted release whose history is kept (install; `--replace`).
    #[serde(default)]
    pub replace: bool,
    /// The chart; for an upgrade, non-empty fields override the release file's chart.
    #[serde(default)]
    pub chart: Chart,
    /// Inline values (a mapping). Never logged.
    #[serde(default)]
    pub values: Option<Values>,
    /// A values file (YAML mapping), passed to Helm as `--values`. Exclusive with `values`.
    #[serde(default)]
    pub values_from_file: String,
    /// `--no-hooks`.
    #[serde(default)]
    pub no_hooks: bool,
    /// Upgrade: `--reuse-values` (merge the new values into the release's last values).
    #[serde(default)]
    pub reuse_values: bool,
    /// Upgrade: `--reset-values` (start from the chart's values; Helm gives it precedence over
    /// `reuseValues`).
    #[serde(default)]
    pub reset_values: bool,
    /// Upgrade: `--history-max`, revisions kept per release; 0 keeps all. Default 10.
    #[serde(default = "default_max_history")]
    pub max_history: u32,
    /// `--wait`: wait until the release's workloads are ready (uninstall: until its objects
    /// are gone). Default `true`.
    #[serde(default = "default_true")]
    pub wait: bool,
    /// `--timeout` of this operation: a Go duration (`time.ParseDuration`: `90s`, `5m`,
    /// `1h30m`), positive. Empty: `RUNNER_TIMEOUT`, else Helm's default (5m). Helm applies it
    /// to each wait (hooks, `--wait`); `RUNNER_TIMEOUT` still bounds the whole run.
    #[serde(default)]
    pub timeout: String,
    /// Install and upgrade: undo a failed operation (Helm 4 `--rollback-on-failure`, Helm 3
    /// `--atomic`): a failed install is uninstalled, a failed upgrade rolled back. Helm then
    /// waits for the release even with `wait: false`.
    #[serde(default)]
    pub rollback_on_failure: bool,
    /// Install: `--create-namespace`, create the release's namespace if it does not exist. Opt-in:
    /// the runner's Role then needs `create` on `namespaces` (cluster-scoped: a ClusterRole).
    #[serde(default)]
    pub create_namespace: bool,
    /// Uninstall: `--keep-history`, keep the release's records (marked `uninstalled`), so that
    /// it can be rolled back or its name installed again with `replace`.
    #[serde(default)]
    pub keep_history: bool,
    /// Rollback: the revision to roll back to; absent or 0: the one before the latest (Helm's
    /// rule, `pkg/action/rollback.go`). It must be in the release's history.
    #[serde(default)]
    pub revision: Option<u64>,
    /// What the output files hold.
    #[serde(default)]
    pub output: OutputArgs,
}

impl fmt::Debug for HelmInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelmInput")
            .field("name", &self.name)
            .field("generate_name", &self.generate_name)
            .field("chart", &self.chart)
            .field("values", &self.values.as_ref().map(|_| "<redacted>"))
            .field("values_from_file", &self.values_from_file)
            .finish_non_exhaustive()
    }
}

fn default_max_history() -> u32 {
    DEFAULT_MAX_HISTORY
}

fn default_true() -> bool {
    true
}

/// Helm values: a mapping, kept opaque. Its `Debug` prints `<redacted>` so values never reach
/// a log by accident.
#[derive(Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(transparent)]
pub struct Values(pub Map<String, Value>);

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A chart: `{name, repo, version}`.
///
/// `name` is a chart name in the repository `repo` (an `http(s)://` chart repository URL, or
/// an `oci://` registry path under which the chart is `<repo>/<name>`); or, with no `repo`, an
/// `oci://` reference, a local chart directory or `.tgz` archive, or `<repo-name>/<chart>` of a
/// repository configured in Helm. `version` is a version or SemVer range (empty: the latest).
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    /// Chart name, reference or path.
    #[serde(default)]
    pub name: String,
    /// Chart repository URL (`http(s)://` or `oci://`), or empty.
    #[serde(default)]
    pub repo: String,
    /// Chart version or range; empty for the latest.
    #[serde(default)]
    pub version: String,
}

/// `output`: what the two output files hold.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutputArgs {
    /// The release file.
    #[serde(default)]
    pub helm_release: ReleaseOutputArgs,
    /// The additional file.
    #[serde(default)]
    pub additional: AdditionalOutputArgs,
    /// Deprecated place of `additional.goTemplate` (Capact accepts it; used when
    /// `additional.goTemplate` is empty).
    #[serde(default)]
    pub go_template: String,
}

impl OutputArgs {
    /// The Go template of the additional output (`additional.goTemplate`, else the deprecated
    /// `goTemplate`); `None` when blank, and then no additional file is written.
    pub fn go_template(&self) -> Option<&str> {
        [
            self.additional.go_template.as_str(),
            self.go_template.as_str(),
        ]
        .into_iter()
        .find(|t| !t.trim().is_empty())
    }
}

/// `output.helmRelease`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseOutputArgs {
    /// Write a `backend.context` pointing at the release (for Capact's Helm release storage
    /// backend) instead of the release's `value`.
    #[serde(default)]
    pub use_helm_release_storage: bool,
}

/// `output.additional`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdditionalOutputArgs {
    /// Write a `backend.context` with the template and the release (for Capact's Helm
    /// template storage backend) instead of the rendered `value`.
    #[serde(default)]
    pub use_helm_template_storage: bool,
    /// A Go template rendered like a template file of the chart.
    #[serde(default)]
    pub go_template: String,
}

/// The release file (`RUNNER_HELM_RELEASE_PATH`, and the runner's release output):
/// `value: {name, namespace, chart: {name, repo, version}}`. Other top-level keys are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseFile {
    /// The release.
    pub value: ChartRelease,
}

/// A release: `{name, namespace, chart}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChartRelease {
    /// Release name.
    pub name: String,
    /// Namespace the release lives in.
    pub namespace: String,
    /// Its chart.
    #[serde(default)]
    pub chart: Chart,
}

/// Reads and checks the release file of an upgrade.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the file and `RUNNER_HELM_RELEASE_PATH` when it cannot
/// be read or parsed, or its name or namespace is invalid.
pub fn read_release_file(path: &Path) -> Result<ChartRelease, RunnerError> {
    let what = format!("release file {} (RUNNER_HELM_RELEASE_PATH)", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunnerError::invalid_input(format!("{what}: cannot read")).because(e))?;
    let file: ReleaseFile = action_runner::manifest::parse(&what, &text)?;
    let r = file.value;
    validate_release_name(&r.name).map_err(|e| {
        RunnerError::invalid_input(format!("{what}: value.name {:?}", r.name)).because(e)
    })?;
    action_runner::validation::dns1123_label(&r.namespace).map_err(|e| {
        RunnerError::invalid_input(format!("{what}: value.namespace {:?}", r.namespace)).because(e)
    })?;
    Ok(r)
}

/// Helm's release-name rule (`chartutil.ValidateReleaseName`, Helm v3): at most 53
/// characters, an RFC 1123 subdomain.
///
/// # Errors
/// The [`NameError`] saying which rule `name` breaks (its length is checked against Helm's 53).
pub fn validate_release_name(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_RELEASE_NAME_LENGTH {
        return Err(NameError::TooLong {
            max: MAX_RELEASE_NAME_LENGTH,
            len: name.len(),
        });
    }
    action_runner::validation::dns1123_subdomain(name)
}

/// Reads a values file (`valuesFromFile`) and checks it holds a YAML mapping (or nothing).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the field and file; the file's content is never quoted.
pub fn read_values_file(path: &Path) -> Result<Values, RunnerError> {
    let what = format!("valuesFromFile {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| {
        RunnerError::invalid_input(format!("input manifest: {what}: cannot read")).because(e)
    })?;
    let has_content = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---");
    if !has_content {
        return Ok(Values::default());
    }
    match serde_saphyr::from_str::<Option<Values>>(&text) {
        Ok(v) => Ok(v.unwrap_or_default()),
        Err(e) => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default();
            // Only the position is kept: the parser's message may quote the file.
            let position = first
                .split(':')
                .next()
                .filter(|p| p.contains("line"))
                .unwrap_or("");
            Err(RunnerError::invalid_input(
                format!("input manifest: {what}: not a YAML mapping of values {position}")
                    .trim_end()
                    .to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<HelmInput, String> {
        action_runner::manifest::parse::<HelmInput>("m", yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let i = parse("name: a\nchart: {name: c}\n").unwrap();
        assert_eq!(i.max_history, 10);
        assert!(i.wait);
        assert!(i.values.is_none());
        assert!(i.output.go_template().is_none());
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = parse("name: a\nchart: {name: c}\nvalue: {}\n").unwrap_err();
        assert!(e.contains("value") && e.contains("line 3"), "{e}");
        let e = parse("name: a\nchart: {name: c, url: x}\n").unwrap_err();
        assert!(e.contains("url"), "{e}");
        let e = parse("output: {additional: {template: x}}\n").unwrap_err();
        assert!(e.contains("template"), "{e}");
    }

    #[test]
    fn values_never_in_debug() {
        let i = parse("name: a\nvalues: {password: hunter22}\n").unwrap();
        assert!(!format!("{i:?}").contains("hunter22"));
    }

    #[test]
    fn legacy_go_template() {
        let i = parse("output: {goTemplate: 'a: b'}\n").unwrap();
        assert_eq!(i.output.go_template(), Some("a: b"));
    }

    #[test]
    fn release_names() {
        assert!(validate_release_name("my-rel.1").is_ok());
        assert!(validate_release_name("").is_err());
        assert!(validate_release_name("Bad").is_err());
        assert!(validate_release_name(&"a".repeat(54)).is_err());
    }
}

//! The parts of the input manifest more than one command reads (the chart, the values and
//! their sources, the outputs, `timeout`), and the release file `upgrade`, `uninstall` and
//! `rollback` read. Each command's own shape of the manifest is in its module of
//! [`crate::verbs`]; [`crate::manifest`] picks it.
//!
//! Field names and defaults follow Capact's Helm runner arguments (`maxHistory` 10, as
//! `helm upgrade --history-max`); `wait` (default `true`) is this runner's addition.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use action_runner::RunnerError;
use action_runner::validation::NameError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An input error about the manifest: `input manifest: <message>`.
pub(crate) fn invalid(message: impl fmt::Display) -> RunnerError {
    RunnerError::invalid_input(format!("input manifest: {message}"))
}

/// Helm's default `--history-max` (`helm.sh/helm/v3/pkg/cli`, `defaultMaxHistory`).
pub const DEFAULT_MAX_HISTORY: u32 = 10;

/// Helm's limit on release names (`chartutil.ValidateReleaseName`): 53 characters, because
/// the name is used in object names and labels with suffixes.
pub const MAX_RELEASE_NAME_LENGTH: usize = 53;

/// `valuesFromFile`: a path, or a list of paths (an empty string or `null`: none). For
/// `#[serde(deserialize_with)]`.
///
/// # Errors
/// The deserializer's, when the value is neither a string nor a list of strings.
pub(crate) fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct OneOrMany;
    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a file path or a list of file paths")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(if v.trim().is_empty() {
                Vec::new()
            } else {
                vec![v.to_string()]
            })
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(p) = seq.next_element::<String>()? {
                out.push(p);
            }
            Ok(out)
        }
    }
    d.deserialize_any(OneOrMany)
}

/// One entry of `valuesFrom`: a key of a ConfigMap or Secret in the release's namespace
/// holding a YAML mapping of values, `{kind: ConfigMap|Secret, name, key: values.yaml,
/// optional: false}`.
///
/// Order of the layers (Helm merges its `--values` files left to right, a later file's keys
/// overriding an earlier one's, maps merged key by key, `helm install --help`): every
/// `valuesFrom` entry in list order, then every `valuesFromFile` file in list order, then the
/// inline `values`. The runner passes each as its own `--values` file and lets Helm merge.
///
/// A missing object or key is an input error (exit 2, nothing written), unless `optional`, when
/// the entry is skipped. A Secret's values are secrets: redacted from everything the runner
/// shows (so are a ConfigMap's, as all values are). The runner needs `get` on `configmaps` or
/// `secrets` in the release's namespace.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValuesSource {
    /// `ConfigMap` (its `data`) or `Secret` (its `data`, base64-decoded, UTF-8).
    pub kind: SourceKind,
    /// The object's name (an RFC 1123 subdomain).
    pub name: String,
    /// The key holding the values; default `values.yaml`.
    #[serde(default = "default_values_key")]
    pub key: String,
    /// Skip the entry when the object or the key does not exist. Default `false`.
    #[serde(default)]
    pub optional: bool,
}

/// Default `key` of a [`ValuesSource`].
pub const DEFAULT_VALUES_KEY: &str = "values.yaml";

fn default_values_key() -> String {
    DEFAULT_VALUES_KEY.into()
}

/// The kind of object a [`ValuesSource`] reads.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum SourceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        })
    }
}

/// Default of `maxHistory`: [`DEFAULT_MAX_HISTORY`].
pub(crate) fn default_max_history() -> u32 {
    DEFAULT_MAX_HISTORY
}

/// Default of `wait`: `true`.
pub(crate) fn default_true() -> bool {
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
///
/// Access to a private repository or registry (read from the input manifest only, never from
/// an upgrade's release file, and never written to the outputs): `auth` (basic auth: a login
/// of helm's own, `helm repo add` or `helm registry login` with `--password-stdin`, into the
/// run's private scratch configuration), `caFile` (`--ca-file`), `passCredentials`
/// (`--pass-credentials`, chart repositories only) and `plainHttp` (`--plain-http`, `oci://`
/// only). See [`crate::sources`].
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
    /// Basic auth for the repository or registry, read from files (mounted Secret keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ChartAuth>,
    /// A PEM CA bundle file that verifies the repository's or registry's TLS certificate
    /// (instead of the system's roots).
    #[serde(default, rename = "caFile", skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// Send the credentials to every host the chart is downloaded from, not only the
    /// repository's (`--pass-credentials`: an index may point at another host). Default `false`.
    #[serde(
        default,
        rename = "passCredentials",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub pass_credentials: bool,
    /// Talk plain HTTP to an `oci://` registry (`--plain-http`; a local registry). Default
    /// `false`.
    #[serde(
        default,
        rename = "plainHttp",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub plain_http: bool,
    /// Check the chart's signature before using it (Helm's provenance: the chart archive's
    /// `.prov` file, signed with OpenPGP): `helm pull --verify` for a repository's or
    /// registry's chart, `helm verify` for a local archive (its `.prov` beside it). A chart that
    /// fails the check is an input error (exit 2). Needs `keyring`. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
    /// With `verify`: the public keyring file (OpenPGP, binary: `gpg --export > pubring.gpg`)
    /// holding the keys the chart may be signed with. Read through the bounded reader (a regular
    /// file of at most [`MAX_KEYRING_BYTES`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyring: String,
}

/// The largest keyring read (`chart.keyring`): 1 MiB, room for hundreds of public keys.
pub const MAX_KEYRING_BYTES: u64 = 1024 * 1024;

/// `chart.auth`: where the username and the password come from, one of three: files
/// (`usernameFile` and `passwordFile`: each file's content, one trailing line break removed), a
/// `kubernetes.io/dockerconfigjson` Secret (`secretName`), or the `imagePullSecrets` of a
/// ServiceAccount (`fromServiceAccount`), both read from the release's namespace when the run
/// starts ([`crate::sources::read_cluster_credentials`]). The password is a secret: it reaches
/// Helm only on its standard input (`--password-stdin` of `helm repo add` or `helm registry
/// login`, see [`crate::sources::RepositoryAccess::login`]) and is redacted from everything the
/// runner shows.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartAuth {
    /// File holding the username.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username_file: String,
    /// File holding the password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_file: String,
    /// A Secret of type `kubernetes.io/dockerconfigjson` (what `kubectl create secret
    /// docker-registry` makes) whose `auths` entry for the chart source's host holds the
    /// credentials.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// A ServiceAccount (typically the runner's own) whose `imagePullSecrets` are tried in
    /// order, the first with an entry for the chart source's host winning. Needs `get` on
    /// `serviceaccounts` (`deploy/helm-runner/components/registry-credentials`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_service_account: String,
    /// Send the credentials over plain HTTP, readable by anyone on the way: to an `http://`
    /// `chart.repo`, or to an `oci://` registry with `chart.plainHttp: true`. Without it such a
    /// chart source with credentials is an input error. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plain_http: bool,
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
    /// Add `valuesPreview` to the release's `value` and to the status: the release's values
    /// with every value that may be secret masked ([`crate::values`]). Off by default.
    #[serde(default)]
    pub values_preview: bool,
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
    /// `valuesDigest`, as the runner's release output writes it ([`crate::values::digest`]):
    /// read back, not used.
    #[serde(
        default,
        rename = "valuesDigest",
        skip_serializing_if = "Option::is_none"
    )]
    pub values_digest: Option<String>,
    /// `valuesPreview` of the runner's release output: accepted and dropped.
    #[serde(
        default,
        rename = "valuesPreview",
        skip_serializing,
        deserialize_with = "ignored"
    )]
    pub values_preview: (),
}

/// Accepts any value and keeps nothing of it.
fn ignored<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| ())
}

/// The largest release file read (`RUNNER_HELM_RELEASE_PATH`): 1 MiB. The file names a release
/// and its chart (a few hundred bytes, as the runner writes it); 1 MiB leaves room for other
/// top-level keys a producer may add, which are ignored.
pub const MAX_RELEASE_FILE_BYTES: u64 = 1024 * 1024;

/// The largest values text read: a `valuesFromFile` file, or a `valuesFrom` ConfigMap's or
/// Secret's key: 3 MiB, as the input manifest ([`action_runner::manifest::MAX_MANIFEST_BYTES`],
/// the largest request kube-apiserver accepts), which holds the inline `values`. A ConfigMap or
/// Secret holds at most 1 MiB of data (`MaxSecretSize`, `k8s.io/api/core/v1`), and Helm stores
/// the values with the release in one such object, so larger values could never be stored.
pub const MAX_VALUES_BYTES: u64 = action_runner::manifest::MAX_MANIFEST_BYTES;

/// Reads and checks the release file of an upgrade, a rollback or an uninstall, with the bounded
/// reader ([`action_runner::input_file`]: a regular file of at most [`MAX_RELEASE_FILE_BYTES`]).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the file and
/// `RUNNER_HELM_RELEASE_PATH` when it cannot be read (missing, not a regular file: a FIFO or
/// `/dev/zero` is refused at once; larger than the limit) or parsed, or its name or namespace
/// is invalid.
pub fn read_release_file(path: &Path) -> Result<ChartRelease, RunnerError> {
    let what = format!("release file {} (RUNNER_HELM_RELEASE_PATH)", path.display());
    let text = action_runner::input_file::read_to_string(path, &what, MAX_RELEASE_FILE_BYTES)?;
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

/// Reads a values file (`valuesFromFile`) with the bounded reader ([`action_runner::input_file`]:
/// a regular file of at most [`MAX_VALUES_BYTES`]) and checks it holds a YAML mapping (or
/// nothing).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the field and file (not a
/// regular file, too large, not UTF-8, not a mapping); the file's content is never quoted.
pub fn read_values_file(path: &Path) -> Result<Values, RunnerError> {
    let what = format!("valuesFromFile {}", path.display());
    let text = action_runner::input_file::read_to_string(
        path,
        &format!("input manifest: {what}"),
        MAX_VALUES_BYTES,
    )?;
    parse_values(&what, &text)
}

/// Parses `text` as a YAML mapping of values (or nothing: no values), at most
/// [`MAX_VALUES_BYTES`], with the YAML budgets of the input manifest
/// ([`action_runner::manifest::yaml_options`]: an alias bomb is refused). `what` names the source
/// in errors (`input manifest: <what>: ...`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming `what` and the position,
/// or the limit; the text is never quoted.
pub fn parse_values(what: &str, text: &str) -> Result<Values, RunnerError> {
    if text.len() as u64 > MAX_VALUES_BYTES {
        return Err(RunnerError::invalid_input(format!(
            "input manifest: {what}: is larger than {MAX_VALUES_BYTES} bytes ({}), the most read",
            action_runner::input_file::human(MAX_VALUES_BYTES)
        )));
    }
    let has_content = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---");
    if !has_content {
        return Ok(Values::default());
    }
    match serde_saphyr::from_str_with_options::<Option<Values>>(
        text,
        action_runner::manifest::yaml_options(),
    ) {
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
            let problem = if over_budget(&e) {
                "is beyond the YAML parser's budgets (too many aliases, nodes or levels)"
            } else {
                "not a YAML mapping of values"
            };
            Err(RunnerError::invalid_input(
                format!("input manifest: {what}: {problem} {position}")
                    .trim_end()
                    .to_string(),
            ))
        }
    }
}

/// The manifest's `timeout` (every command has one): a Go duration (`time.ParseDuration`:
/// `90s`, `5m`, `1h30m`), positive; `None` when empty (helm then gets `RUNNER_TIMEOUT`, else
/// Helm's default, 5m).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming `timeout` and its text
/// when it is not a positive Go duration.
pub fn timeout(text: &str) -> Result<Option<Duration>, RunnerError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    action_runner::vars::go_duration(text)
        .map(Some)
        .map_err(|e| RunnerError::invalid_input(format!("input manifest: timeout {text:?} {e}")))
}

/// Whether the parser stopped at one of its budgets ([`action_runner::manifest::yaml_options`]).
fn over_budget(e: &serde_saphyr::Error) -> bool {
    use serde_saphyr::Error as E;
    match e {
        E::WithSnippet { error, .. } | E::AliasError { error, .. } => over_budget(error),
        E::Budget { .. }
        | E::AliasReplayCounterOverflow { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// valuesFrom texts and values files are parsed with the manifest's YAML budgets, and their
    /// size is bounded.
    #[test]
    fn values_are_parsed_within_budgets() {
        let mut bomb = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
            ));
        }
        let e = parse_values("valuesFrom[0]", &bomb).unwrap_err();
        assert_eq!(e.exit(), action_runner::Exit::InvalidInput);
        let e = e.to_string();
        assert!(
            e.starts_with("input manifest: valuesFrom[0]: is beyond the YAML parser's budgets"),
            "{e}"
        );
        let big = format!("k: \"{}\"\n", "x".repeat(MAX_VALUES_BYTES as usize));
        let e = parse_values("valuesFrom[1]", &big).unwrap_err().to_string();
        assert_eq!(
            e,
            "input manifest: valuesFrom[1]: is larger than 3145728 bytes (3 MiB), the most read"
        );
        let e = parse_values("v", "a: \"hunter2-secret\nb: 1\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn values_and_release_files_are_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_values_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "input manifest: valuesFromFile /dev/zero: is a character device, not a regular file"
        );
        let e = read_release_file(dir.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("(RUNNER_HELM_RELEASE_PATH): is a directory, not a regular file"),
            "{e}"
        );
        let big = dir.path().join("release.yaml");
        std::fs::write(&big, vec![b'#'; MAX_RELEASE_FILE_BYTES as usize + 1]).unwrap();
        let e = read_release_file(&big).unwrap_err().to_string();
        assert!(e.contains("is larger than 1048576 bytes (1 MiB)"), "{e}");
    }

    #[test]
    fn release_names() {
        assert!(validate_release_name("my-rel.1").is_ok());
        assert!(validate_release_name("").is_err());
        assert!(validate_release_name("Bad").is_err());
        assert!(validate_release_name(&"a".repeat(54)).is_err());
    }

    #[test]
    fn timeout_is_a_positive_go_duration() {
        assert_eq!(timeout("").unwrap(), None);
        assert_eq!(timeout("1m30s").unwrap(), Some(Duration::from_secs(90)));
        for bad in ["5", "5 minutes", "-1s", "0"] {
            let e = timeout(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("timeout {bad:?}")), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}

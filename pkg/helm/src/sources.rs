//! Where values and charts come from beyond the input manifest itself: values layered from
//! ConfigMaps and Secrets (`valuesFrom`) and files (`valuesFromFile`), and access to a private
//! chart repository or OCI registry (`chart.auth`, `chart.caFile`, `chart.passCredentials`,
//! `chart.plainHttp`).
//!
//! Values layering: Helm merges the `--values` files it is given left to right, a later file's
//! keys overriding an earlier one's and maps merged key by key (`helm install --help`: "you can
//! specify the '--values'/'-f' flag multiple times. The priority will be given to the last
//! (right-most) file specified"). The runner passes, in this order: each `valuesFrom` entry
//! (list order), each `valuesFromFile` file (list order), then the inline `values`; so inline
//! values win. Every layer is a file: `valuesFrom` texts are written as read (Helm parses them
//! itself, as it would a `-f` file) to a private scratch directory with mode 0600.
//!
//! Credentials of a private chart source reach helm only on its standard input, never on a
//! command line or in an environment (both readable in `/proc/<pid>/` by other processes of the
//! same user): helm logs in by itself (`helm repo add ... --password-stdin` or `helm registry
//! login ... --password-stdin`) into a configuration of the run's own, in its private scratch
//! directory, and `helm pull` then reads them from there ([`RepositoryAccess::login`]).

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use action_runner::RunnerError;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

use crate::chart::ChartSource;
use crate::cli::Helm;
use crate::input::{self, Chart, SourceKind, Values, ValuesSource, invalid};
use crate::version::HelmVersion;

/// Longest ConfigMap or Secret key (`IsConfigMapKey` of `k8s.io/apimachinery`, 253 characters).
pub const MAX_KEY_LENGTH: usize = 253;

/// Checks the `valuesFrom` entries without the cluster: names are RFC 1123 subdomains, keys are
/// ConfigMap/Secret keys (`[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`; Kubernetes'
/// `IsConfigMapKey`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming `valuesFrom[i].name` or
/// `.key`.
pub fn check_values_from(sources: &[ValuesSource]) -> Result<(), RunnerError> {
    for (i, s) in sources.iter().enumerate() {
        action_runner::validation::dns1123_subdomain(&s.name).map_err(|e| {
            invalid(format!(
                "valuesFrom[{i}].name {:?} is not an object name",
                s.name
            ))
            .because(e)
        })?;
        let key_ok = !s.key.is_empty()
            && s.key.len() <= MAX_KEY_LENGTH
            && s.key != "."
            && s.key != ".."
            && s.key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !key_ok {
            return Err(invalid(format!(
                "valuesFrom[{i}].key {:?} is not a {} key (letters, digits, '-', '_', '.'; at \
                 most {MAX_KEY_LENGTH} characters)",
                s.key, s.kind
            )));
        }
    }
    Ok(())
}

/// Values read from one `valuesFrom` entry.
pub struct FetchedValues {
    /// `valuesFrom[i]`, its position in the list.
    pub index: usize,
    /// The key's text, as stored (Helm parses it).
    pub text: String,
    /// The same, parsed (for redaction).
    pub values: Values,
}

impl std::fmt::Debug for FetchedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FetchedValues(valuesFrom[{}], <redacted>)", self.index)
    }
}

/// Reads the `valuesFrom` entries from `namespace` (one GET each), in list order; skipped
/// optional entries are left out. Run before anything is written to the cluster.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) (exit 2) naming the entry, the
/// object and the key when a non-optional object or key is missing, a Secret's key is not UTF-8,
/// or the text is not a YAML mapping (never quoted); errors of the GET as
/// [`RunnerError::from_kube`] classifies them (forbidden: exit 3).
pub async fn fetch_values(
    client: &kube::Client,
    namespace: &str,
    sources: &[ValuesSource],
) -> Result<Vec<FetchedValues>, RunnerError> {
    let mut out = Vec::new();
    for (index, s) in sources.iter().enumerate() {
        let what = format!("valuesFrom[{index}]: {} {namespace}/{}", s.kind, s.name);
        let read_error =
            |e: kube::Error| RunnerError::from_kube(format!("input manifest: {what}: GET"), e);
        // `None`: no such object; `Some(None)`: no such key.
        let found: Option<Option<Result<String, ()>>> = match s.kind {
            SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&s.name)
                .await
                .map_err(read_error)?
                .map(|cm| cm.data.and_then(|mut d| d.remove(&s.key)).map(Ok)),
            SourceKind::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&s.name)
                .await
                .map_err(read_error)?
                .map(|secret| {
                    secret
                        .data
                        .and_then(|mut d| d.remove(&s.key))
                        .map(|b| String::from_utf8(b.0).map_err(|_| ()))
                }),
        };
        let text = match found {
            Some(Some(Ok(text))) => text,
            Some(Some(Err(()))) => {
                return Err(invalid(format!(
                    "{what}: key {:?} is not UTF-8 text (a YAML values file)",
                    s.key
                )));
            }
            Some(None) if s.optional => {
                tracing::info!(entry = index, kind = %s.kind, name = %s.name, key = %s.key,
                    "valuesFrom: the key does not exist and the entry is optional: skipped");
                continue;
            }
            None if s.optional => {
                tracing::info!(entry = index, kind = %s.kind, name = %s.name,
                    "valuesFrom: the object does not exist and the entry is optional: skipped");
                continue;
            }
            Some(None) => {
                return Err(invalid(format!(
                    "{what} has no key {:?} (set valuesFrom[{index}].key, or optional: true)",
                    s.key
                )));
            }
            None => {
                return Err(invalid(format!(
                    "{what} not found (create it, or set valuesFrom[{index}].optional: true)"
                )));
            }
        };
        let values = input::parse_values(&format!("{what} key {:?}", s.key), &text)?;
        out.push(FetchedValues {
            index,
            text,
            values,
        });
    }
    Ok(out)
}

/// Writes each fetched layer to `dir` (`values-from-<i>.yaml`, mode 0600) and returns the
/// paths, in order.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when a file cannot be written.
pub fn write_values(dir: &Path, fetched: &[FetchedValues]) -> Result<Vec<PathBuf>, RunnerError> {
    fetched
        .iter()
        .map(|f| {
            let path = dir.join(format!("values-from-{}.yaml", f.index));
            crate::files::write_private(&path, f.text.as_bytes())?;
            Ok(path)
        })
        .collect()
}

/// Access to a private chart repository or registry, read from `chart` of the input manifest.
/// Its `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepositoryAccess {
    /// `--username` of the login ([`RepositoryAccess::login`]).
    pub username: Option<String>,
    /// The password (a secret): written to the login's standard input, nowhere else.
    pub password: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--pass-credentials`.
    pub pass_credentials: bool,
    /// `--plain-http`.
    pub plain_http: bool,
    /// Where the credentials are read from when the run starts, when not from files.
    pub from_cluster: Option<ClusterCredentials>,
}

/// Credentials in the cluster (`chart.auth.secretName` or `chart.auth.fromServiceAccount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterCredentials {
    /// A `kubernetes.io/dockerconfigjson` Secret.
    Secret(String),
    /// The `imagePullSecrets` of a ServiceAccount.
    ServiceAccount(String),
}

impl std::fmt::Debug for RepositoryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryAccess")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("pass_credentials", &self.pass_credentials)
            .field("plain_http", &self.plain_http)
            .field("from_cluster", &self.from_cluster)
            .finish()
    }
}

impl RepositoryAccess {
    /// Reads and checks the access fields of `chart` for a chart from `source`: the files of
    /// `auth` are read (one trailing `\n` or `\r\n` removed; neither may be empty), `caFile`
    /// must be a readable file; none applies to a local chart; `passCredentials` applies to an
    /// `http(s)://` repository (`chart.repo`) only, `plainHttp` to an `oci://` chart only.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the field and file; a
    /// file's content is never quoted.
    pub fn read(chart: &Chart, source: &ChartSource) -> Result<Self, RunnerError> {
        let mut access = RepositoryAccess {
            pass_credentials: chart.pass_credentials,
            plain_http: chart.plain_http,
            ..Self::default()
        };
        if let Some(auth) = &chart.auth {
            let files =
                !auth.username_file.trim().is_empty() || !auth.password_file.trim().is_empty();
            let (secret, sa) = (auth.secret_name.trim(), auth.from_service_account.trim());
            match (files, secret.is_empty(), sa.is_empty()) {
                (true, true, true) => {
                    access.username = Some(read_credential(
                        "chart.auth.usernameFile",
                        &auth.username_file,
                    )?);
                    access.password = Some(read_credential(
                        "chart.auth.passwordFile",
                        &auth.password_file,
                    )?);
                }
                (false, false, true) => {
                    check_object_name("chart.auth.secretName", secret)?;
                    access.from_cluster = Some(ClusterCredentials::Secret(secret.into()));
                }
                (false, true, false) => {
                    check_object_name("chart.auth.fromServiceAccount", sa)?;
                    access.from_cluster = Some(ClusterCredentials::ServiceAccount(sa.into()));
                }
                _ => {
                    return Err(invalid(
                        "chart.auth takes one source of credentials: usernameFile and \
                         passwordFile, or secretName, or fromServiceAccount",
                    ));
                }
            }
        }
        let ca = chart.ca_file.trim();
        if !ca.is_empty() {
            action_runner::input_file::read_bytes(
                Path::new(ca),
                &format!("input manifest: chart.caFile {ca}"),
                MAX_CA_FILE_BYTES,
            )?;
            access.ca_file = Some(PathBuf::from(ca));
        }
        let (is_local, is_http_repo, is_oci) = match source {
            ChartSource::Local(_) => (true, false, false),
            ChartSource::Remote {
                reference, repo, ..
            } => (false, repo.is_some(), reference.starts_with("oci://")),
        };
        let any = chart.auth.is_some() || access.ca_file.is_some();
        if is_local && (any || access.pass_credentials || access.plain_http) {
            return Err(invalid(format!(
                "chart.auth, chart.caFile, chart.passCredentials and chart.plainHttp are for a \
                 chart from a repository or registry; chart.name {:?} is a local chart",
                chart.name
            )));
        }
        if access.pass_credentials && !is_http_repo {
            return Err(invalid(
                "chart.passCredentials applies to an http(s):// chart repository (chart.repo) only",
            ));
        }
        if access.plain_http && !is_oci {
            return Err(invalid(
                "chart.plainHttp applies to an oci:// chart only (for an http:// chart \
                 repository, write the URL with http://)",
            ));
        }
        Ok(access)
    }

    /// The flags of `helm pull`: `--ca-file F`, `--pass-credentials`, `--plain-http`, as set.
    /// Never a credential: those reach helm by [`RepositoryAccess::login`].
    pub fn pull_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(ca) = &self.ca_file {
            args.extend(["--ca-file".into(), ca.into()]);
        }
        if self.pass_credentials {
            args.push("--pass-credentials".into());
        }
        if self.plain_http {
            args.push("--plain-http".into());
        }
        args
    }
}

/// `name` as a Kubernetes object name (an RFC 1123 subdomain), or an input error naming `field`.
fn check_object_name(field: &str, name: &str) -> Result<(), RunnerError> {
    action_runner::validation::dns1123_subdomain(name)
        .map_err(|e| invalid(format!("{field} {name:?}")).because(e))
}

/// The host (`host[:port]`) a chart is fetched from: an `oci://` reference's or `chart.repo`'s;
/// `None` for a local chart or one of Helm's own repositories.
pub fn source_host(source: &ChartSource) -> Option<String> {
    let ChartSource::Remote {
        reference, repo, ..
    } = source
    else {
        return None;
    };
    let url = repo.as_deref().unwrap_or(reference);
    let rest = url.split_once("://").map(|(_, r)| r)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The `(username, password)` for `host` in a Docker config (`.dockerconfigjson`: `{"auths":
/// {"<registry>": {"username", "password"} or {"auth": base64("user:pass")}}}`). A registry key
/// may be written as `host[:port]` or as a URL (`https://host[:port]/v1/`), as `docker login`
/// writes Docker Hub's.
pub fn docker_config_credentials(config: &[u8], host: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, entry)| {
        let key = key.trim().to_ascii_lowercase();
        let key_host = key
            .split_once("://")
            .map_or(key.as_str(), |(_, r)| r)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        (key_host == host).then_some(entry)
    })?;
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    if let (Some(u), Some(p)) = (field("username"), field("password")) {
        return Some((u.to_string(), p.to_string()));
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(field("auth")?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    (!u.is_empty() && !p.is_empty()).then(|| (u.to_string(), p.to_string()))
}

/// Reads the credentials `access.from_cluster` names, from `namespace`, for the chart `source`,
/// into `access` (when the run starts, before helm is asked anything). Every Secret it names is
/// read with one GET; the `imagePullSecrets` that are missing are skipped.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the field, the Secret or
/// the ServiceAccount and the host when the Secret is missing or not a
/// `kubernetes.io/dockerconfigjson` one, or no Secret holds credentials for the host; the
/// API's errors otherwise. Nothing of a Secret's content is ever quoted.
pub async fn read_cluster_credentials(
    client: &kube::Client,
    namespace: &str,
    access: &mut RepositoryAccess,
    source: &ChartSource,
) -> Result<(), RunnerError> {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    let Some(from) = access.from_cluster.clone() else {
        return Ok(());
    };
    let Some(host) = source_host(source) else {
        return Ok(());
    };
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let (field, names) = match &from {
        ClusterCredentials::Secret(name) => ("chart.auth.secretName", vec![name.clone()]),
        ClusterCredentials::ServiceAccount(sa) => {
            let sas: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
            let what = format!("chart.auth.fromServiceAccount: ServiceAccount {namespace}/{sa}");
            let account = sas
                .get_opt(sa)
                .await
                .map_err(|e| RunnerError::from_kube(format!("get {what}"), e))?
                .ok_or_else(|| invalid(format!("{what} not found")))?;
            let names: Vec<String> = account
                .image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect();
            if names.is_empty() {
                return Err(invalid(format!("{what} has no imagePullSecrets")));
            }
            ("chart.auth.fromServiceAccount", names)
        }
    };
    let strict = matches!(from, ClusterCredentials::Secret(_));
    for name in &names {
        let what = format!("{field}: Secret {namespace}/{name}");
        let Some(secret) = secrets
            .get_opt(name)
            .await
            .map_err(|e| RunnerError::from_kube(format!("get {what}"), e))?
        else {
            if strict {
                return Err(invalid(format!("{what} not found")));
            }
            continue;
        };
        let config = secret
            .data
            .as_ref()
            .and_then(|d| d.get(".dockerconfigjson"))
            .filter(|_| secret.type_.as_deref() == Some("kubernetes.io/dockerconfigjson"));
        let Some(config) = config else {
            if strict {
                return Err(invalid(format!(
                    "{what} is not of type kubernetes.io/dockerconfigjson with a \
                     .dockerconfigjson key"
                )));
            }
            continue;
        };
        if let Some((user, password)) = docker_config_credentials(&config.0, &host) {
            access.username = Some(user);
            access.password = Some(password);
            return Ok(());
        }
    }
    Err(invalid(format!(
        "{field}: no credentials for {host} in {}",
        names
            .iter()
            .map(|n| format!("Secret {namespace}/{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The largest `chart.auth.usernameFile` or `passwordFile` read: 64 KiB, far more than a user
/// name, a password or a registry token (a JSON Web Token of a few KiB) needs.
pub const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// The largest `chart.caFile` accepted: 1 MiB, about five times Debian's whole bundle of public
/// roots (`/etc/ssl/certs/ca-certificates.crt`, about 215 KiB).
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// The name the runner gives a private chart repository in its own scratch configuration
/// (`helm repo add <this> <url>`), so the chart is pulled as `<this>/<chart>`.
pub const REPOSITORY_NAME: &str = "helm-runner-chart-source";

/// The directory, in the run's scratch directory, of Helm's configuration for a private chart
/// source: `repositories.yaml` (`HELM_REPOSITORY_CONFIG`), `cache/` (`HELM_REPOSITORY_CACHE`)
/// or `registry.json` (`HELM_REGISTRY_CONFIG`). Mode 0700; removed with the scratch directory
/// when the run ends.
pub const CONFIG_DIR: &str = "helm-config";

/// What `registry.json` holds before `helm registry login` writes the credentials into it: one
/// empty entry for a host that cannot exist. Helm's registry client stores credentials in the
/// platform's native credential helper (`docker-credential-secretservice` or `-pass` on Linux,
/// when one is on `PATH`) unless its configuration file already holds some authentication
/// (`oras.land/oras-go/v2` `credentials.NewStore` with `DetectDefaultNativeStore`, which both
/// Helm majors set); with this entry they stay in the run's scratch directory, gone with it.
pub const REGISTRY_CONFIG: &str = r#"{"auths":{"helm-runner.invalid":{}}}"#;

/// How `helm pull` fetches the chart: the helm to run it with (its environment pointing at the
/// run's own configuration after a login), the chart reference and the flags.
#[derive(Debug, Clone)]
pub struct Pull {
    /// helm, with [`Helm::config_env`] set after a login.
    pub helm: Helm,
    /// What to pull: after `helm repo add`, `<REPOSITORY_NAME>/<chart>` without `--repo`.
    pub source: ChartSource,
    /// Flags of `helm pull` ([`RepositoryAccess::pull_args`], or none after `helm repo add`,
    /// whose repository entry holds them).
    pub args: Vec<OsString>,
}

impl RepositoryAccess {
    /// Logs helm in to a private chart source, so that no credential is ever on a command line
    /// or in an environment, and returns how to pull the chart. Without credentials, or for a
    /// local chart: nothing to do, `helm pull` with [`RepositoryAccess::pull_args`].
    ///
    /// - A chart repository (`chart.repo` `http(s)://`): `helm repo add <REPOSITORY_NAME> <url>
    ///   --username U --password-stdin [--ca-file F] [--pass-credentials]`, with
    ///   `HELM_REPOSITORY_CONFIG` and `HELM_REPOSITORY_CACHE` in `<scratch>/helm-config`; Helm
    ///   stores the entry (credentials included, in a file of mode 0600) and the index there;
    ///   then `helm pull <REPOSITORY_NAME>/<chart> [--version V]` with the same environment.
    /// - An `oci://` registry: `helm registry login <host> --username U --password-stdin
    ///   [--ca-file F] [--plain-http]`, with `HELM_REGISTRY_CONFIG` in `<scratch>/helm-config`
    ///   (first holding [`REGISTRY_CONFIG`]), where Helm stores the credentials; then `helm pull
    ///   oci://...` with the same environment and [`RepositoryAccess::pull_args`]. Except with
    ///   Helm 3 over TLS (`plainHttp: false`): its login falls back to plain HTTP, credentials
    ///   and all, when the registry (or anyone on the way) answers in plain HTTP
    ///   ([`HelmVersion::registry_login_falls_back_to_plain_http`]); the runner then writes the
    ///   credentials into that same file itself ([`registry_credentials`]: what Helm's login
    ///   would have written), and `helm pull`, which never sends them after such a fallback,
    ///   reads them there.
    ///
    /// These flags are the same in Helm 3 (v3.22.0) and Helm 4 (v4.3.2), as their `--help`
    /// lists them and their sources read them (`cmd/helm/repo_add.go` and `registry_login.go`
    /// of `helm.sh/helm/v3`, `pkg/cmd/` of `helm.sh/helm/v4`; `--plain-http` of `registry
    /// login` is `WithPlainHTTPLogin` in both, where `--insecure` would only skip TLS
    /// verification).
    ///
    /// The password is written to helm's standard input from memory, followed by a line break:
    /// both majors read all of it, then remove one trailing `\n` and then one `\r`, so a
    /// password that ends in `\r` loses it. The username is on the command line: it is not a
    /// secret, and `--password-stdin` needs it there (Helm asks for no password without one).
    ///
    /// # Errors
    /// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when the scratch directory cannot
    /// be made or the login fails (a wrong password: Helm's `401 Unauthorized`; a missing CA:
    /// `x509: certificate signed by unknown authority`), with Helm's message, redacted;
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) for credentials to a chart
    /// of Helm's own configuration (which [`check_credentials_transport`] refuses first).
    pub async fn login(
        &self,
        helm: &Helm,
        version: &HelmVersion,
        source: &ChartSource,
        scratch: &Path,
    ) -> Result<Pull, RunnerError> {
        let (
            Some(username),
            Some(password),
            ChartSource::Remote {
                reference, repo, ..
            },
        ) = (&self.username, &self.password, source)
        else {
            let (helm, source, args) = (helm.clone(), source.clone(), self.pull_args());
            return Ok(Pull { helm, source, args });
        };
        let config = scratch.join(CONFIG_DIR);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&config)
            .map_err(|e| {
                RunnerError::failed(format!("cannot create {}", config.display())).because(e)
            })?;
        let credentials = (username.as_str(), password.as_str());
        let mut helm = helm.clone();
        if let Some(url) = repo {
            helm.config_env = vec![
                ("HELM_REPOSITORY_CONFIG", config.join("repositories.yaml")),
                ("HELM_REPOSITORY_CACHE", config.join("cache")),
            ];
            let mut args: Vec<OsString> = ["repo", "add", REPOSITORY_NAME, url]
                .map(OsString::from)
                .to_vec();
            args.extend(self.login_flags(username, true));
            run_login(&helm, &format!("helm repo add {url}"), &args, password).await?;
            let mut source = source.clone();
            if let ChartSource::Remote {
                reference, repo, ..
            } = &mut source
            {
                *reference = format!("{REPOSITORY_NAME}/{reference}");
                *repo = None;
            }
            return Ok(Pull {
                helm,
                source,
                args: Vec::new(),
            });
        }
        let host = registry_host(reference).ok_or_else(|| {
            invalid(format!(
                "chart.auth applies to a chart from chart.repo or an oci:// registry, not to \
                 {reference:?}"
            ))
        })?;
        let registry_config = config.join("registry.json");
        helm.config_env = vec![("HELM_REGISTRY_CONFIG", registry_config.clone())];
        if version.registry_login_falls_back_to_plain_http() && !self.plain_http {
            let mut json = registry_credentials(host, credentials);
            let written = crate::files::write_private(&registry_config, &json);
            json.fill(0);
            written?;
        } else {
            crate::files::write_private(&registry_config, REGISTRY_CONFIG.as_bytes())?;
            let mut args: Vec<OsString> = ["registry", "login", host].map(OsString::from).to_vec();
            args.extend(self.login_flags(username, false));
            run_login(
                &helm,
                &format!("helm registry login {host}"),
                &args,
                password,
            )
            .await?;
        }
        let (source, args) = (source.clone(), self.pull_args());
        Ok(Pull { helm, source, args })
    }

    /// The flags of `helm repo add` (`repository`) or `helm registry login`: `--username U
    /// --password-stdin`, `--ca-file F`, and `--pass-credentials` (a repository) or
    /// `--plain-http` (a registry), as set.
    fn login_flags(&self, username: &str, repository: bool) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--username".into(),
            username.into(),
            "--password-stdin".into(),
        ];
        if let Some(ca) = &self.ca_file {
            args.extend(["--ca-file".into(), ca.into()]);
        }
        if repository && self.pass_credentials {
            args.push("--pass-credentials".into());
        }
        if !repository && self.plain_http {
            args.push("--plain-http".into());
        }
        args
    }
}

/// Runs a login (`helm <args>`) with `password` and a line break on its standard input; its
/// failure is the action's (exit 1: the chart source, not the cluster, failed).
async fn run_login(
    helm: &Helm,
    what: &str,
    args: &[OsString],
    password: &str,
) -> Result<(), RunnerError> {
    let mut input = password.as_bytes().to_vec();
    input.push(b'\n');
    let outcome = helm.run_with_stdin(what, args, &input).await;
    input.fill(0);
    outcome
        .map(drop)
        .map_err(|e| e.with_kind(action_runner::error::ErrorKind::Failed))
}

/// Helm's registry configuration (Docker's `config.json` format) holding `(username, password)`
/// for `host`, as `helm registry login` writes it: `{"auths": {"<host>": {"auth":
/// "<base64 of username:password>"}}}`, under the key Helm's login uses
/// (`credentials.ServerAddressFromRegistry` of `oras.land/oras-go/v2`: `docker.io` and
/// `registry-1.docker.io` are `https://index.docker.io/v1/`, every other host itself).
pub fn registry_credentials(host: &str, (username, password): (&str, &str)) -> Vec<u8> {
    use base64::Engine;
    let key = match host {
        "docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    serde_json::to_vec(&serde_json::json!({"auths": {key: {"auth": auth}}}))
        .expect("a JSON document serializes")
}

/// The registry host of an `oci://` reference: `oci://r.example.com:5000/charts/app` →
/// `r.example.com:5000`; `None` for anything else.
fn registry_host(reference: &str) -> Option<&str> {
    let rest = reference.strip_prefix("oci://")?;
    rest.split('/').next().filter(|h| !h.is_empty())
}

/// Refuses credentials that would travel where they should not, before anything is read: over
/// plain HTTP (an `http://` `chart.repo`, or `chart.plainHttp: true` for an `oci://` chart)
/// unless `chart.auth.allowPlainHttp: true` says so; `allowPlainHttp` where nothing is plain
/// HTTP; and credentials for a `<repo-name>/<chart>` of Helm's own configuration, whose entry
/// carries its own (the runner logs in to a chart source it names itself only).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) (exit 2) naming the fields.
pub fn check_credentials_transport(chart: &Chart, source: &ChartSource) -> Result<(), RunnerError> {
    let (
        Some(auth),
        ChartSource::Remote {
            reference, repo, ..
        },
    ) = (&chart.auth, source)
    else {
        return Ok(());
    };
    let plain = match repo {
        Some(url) if url.starts_with("http://") => {
            Some(format!("chart.repo {url:?} is plain HTTP"))
        }
        Some(_) => None,
        None if reference.starts_with("oci://") => chart
            .plain_http
            .then(|| "chart.plainHttp: true talks plain HTTP to the registry".to_string()),
        None => {
            return Err(invalid(format!(
                "chart.auth applies to a chart from chart.repo (http(s)://) or an oci:// \
                 registry; chart.name {reference:?} names a repository of Helm's own \
                 configuration, which holds its own credentials"
            )));
        }
    };
    match (plain, auth.allow_plain_http) {
        (Some(why), false) => Err(invalid(format!(
            "chart.auth: {why}, where the password would travel unencrypted: use https (or a \
             registry with TLS), or set chart.auth.allowPlainHttp: true to send it anyway"
        ))),
        (None, true) => Err(invalid(
            "chart.auth.allowPlainHttp applies to credentials over plain HTTP only (an http:// \
             chart.repo, or chart.plainHttp: true for an oci:// chart)",
        )),
        _ => Ok(()),
    }
}

/// A credential file's content without one trailing line break, read with the bounded reader
/// ([`action_runner::input_file`]: a regular file of at most [`MAX_CREDENTIAL_BYTES`]).
fn read_credential(field: &str, path: &str) -> Result<String, RunnerError> {
    let path = path.trim();
    if path.is_empty() {
        return Err(invalid(format!("{field} is empty: name a file")));
    }
    let text = action_runner::input_file::read_to_string(
        Path::new(path),
        &format!("input manifest: {field} {path}"),
        MAX_CREDENTIAL_BYTES,
    )?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text)
        .to_string();
    if value.is_empty() {
        return Err(invalid(format!("{field} {path}: the file is empty")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::ChartAuth;

    fn source(kind: SourceKind, name: &str, key: &str) -> ValuesSource {
        ValuesSource {
            kind,
            name: name.into(),
            key: key.into(),
            optional: false,
        }
    }

    #[test]
    fn values_from_names_and_keys() {
        assert!(check_values_from(&[source(SourceKind::ConfigMap, "base", "values.yaml")]).is_ok());
        let e = check_values_from(&[
            source(SourceKind::Secret, "ok", "v.yaml"),
            source(SourceKind::Secret, "Bad_Name", "v.yaml"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("valuesFrom[1].name \"Bad_Name\""), "{e}");
        for key in ["", "a/b", "..", &"k".repeat(254)] {
            let e = check_values_from(&[source(SourceKind::Secret, "s", key)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("valuesFrom[0].key"), "{e}");
        }
    }

    /// A Secret's value is redacted as is and base64-encoded (as the Secret and `b64enc` hold
    /// it).
    #[test]
    fn secret_values_are_redacted_base64_too() {
        let mut r = crate::cli::Redactor::default();
        let values = input::parse_values("v", "db: {password: \"hunter2-secret\"}\n").unwrap();
        r.add_values(&serde_json::Value::Object(values.0));
        assert_eq!(
            r.redact("data: aHVudGVyMi1zZWNyZXQ= and hunter2-secret"),
            "data: <redacted> and <redacted>"
        );
    }

    fn remote(repo: Option<&str>, reference: &str) -> ChartSource {
        ChartSource::Remote {
            reference: reference.into(),
            repo: repo.map(Into::into),
            version: None,
        }
    }

    #[test]
    fn access_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        let pass = dir.path().join("pass");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&user, "robot\n").unwrap();
        std::fs::write(&pass, "pa ss\r\n").unwrap();
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let chart = Chart {
            name: "webapp".into(),
            repo: "https://r".into(),
            auth: Some(ChartAuth {
                username_file: user.display().to_string(),
                password_file: pass.display().to_string(),
                allow_plain_http: false,
                ..ChartAuth::default()
            }),
            ca_file: ca.display().to_string(),
            pass_credentials: true,
            ..Chart::default()
        };
        let a = RepositoryAccess::read(&chart, &remote(Some("https://r"), "webapp")).unwrap();
        assert_eq!(a.username.as_deref(), Some("robot"));
        assert_eq!(a.password.as_deref(), Some("pa ss"));
        assert!(!format!("{a:?}").contains("pa ss"));
        let args: Vec<String> = a
            .pull_args()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        // Never a credential on helm pull's command line.
        assert_eq!(
            args,
            ["--ca-file", ca.to_str().unwrap(), "--pass-credentials"]
        );

        // Not for local charts; passCredentials only for a chart repository.
        let e = RepositoryAccess::read(&chart, &ChartSource::Local("/c".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("local chart"), "{e}");
        let e = RepositoryAccess::read(&chart, &remote(None, "oci://r/c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("chart.passCredentials"), "{e}");
        let oci = Chart {
            plain_http: true,
            ..Chart::default()
        };
        assert!(RepositoryAccess::read(&oci, &remote(None, "oci://r/c")).is_ok());
        let e = RepositoryAccess::read(&oci, &remote(Some("http://r"), "c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("chart.plainHttp"), "{e}");

        // Missing or empty files are named, their content never shown.
        std::fs::write(&pass, "\n").unwrap();
        let e = RepositoryAccess::read(&chart, &remote(Some("https://r"), "webapp"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chart.auth.passwordFile") && e.contains("empty"),
            "{e}"
        );
        let missing = Chart {
            ca_file: "/nonexistent/ca.pem".into(),
            ..Chart::default()
        };
        let e = RepositoryAccess::read(&missing, &remote(Some("https://r"), "webapp"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("chart.caFile /nonexistent/ca.pem"), "{e}");
    }

    fn chart_with_auth(repo: &str, name: &str, plain_http: bool, allow: bool) -> Chart {
        Chart {
            name: name.into(),
            repo: repo.into(),
            auth: Some(ChartAuth {
                username_file: "/u".into(),
                password_file: "/p".into(),
                allow_plain_http: allow,
                ..ChartAuth::default()
            }),
            plain_http,
            ..Chart::default()
        }
    }

    /// Credentials over plain HTTP only with `allowPlainHttp`; `allowPlainHttp` only where
    /// something is plain HTTP; never for a repository of Helm's own configuration.
    #[test]
    fn credentials_over_plain_http_need_the_opt_in() {
        let check = |c: &Chart| {
            let source = crate::chart::resolve(c).unwrap();
            check_credentials_transport(c, &source).map_err(|e| e.to_string())
        };
        assert!(check(&chart_with_auth("https://r", "c", false, false)).is_ok());
        assert!(check(&chart_with_auth("oci://r", "c", false, false)).is_ok());
        let e = check(&chart_with_auth("http://r", "c", false, false)).unwrap_err();
        assert!(
            e.contains("chart.repo \"http://r\" is plain HTTP")
                && e.contains("chart.auth.allowPlainHttp: true"),
            "{e}"
        );
        let e = check(&chart_with_auth("oci://r", "c", true, false)).unwrap_err();
        assert!(e.contains("chart.plainHttp: true"), "{e}");
        assert!(check(&chart_with_auth("http://r", "c", false, true)).is_ok());
        assert!(check(&chart_with_auth("", "oci://r/c", true, true)).is_ok());
        let e = check(&chart_with_auth("https://r", "c", false, true)).unwrap_err();
        assert!(e.contains("chart.auth.allowPlainHttp applies"), "{e}");
        let e = check(&chart_with_auth("", "myrepo/c", false, false)).unwrap_err();
        assert!(e.contains("Helm's own configuration"), "{e}");
        // Without credentials, plain HTTP is the user's business.
        let open = Chart {
            name: "c".into(),
            repo: "http://r".into(),
            ..Chart::default()
        };
        assert!(check(&open).is_ok());
    }

    /// A helm stand-in that records each call: its arguments (`args`), its standard input
    /// (`stdin`) and its environment (`env`), appended to files beside it.
    fn recording_helm(dir: &Path) -> Helm {
        let d = dir.display();
        let mut helm = crate::cli::tests::script_helm(
            dir,
            &format!("echo \"$@\" >> {d}/args\ncat >> {d}/stdin\nenv >> {d}/env"),
        );
        helm.repository_cache = dir.join("shared-cache");
        helm
    }

    fn access(ca: bool, pass_credentials: bool, plain_http: bool) -> RepositoryAccess {
        RepositoryAccess {
            username: Some("robot".into()),
            password: Some("pa ss-word".into()),
            ca_file: ca.then(|| PathBuf::from("/ca.pem")),
            pass_credentials,
            plain_http,
            from_cluster: None,
        }
    }

    /// A Docker config's entry for a host, by `username`/`password` or by `auth`, under a key
    /// written as `host:port` or as a URL; the host a chart comes from.
    #[test]
    fn docker_config_entries_by_host() {
        let config = br#"{"auths": {
            "127.0.0.1:5000": {"auth": "cm9ib3Q6cGEgc3M6d29yZA=="},
            "https://Registry.Example.com/v1/": {"username": "u", "password": "p"},
            "other:1": {"auth": "bm9jb2xvbg=="}
        }}"#;
        assert_eq!(
            docker_config_credentials(config, "127.0.0.1:5000"),
            Some(("robot".into(), "pa ss:word".into()))
        );
        assert_eq!(
            docker_config_credentials(config, "registry.example.com"),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(
            docker_config_credentials(config, "other:1"),
            None,
            "no colon in auth"
        );
        assert_eq!(docker_config_credentials(config, "absent"), None);
        assert_eq!(docker_config_credentials(b"not json", "absent"), None);
        let remote = |reference: &str, repo: Option<&str>| ChartSource::Remote {
            reference: reference.into(),
            repo: repo.map(String::from),
            version: None,
        };
        assert_eq!(
            source_host(&remote("oci://127.0.0.1:5000/charts/webapp", None)),
            Some("127.0.0.1:5000".into())
        );
        assert_eq!(
            source_host(&remote("webapp", Some("https://Charts.Example.com/stable"))),
            Some("charts.example.com".into())
        );
        assert_eq!(source_host(&remote("stable/webapp", None)), None);
        assert_eq!(source_host(&ChartSource::Local("/c".into())), None);
    }

    /// A chart repository: `helm repo add` with the password on stdin and its configuration in
    /// the scratch directory; the chart is then pulled by the repository's name.
    #[tokio::test]
    async fn login_to_a_chart_repository() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let helm = recording_helm(dir.path());
        let source = remote(Some("https://r.example.com"), "webapp");
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let pull = access(true, true, false)
            .login(&helm, &v3, &source, scratch.path())
            .await
            .unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(
            read("args"),
            "repo add helm-runner-chart-source https://r.example.com --username robot \
             --password-stdin --ca-file /ca.pem --pass-credentials\n"
        );
        assert_eq!(read("stdin"), "pa ss-word\n");
        let config = scratch.path().join(CONFIG_DIR);
        let env = read("env");
        for line in [
            format!(
                "HELM_REPOSITORY_CONFIG={}",
                config.join("repositories.yaml").display()
            ),
            format!("HELM_REPOSITORY_CACHE={}", config.join("cache").display()),
        ] {
            assert!(env.lines().any(|l| l == line), "{line} in {env}");
        }
        assert!(!env.contains("pa ss-word"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(pull.source, remote(None, "helm-runner-chart-source/webapp"));
        assert!(pull.args.is_empty());
        assert_eq!(pull.helm.config_env.len(), 2);
    }

    /// An OCI registry: `helm registry login <host>` (over plain HTTP with `--plain-http`),
    /// except with Helm 3 over TLS, whose login could fall back to plain HTTP: the credentials
    /// are then written to Helm's registry configuration without a login.
    #[tokio::test]
    async fn login_to_a_registry() {
        for (version, plain_http, login) in [
            ("v4.3.2", true, Some("--ca-file /ca.pem --plain-http")),
            ("v4.3.2", false, Some("--ca-file /ca.pem")),
            ("v3.22.0", true, Some("--ca-file /ca.pem --plain-http")),
            ("v3.22.0", false, None),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let scratch = tempfile::tempdir().unwrap();
            let helm = recording_helm(dir.path());
            let v = HelmVersion::parse(version).unwrap();
            let source = remote(None, "oci://127.0.0.1:5000/charts/webapp");
            let pull = access(true, false, plain_http)
                .login(&helm, &v, &source, scratch.path())
                .await
                .unwrap();
            let args = std::fs::read_to_string(dir.path().join("args")).ok();
            let registry_json = scratch.path().join(CONFIG_DIR).join("registry.json");
            let config = std::fs::read_to_string(&registry_json).unwrap();
            match login {
                Some(flags) => {
                    assert_eq!(
                        args.unwrap(),
                        format!(
                            "registry login 127.0.0.1:5000 --username robot --password-stdin \
                             {flags}\n"
                        ),
                        "{version}"
                    );
                    assert_eq!(config, REGISTRY_CONFIG);
                }
                None => {
                    assert!(args.is_none(), "{version}: no login");
                    let want =
                        r#"{"auths":{"127.0.0.1:5000":{"auth":"cm9ib3Q6cGEgc3Mtd29yZA=="}}}"#;
                    assert_eq!(config, want, "{version}");
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&registry_json)
                        .unwrap()
                        .permissions()
                        .mode();
                    assert_eq!(mode & 0o777, 0o600);
                }
            }
            assert_eq!(pull.source, source);
            let mut want: Vec<OsString> = vec!["--ca-file".into(), "/ca.pem".into()];
            if plain_http {
                want.push("--plain-http".into());
            }
            assert_eq!(pull.args, want, "{version}");
            assert_eq!(
                pull.helm.config_env,
                [("HELM_REGISTRY_CONFIG", registry_json)]
            );
        }
    }

    #[test]
    fn registry_credentials_as_helm_writes_them() {
        assert_eq!(
            String::from_utf8(registry_credentials("docker.io", ("u", "p"))).unwrap(),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#
        );
    }

    /// Without credentials nothing is run: the pull goes as before.
    #[tokio::test]
    async fn no_login_without_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let helm = recording_helm(dir.path());
        let source = remote(Some("https://r"), "webapp");
        let open = RepositoryAccess {
            ca_file: Some("/ca.pem".into()),
            ..RepositoryAccess::default()
        };
        let v4 = HelmVersion::parse("v4.3.2").unwrap();
        let pull = open.login(&helm, &v4, &source, dir.path()).await.unwrap();
        assert!(!dir.path().join("args").exists());
        assert_eq!(pull.source, source);
        assert_eq!(pull.args, [OsString::from("--ca-file"), "/ca.pem".into()]);
        assert!(pull.helm.config_env.is_empty());
    }
}

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

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use action_runner::RunnerError;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

use crate::chart::ChartSource;
use crate::input::{self, Chart, SourceKind, Values, ValuesSource};

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
            crate::write_private(&path, f.text.as_bytes())?;
            Ok(path)
        })
        .collect()
}

/// Access to a private chart repository or registry, read from `chart` of the input manifest:
/// what `helm pull` is given. Its `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepositoryAccess {
    /// `--username`.
    pub username: Option<String>,
    /// `--password` (a secret).
    pub password: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--pass-credentials`.
    pub pass_credentials: bool,
    /// `--plain-http`.
    pub plain_http: bool,
}

impl std::fmt::Debug for RepositoryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryAccess")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("pass_credentials", &self.pass_credentials)
            .field("plain_http", &self.plain_http)
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
            access.username = Some(read_credential(
                "chart.auth.usernameFile",
                &auth.username_file,
            )?);
            access.password = Some(read_credential(
                "chart.auth.passwordFile",
                &auth.password_file,
            )?);
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
                "chart.passCredentials applies to an http(s):// chart repository (chart.repo) only"
                    .into(),
            ));
        }
        if access.plain_http && !is_oci {
            return Err(invalid(
                "chart.plainHttp applies to an oci:// chart only (for an http:// chart \
                 repository, write the URL with http://)"
                    .into(),
            ));
        }
        Ok(access)
    }

    /// The flags of `helm pull`: `--username U --password P`, `--ca-file F`,
    /// `--pass-credentials`, `--plain-http`, as set. The password is on helm's command line
    /// (Helm has no other way for `helm pull` of a chart repository); the runner's log of the
    /// command line redacts it ([`crate::cli::Redactor`]).
    pub fn pull_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            args.extend(["--username".into(), u.into(), "--password".into(), p.into()]);
        }
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

/// The largest `chart.auth.usernameFile` or `passwordFile` read: 64 KiB, far more than a user
/// name, a password or a registry token (a JSON Web Token of a few KiB) needs.
pub const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// The largest `chart.caFile` accepted: 1 MiB, about five times Debian's whole bundle of public
/// roots (`/etc/ssl/certs/ca-certificates.crt`, about 215 KiB).
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

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

fn invalid(message: String) -> RunnerError {
    RunnerError::invalid_input(format!("input manifest: {message}"))
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
        assert_eq!(
            args,
            [
                "--username",
                "robot",
                "--password",
                "pa ss",
                "--ca-file",
                ca.to_str().unwrap(),
                "--pass-credentials"
            ]
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
}

//! Reading Helm's own release records from the cluster, with the runner's Kubernetes client.
//!
//! Helm 3 and Helm 4 store each revision of a release as one object (`HELM_DRIVER` `secrets`:
//! a Secret, `configmap`: a ConfigMap) named `sh.helm.release.v1.<release>.v<revision>` in the
//! release's namespace, labelled `owner=helm`, `name=<release>`, `version=<revision>` and
//! `status=<status>`. Its key `release` holds the release as base64(gzip(JSON)) (Helm's
//! `pkg/storage/driver/util.go`, `encodeRelease`; a Secret's data is base64 once more on the
//! wire, which the client undoes). The JSON's `config` is the user-supplied values of that
//! revision: what `--reuse-values` reuses, and what a failed upgrade may print back.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use action_runner::RunnerError;
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a stored release could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The record's `release` key is not base64.
    #[error("the record's release key is not base64")]
    Base64(#[source] base64::DecodeError),
    /// The decoded bytes are gzip but do not inflate.
    #[error("the record's release does not inflate (gzip)")]
    Gzip(#[source] std::io::Error),
    /// The release is not the JSON Helm writes.
    #[error("the record's release is not Helm's release JSON")]
    Json(#[source] serde_json::Error),
    /// The release inflates to more than [`MAX_RELEASE_JSON_BYTES`].
    #[error(
        "the record's release inflates to more than {MAX_RELEASE_JSON_BYTES} bytes (32 MiB), the \
         most read"
    )]
    TooLarge,
}

/// The most a stored release is inflated to (its JSON), and the most of helm's standard output
/// the runner keeps (`helm install -o json` prints the same document): 32 MiB. A record is one
/// Secret or ConfigMap, at most 1 MiB (`MaxSecretSize`, `k8s.io/api/core/v1`; etcd's request
/// limit, 1.5 MiB, bounds a ConfigMap), so this allows a compression ratio of 32 for Helm's JSON
/// (rendered manifests, the chart's files base64-encoded), more than such text reaches, while a
/// gzip bomb (gzip inflates up to about 1,000 times) is cut at 32 MiB: the buffer that reads it
/// stays within 64 MiB, a quarter of helm-runner's 256Mi memory limit.
pub const MAX_RELEASE_JSON_BYTES: u64 = 32 * 1024 * 1024;

/// The parts of a stored release the runner reads. `config` is never logged.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StoredRelease {
    /// Revision (`version` in Helm's JSON).
    #[serde(default)]
    pub version: u64,
    /// The user-supplied values of this revision.
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
}

/// One revision's record, from its labels (`version`, `status`) and its decoded release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The record object's name: `sh.helm.release.v1.<release>.v<revision>`.
    pub object: String,
    /// Revision, from the `version` label (0 when the label is missing or not a number).
    pub revision: u64,
    /// Status, from the `status` label: `deployed`, `failed`, `pending-install`, ...
    pub status: String,
    /// All the record's labels: Helm's own (`owner`, `name`, `version`, `status`, ...) and the
    /// release's labels (`--labels`; Helm 3.13 and later store them on the record).
    pub labels: BTreeMap<String, String>,
    /// The release's text as stored (`release` key), undecoded.
    pub(crate) encoded: Vec<u8>,
}

impl Record {
    /// The release's name, from the record's `name` label.
    pub fn release_name(&self) -> &str {
        self.labels.get("name").map(String::as_str).unwrap_or("")
    }

    /// The stored release, decoded.
    ///
    /// # Errors
    /// [`DecodeError`] when the record does not hold Helm's encoding.
    pub fn release(&self) -> Result<StoredRelease, DecodeError> {
        serde_json::from_slice(&self.release_json()?).map_err(DecodeError::Json)
    }

    /// The stored release's JSON, as Helm wrote it (the same document as `helm install -o
    /// json` prints). Holds the release's values: never log it.
    ///
    /// # Errors
    /// [`DecodeError`] when the record does not hold Helm's encoding.
    pub fn release_json(&self) -> Result<Vec<u8>, DecodeError> {
        decode_json(&self.encoded)
    }
}

/// Decodes Helm's encoding of a release: base64 (standard alphabet) of gzip of JSON; when the
/// bytes do not start with gzip's magic number they are read as plain JSON, as Helm's
/// `decodeRelease` does.
///
/// # Errors
/// [`DecodeError`] naming the layer that failed.
pub fn decode(encoded: &[u8]) -> Result<StoredRelease, DecodeError> {
    serde_json::from_slice(&decode_json(encoded)?).map_err(DecodeError::Json)
}

/// Helm's encoding of a release undone down to its JSON bytes (see [`decode`]), at most
/// [`MAX_RELEASE_JSON_BYTES`]; the JSON itself is not checked.
///
/// # Errors
/// [`DecodeError::Base64`], [`DecodeError::Gzip`], or [`DecodeError::TooLarge`] when the
/// release inflates to more than [`MAX_RELEASE_JSON_BYTES`].
pub fn decode_json(encoded: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let text: Vec<u8> = encoded
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(DecodeError::Base64)?;
    let json = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .take(MAX_RELEASE_JSON_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(DecodeError::Gzip)?;
        out
    } else {
        bytes
    };
    if json.len() as u64 > MAX_RELEASE_JSON_BYTES {
        return Err(DecodeError::TooLarge);
    }
    Ok(json)
}

/// Helm's encoding of a release's JSON: base64 (standard alphabet) of gzip, as Helm's
/// `encodeRelease` writes it (`pkg/storage/driver/util.go`, Helm 3 and 4).
pub fn encode(json: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(json).expect("writing to a Vec cannot fail");
    let gz = z.finish().expect("writing to a Vec cannot fail");
    base64::engine::general_purpose::STANDARD
        .encode(gz)
        .into_bytes()
}

/// The records of release `name` in `namespace` for storage driver `driver` (`secret(s)` or
/// `configmap(s)`, as `RUNNER_HELM_DRIVER` allows), oldest revision first.
///
/// # Errors
/// The list request's error, classified by [`RunnerError::from_kube`] (needs `list` on Secrets
/// or ConfigMaps, which Helm itself needs for an upgrade).
pub async fn records(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    name: &str,
) -> Result<Vec<Record>, RunnerError> {
    list(
        client,
        namespace,
        driver,
        &format!("owner=helm,name={name}"),
        format!("list Helm's records of release {namespace}/{name}"),
    )
    .await
}

/// The records in `namespace` (driver `driver`, as for [`records`]) that the label selector
/// `selector` matches (for example `owner=helm,<release label>=<value>`), sorted by revision.
///
/// # Errors
/// The list request's error, classified by [`RunnerError::from_kube`].
pub async fn records_matching(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    selector: &str,
) -> Result<Vec<Record>, RunnerError> {
    let what = format!("list Helm's records in namespace {namespace} labelled {selector}");
    list(client, namespace, driver, selector, what).await
}

/// The records of release `name` (as [`records`]: driver `driver`, oldest revision first), read
/// before helm runs in a way that does not make helm's own first read wait.
///
/// Why: since Kubernetes 1.31 (KEP-2340, consistent reads from the watch cache; locked on in
/// 1.34) the API server answers a consistent LIST (no `resourceVersion`) from its watch cache
/// once the cache has caught up with etcd, and asks etcd for that progress at most once per
/// 100 ms per resource (`k8s.io/apiserver` `storage/cacher/progress`,
/// `progressRequestPeriod`). A consistent LIST of Secrets by the runner, any write, then
/// helm's own consistent LIST within 100 ms: helm's LIST waits for the next progress request,
/// 40 to 60 ms per run measured (`bench`, the audit log's figure "helm's first LIST of its
/// records"). So the records are read as:
/// 1. one LIST from the watch cache at any resource version (`resourceVersion=0`: no wait, no
///    progress request), possibly a few milliseconds behind etcd;
/// 2. then, from etcd (a GET without `resourceVersion` is a quorum read that bypasses the
///    cache), the newest record that LIST returned (revision `n`), fresh, and record `n + 1`,
///    which must not exist. Helm writes revision `n + 1` only after `n`, and never changes
///    the values stored with a revision, so the list is then complete and its newest
///    record's status is current;
/// 3. if the GETs say otherwise (a newer record, or the newest one gone), the list is read
///    again with a consistent LIST, as [`records`] does.
///
/// What this does not catch: a cache missing every record of a release whose first revisions
/// Helm has already pruned (`--history-max`), which would need the cache to lag by the
/// release's whole life; helm's own consistent read would then still refuse an install of
/// that name.
///
/// # Errors
/// The requests' errors, classified by [`RunnerError::from_kube`] (needs `list` and `get` on
/// Secrets or ConfigMaps, which Helm itself needs).
pub async fn history(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    name: &str,
) -> Result<Vec<Record>, RunnerError> {
    let selector = format!("owner=helm,name={name}");
    let what = format!("list Helm's records of release {namespace}/{name}");
    let lp = ListParams::default().labels(&selector).match_any();
    let mut cached = list_with(client, namespace, driver, &lp, what).await?;
    let newest = cached.last().map(|r| r.revision).unwrap_or(0);
    let (newest_object, next_object) = (
        format!("sh.helm.release.v1.{name}.v{newest}"),
        format!("sh.helm.release.v1.{name}.v{}", newest + 1),
    );
    let (fresh, next) = tokio::try_join!(
        async {
            match newest {
                0 => Ok(None),
                _ => get_record(client, namespace, driver, &newest_object).await,
            }
        },
        get_record(client, namespace, driver, &next_object),
    )?;
    if next.is_none() {
        match fresh {
            // No release.
            None if newest == 0 => return Ok(cached),
            Some(fresh) => {
                *cached.last_mut().expect("newest is a listed record") = fresh;
                return Ok(cached);
            }
            // The newest listed record is gone (an uninstall meanwhile).
            None => {}
        }
    }
    tracing::debug!(
        release = name,
        newest,
        "the watch cache was behind etcd: reading Helm's \
        records again with a consistent LIST"
    );
    records(client, namespace, driver, name).await
}

/// Record `object` (`sh.helm.release.v1.<release>.v<revision>`) read from etcd (a GET without
/// `resourceVersion`), or `None` when it does not exist.
async fn get_record(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    object: &str,
) -> Result<Option<Record>, RunnerError> {
    let what = || format!("get Helm's record {namespace}/{object}");
    if driver.starts_with("configmap") {
        let o = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_opt(object)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?;
        Ok(o.map(configmap_record))
    } else {
        let o = Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(object)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?;
        Ok(o.map(secret_record))
    }
}

async fn list(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    selector: &str,
    what: String,
) -> Result<Vec<Record>, RunnerError> {
    let lp = ListParams::default().labels(selector);
    list_with(client, namespace, driver, &lp, what).await
}

async fn list_with(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    lp: &ListParams,
    what: String,
) -> Result<Vec<Record>, RunnerError> {
    let mut records = if driver.starts_with("configmap") {
        list_of(client, namespace, lp, &what, configmap_record).await?
    } else {
        list_of(client, namespace, lp, &what, secret_record).await?
    };
    records.sort_by_key(|r| r.revision);
    Ok(records)
}

/// The records of the objects of kind `K` (Secrets or ConfigMaps) that `lp` selects, each read
/// by `record`; `what` names the list in errors.
async fn list_of<K>(
    client: &kube::Client,
    namespace: &str,
    lp: &ListParams,
    what: &str,
    record: fn(K) -> Record,
) -> Result<Vec<Record>, RunnerError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let objects = Api::<K>::namespaced(client.clone(), namespace)
        .list(lp)
        .await
        .map_err(|e| RunnerError::from_kube(what, e))?;
    Ok(objects.items.into_iter().map(record).collect())
}

/// The stored status of revision `revision` of release `name`, from the `status` label of its
/// record (one GET of the object's metadata: `get` on Secrets or ConfigMaps, which Helm itself
/// needs), or `None` when there is no such record. Only for the `secret(s)` and `configmap(s)`
/// drivers; `None` is returned for the others without a request (see [`reads_driver`]).
///
/// # Errors
/// The request's error, classified by [`RunnerError::from_kube`].
pub async fn stored_status(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    name: &str,
    revision: u64,
) -> Result<Option<String>, RunnerError> {
    let object = format!("sh.helm.release.v1.{name}.v{revision}");
    let what = || format!("get Helm's record {namespace}/{object}");
    let labels = if driver.starts_with("configmap") {
        Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_metadata_opt(&object)
            .await
            .map(|m| m.map(|m| m.metadata.labels.unwrap_or_default()))
    } else if reads_driver(driver) {
        Api::<Secret>::namespaced(client.clone(), namespace)
            .get_metadata_opt(&object)
            .await
            .map(|m| m.map(|m| m.metadata.labels.unwrap_or_default()))
    } else {
        return Ok(None);
    }
    .map_err(|e| RunnerError::from_kube(what(), e))?;
    Ok(labels.map(|l| l.get("status").cloned().unwrap_or_default()))
}

/// Whether the runner reads `HELM_DRIVER` `driver`'s records itself: `secret`/`secrets` (Helm's
/// default, also for an empty value) and `configmap`/`configmaps`; not `memory` or `sql`.
pub fn reads_driver(driver: &str) -> bool {
    matches!(
        driver,
        "" | "secret" | "secrets" | "configmap" | "configmaps"
    )
}

/// A record from Helm's Secret (driver `secrets`).
fn secret_record(o: Secret) -> Record {
    let encoded = o
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    record(o.metadata.name, o.metadata.labels, encoded)
}

/// A record from Helm's ConfigMap (driver `configmaps`).
fn configmap_record(o: ConfigMap) -> Record {
    let encoded = o
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default();
    record(o.metadata.name, o.metadata.labels, encoded)
}

fn record(
    object: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    encoded: Vec<u8>,
) -> Record {
    let labels = labels.unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    Record {
        object: object.unwrap_or_default(),
        revision: label("version").parse().unwrap_or(0),
        status: label("status"),
        encoded,
        labels,
    }
}

/// Marks the stored revision `record` of a release in `namespace` as `failed`, as Helm itself
/// records a failed operation and as Flux's helm-controller recovers a release whose operation
/// was interrupted: `info.status` becomes `failed` and `info.description` `description` in the
/// stored release, and the record's `status` label `failed`. One GET and one PUT (`update` on
/// Secrets or ConfigMaps, which Helm itself needs), conditional on the record being unchanged
/// since it was read (its `resourceVersion`).
///
/// # Errors
/// A 409 Conflict when the record changed meanwhile (exit 4: a retry reads it again), other API
/// errors as [`RunnerError::from_kube`] classifies them, or
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when the record does not decode.
pub async fn mark_failed(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    record: &Record,
    description: &str,
) -> Result<(), RunnerError> {
    let what = || format!("mark Helm's record {namespace}/{} failed", record.object);
    let rewrite = |encoded: &[u8]| -> Result<Vec<u8>, RunnerError> {
        let mut release: Value = serde_json::from_slice(
            &decode_json(encoded).map_err(|e| RunnerError::failed(what()).because(e))?,
        )
        .map_err(|e| RunnerError::failed(what()).because(DecodeError::Json(e)))?;
        let info = release
            .as_object_mut()
            .and_then(|r| r.get_mut("info"))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                RunnerError::failed(format!("{}: the stored release has no info", what()))
            })?;
        info.insert("status".into(), "failed".into());
        info.insert("description".into(), description.into());
        Ok(encode(
            &serde_json::to_vec(&release).expect("a JSON value serializes"),
        ))
    };
    let failed_label = |labels: &mut Option<BTreeMap<String, String>>| {
        labels
            .get_or_insert_with(BTreeMap::new)
            .insert("status".into(), "failed".into());
    };
    if driver.starts_with("configmap") {
        let api = Api::<ConfigMap>::namespaced(client.clone(), namespace);
        let mut o = api
            .get(&record.object)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?;
        let data = o.data.get_or_insert_with(BTreeMap::new);
        let encoded = data.get("release").cloned().unwrap_or_default();
        let text = String::from_utf8(rewrite(encoded.as_bytes())?).expect("base64 is ASCII");
        data.insert("release".into(), text);
        failed_label(&mut o.metadata.labels);
        api.replace(&record.object, &PostParams::default(), &o)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?;
    } else {
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        let mut o = api
            .get(&record.object)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?;
        let data = o.data.get_or_insert_with(BTreeMap::new);
        let encoded = data.get("release").map(|b| b.0.clone()).unwrap_or_default();
        data.insert(
            "release".into(),
            k8s_openapi::ByteString(rewrite(&encoded)?),
        );
        failed_label(&mut o.metadata.labels);
        api.replace(&record.object, &PostParams::default(), &o)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn encode(json: &str, gzip: bool) -> Vec<u8> {
        let bytes = if gzip {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(json.as_bytes()).unwrap();
            z.finish().unwrap()
        } else {
            json.as_bytes().to_vec()
        };
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes()
    }

    #[test]
    fn decodes_helms_encoding() {
        let json = r#"{"name":"shop","version":3,"config":{"db":{"password":"x1y2z3"}},"info":{"status":"failed"}}"#;
        for gzip in [true, false] {
            let r = decode(&encode(json, gzip)).unwrap();
            assert_eq!(r.version, 3);
            assert_eq!(
                Value::Object(r.config.unwrap()),
                serde_json::json!({"db": {"password": "x1y2z3"}})
            );
        }
        let r = decode(&encode(r#"{"name":"x","version":1}"#, true)).unwrap();
        assert!(r.config.is_none());
    }

    #[test]
    fn encode_is_what_decode_reads() {
        let json = br#"{"name":"shop","version":2,"info":{"status":"deployed"}}"#;
        let encoded = super::encode(json);
        assert_eq!(decode_json(&encoded).unwrap(), json);
        assert_eq!(decode(&encoded).unwrap().version, 2);
    }

    /// A record that inflates beyond the limit (a gzip bomb: 64 MiB of zeros in about 64 KiB)
    /// is refused once the limit is read, not inflated whole.
    #[test]
    fn a_gzip_bomb_is_cut_at_the_limit() {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::copy(
            &mut std::io::repeat(b' ').take(2 * MAX_RELEASE_JSON_BYTES),
            &mut z,
        )
        .unwrap();
        let gz = z.finish().unwrap();
        assert!(gz.len() < 1024 * 1024, "{}", gz.len());
        let encoded = base64::engine::general_purpose::STANDARD.encode(gz);
        let e = decode(encoded.as_bytes()).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge), "{e}");
        assert!(e.to_string().contains("33554432"), "{e}");
    }

    #[test]
    fn names_the_layer_that_failed() {
        assert!(matches!(
            decode(b"not base64!"),
            Err(DecodeError::Base64(_))
        ));
        let bad_gzip = base64::engine::general_purpose::STANDARD.encode([0x1f, 0x8b, 1, 2, 3]);
        assert!(matches!(
            decode(bad_gzip.as_bytes()),
            Err(DecodeError::Gzip(_))
        ));
        assert!(matches!(
            decode(&encode("[1", true)),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn labels_give_revision_and_status() {
        let labels: std::collections::BTreeMap<String, String> = [
            ("version".to_string(), "4".to_string()),
            ("status".to_string(), "pending-upgrade".to_string()),
        ]
        .into();
        let r = record(
            Some("sh.helm.release.v1.shop.v4".into()),
            Some(labels),
            vec![],
        );
        assert_eq!((r.revision, r.status.as_str()), (4, "pending-upgrade"));
        assert_eq!(r.object, "sh.helm.release.v1.shop.v4");
    }

    /// An API server holding the records `etcd` (revision, status) in etcd and `cached` in its
    /// watch cache (what a LIST with `resourceVersion=0` gets), noting each request's URI.
    fn api(
        etcd: &'static [(u64, &'static str)],
        cached: &'static [(u64, &'static str)],
    ) -> (kube::Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let noted = seen.clone();
        let secret = |(revision, status): (u64, &str)| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("sh.helm.release.v1.shop.v{revision}"),
                    "labels": {"owner": "helm", "name": "shop",
                        "version": revision.to_string(), "status": status}},
                "data": {"release": base64::engine::general_purpose::STANDARD
                    .encode(encode(r#"{"version":1}"#, true))},
            })
        };
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let uri = req.uri().clone();
            noted.lock().unwrap().push(uri.to_string());
            let query = uri.query().unwrap_or_default();
            let (code, body) = match uri.path().rsplit_once("/secrets") {
                Some((_, "")) => {
                    let from = if query.contains("resourceVersion=0") {
                        cached
                    } else {
                        etcd
                    };
                    let items: Vec<_> = from.iter().copied().map(secret).collect();
                    (
                        200,
                        serde_json::json!({"apiVersion": "v1", "kind": "SecretList",
                        "metadata": {"resourceVersion": "7"}, "items": items}),
                    )
                }
                Some((_, name)) => match etcd
                    .iter()
                    .copied()
                    .find(|(r, _)| name == format!("/sh.helm.release.v1.shop.v{r}"))
                {
                    Some(r) => (200, secret(r)),
                    None => (
                        404,
                        serde_json::json!({"apiVersion": "v1", "kind": "Status",
                        "status": "Failure", "reason": "NotFound", "code": 404,
                        "message": "not found"}),
                    ),
                },
                None => (400, serde_json::json!({})),
            };
            let response = http::Response::builder()
                .status(code)
                .body(kube::client::Body::from(body.to_string().into_bytes()))
                .unwrap();
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        (kube::Client::new(svc, "apps"), seen)
    }

    fn revisions(records: &[Record]) -> Vec<(u64, String)> {
        records
            .iter()
            .map(|r| (r.revision, r.status.clone()))
            .collect()
    }

    #[tokio::test]
    async fn history_reads_the_cache_then_confirms_the_newest_record_from_etcd() {
        // The cache has the records but not the newest one's last status change.
        let (client, seen) = api(
            &[(1, "superseded"), (2, "deployed")],
            &[(1, "superseded"), (2, "pending-upgrade")],
        );
        let h = history(&client, "apps", "secrets", "shop").await.unwrap();
        assert_eq!(
            revisions(&h),
            vec![(1, "superseded".into()), (2, "deployed".into())]
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[0].contains("resourceVersion=0"), "{seen:?}");
        assert!(
            seen[1..]
                .iter()
                .all(|s| s.contains("/secrets/sh.helm.release.v1.shop.v"))
        );
        assert!(seen.iter().any(|s| s.ends_with(".v3")), "{seen:?}");
    }

    #[tokio::test]
    async fn history_of_no_release_is_one_cached_list_and_one_get() {
        let (client, seen) = api(&[], &[]);
        let h = history(&client, "apps", "secrets", "shop").await.unwrap();
        assert!(h.is_empty());
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[1].ends_with("/secrets/sh.helm.release.v1.shop.v1"),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn history_reads_again_with_a_consistent_list_when_the_cache_is_behind() {
        // A revision the cache has not seen yet, and a release the cache has not seen at all.
        for (etcd, cached) in [
            (
                &[(1, "superseded"), (2, "pending-upgrade")][..],
                &[(1, "deployed")][..],
            ),
            (&[(1, "pending-install")][..], &[][..]),
        ] {
            let (client, seen) = api(etcd, cached);
            let h = history(&client, "apps", "secrets", "shop").await.unwrap();
            let want: Vec<(u64, String)> = etcd.iter().map(|(r, s)| (*r, s.to_string())).collect();
            assert_eq!(revisions(&h), want);
            let seen = seen.lock().unwrap().clone();
            let last = seen.last().unwrap();
            assert!(
                last.contains("/secrets?") && !last.contains("resourceVersion"),
                "the last read is a consistent LIST: {seen:?}"
            );
        }
    }
}

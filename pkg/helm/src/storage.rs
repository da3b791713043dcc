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
}

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

/// Helm's encoding of a release undone down to its JSON bytes (see [`decode`]); the JSON itself
/// is not checked.
///
/// # Errors
/// [`DecodeError::Base64`] or [`DecodeError::Gzip`].
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
            .read_to_end(&mut out)
            .map_err(DecodeError::Gzip)?;
        out
    } else {
        bytes
    };
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

async fn list(
    client: &kube::Client,
    namespace: &str,
    driver: &str,
    selector: &str,
    what: String,
) -> Result<Vec<Record>, RunnerError> {
    let lp = ListParams::default().labels(selector);
    let what = || what.clone();
    let mut records: Vec<Record> = if driver.starts_with("configmap") {
        Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?
            .items
            .into_iter()
            .map(|o| {
                let encoded = o
                    .data
                    .as_ref()
                    .and_then(|d| d.get("release"))
                    .map(|s| s.as_bytes().to_vec())
                    .unwrap_or_default();
                record(o.metadata.name, o.metadata.labels, encoded)
            })
            .collect()
    } else {
        Api::<Secret>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await
            .map_err(|e| RunnerError::from_kube(what(), e))?
            .items
            .into_iter()
            .map(|o| {
                let encoded = o
                    .data
                    .as_ref()
                    .and_then(|d| d.get("release"))
                    .map(|b| b.0.clone())
                    .unwrap_or_default();
                record(o.metadata.name, o.metadata.labels, encoded)
            })
            .collect()
    };
    records.sort_by_key(|r| r.revision);
    Ok(records)
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
}

//! Reading Helm's own release records from the cluster, with the runner's Kubernetes client.
//!
//! Helm 3 and Helm 4 store each revision of a release as one object (`HELM_DRIVER` `secrets`:
//! a Secret, `configmap`: a ConfigMap) named `sh.helm.release.v1.<release>.v<revision>` in the
//! release's namespace, labelled `owner=helm`, `name=<release>`, `version=<revision>` and
//! `status=<status>`. Its key `release` holds the release as base64(gzip(JSON)) (Helm's
//! `pkg/storage/driver/util.go`, `encodeRelease`; a Secret's data is base64 once more on the
//! wire, which the client undoes). The JSON's `config` is the user-supplied values of that
//! revision: what `--reuse-values` reuses, and what a failed upgrade may print back.

use std::io::Read;

use action_runner::RunnerError;
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
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
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Revision, from the `version` label (0 when the label is missing or not a number).
    pub revision: u64,
    /// Status, from the `status` label: `deployed`, `failed`, `pending-install`, ...
    pub status: String,
    /// The release's text as stored (`release` key), undecoded.
    encoded: Vec<u8>,
}

impl Record {
    /// The stored release, decoded.
    ///
    /// # Errors
    /// [`DecodeError`] when the record does not hold Helm's encoding.
    pub fn release(&self) -> Result<StoredRelease, DecodeError> {
        decode(&self.encoded)
    }
}

/// Decodes Helm's encoding of a release: base64 (standard alphabet) of gzip of JSON; when the
/// bytes do not start with gzip's magic number they are read as plain JSON, as Helm's
/// `decodeRelease` does.
///
/// # Errors
/// [`DecodeError`] naming the layer that failed.
pub fn decode(encoded: &[u8]) -> Result<StoredRelease, DecodeError> {
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
    serde_json::from_slice(&json).map_err(DecodeError::Json)
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
    let lp = ListParams::default().labels(&format!("owner=helm,name={name}"));
    let what = || format!("list Helm's records of release {namespace}/{name}");
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
                record(o.metadata.labels.as_ref(), encoded)
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
                record(o.metadata.labels.as_ref(), encoded)
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

fn record(labels: Option<&std::collections::BTreeMap<String, String>>, encoded: Vec<u8>) -> Record {
    let label = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    Record {
        revision: label("version").parse().unwrap_or(0),
        status: label("status"),
        encoded,
    }
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
        let r = record(Some(&labels), vec![]);
        assert_eq!((r.revision, r.status.as_str()), (4, "pending-upgrade"));
    }
}

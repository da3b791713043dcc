//! The release-size preflight: before helm installs or upgrades anything, the size of the record
//! Helm is about to store, against the limit of its storage driver.
//!
//! Helm stores each revision as one Secret (driver `secret`, the default) or ConfigMap (driver
//! `configmap`) whose key `release` holds base64(gzip(JSON of the release)) (Helm's
//! `pkg/storage/driver/util.go`, `encodeRelease`, gzip at its best compression). Kubernetes caps
//! the data of a Secret or ConfigMap at 1 MiB (`MaxSecretSize`, `k8s.io/api/core/v1`; the same
//! bound for ConfigMaps), so a release whose record is larger fails at the very end, after its
//! objects were applied, with Helm's storage error (helm/helm#9788, helm/helm#7126). The `sql`
//! and `memory` drivers have no such bound.
//!
//! The record is measured from the release a server-side dry run of the same command returns
//! (`--dry-run=server -o json`: the same document Helm encodes, with the rendered manifest, the
//! chart's templates and files and the values), encoded as Helm encodes it here. This gzip is
//! not Go's, so the size is an estimate: within a few percent of the stored one.

use std::io::Write;

use base64::Engine;
use serde_json::Value;

/// The most data a Secret or ConfigMap holds: 1 MiB (`MaxSecretSize`, `k8s.io/api/core/v1`).
pub const OBJECT_DATA_LIMIT: u64 = 1024 * 1024;

/// From this share of the limit on, the size is a warning (in the log and the status).
pub const WARN_AT_PERCENT: u64 = 80;

/// How many of the largest parts [`Size::contributors`] names.
const CONTRIBUTORS: usize = 3;

/// The bound on a record's data for Helm storage driver `driver` (`RUNNER_HELM_DRIVER`):
/// [`OBJECT_DATA_LIMIT`] for `secret`/`secrets` (and empty, Helm's default) and
/// `configmap`/`configmaps`; `None` for `sql` and `memory`.
pub fn limit_for(driver: &str) -> Option<u64> {
    match driver {
        "" | "secret" | "secrets" | "configmap" | "configmaps" => Some(OBJECT_DATA_LIMIT),
        _ => None,
    }
}

/// The size of a release's record and what it is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Size {
    /// The record's `release` data: base64(gzip(JSON)), in bytes.
    pub bytes: u64,
    /// The largest parts, largest first, each with its share of the record in bytes (its own
    /// text compressed and base64-encoded alone): `manifest`, `hooks`, `values`, and each chart
    /// file by its path (`templates/x.yaml`, `files/blob.bin`).
    pub contributors: Vec<(String, u64)>,
}

/// What the stored record of `data` costs: base64 of gzip at the best level.
fn encoded_size(data: &[u8]) -> u64 {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).expect("writing to a Vec cannot fail");
    let compressed = gz.finish().expect("writing to a Vec cannot fail");
    base64::engine::general_purpose::STANDARD
        .encode(&compressed)
        .len() as u64
}

/// Measures the record of `release_json` (the release as `helm install -o json` prints it).
///
/// # Errors
/// When it is not a JSON object.
pub fn measure(release_json: &[u8]) -> Result<Size, serde_json::Error> {
    let release: Value = serde_json::from_slice(release_json)?;
    let mut parts: Vec<(String, u64)> = Vec::new();
    if let Some(m) = release["manifest"].as_str().filter(|m| !m.is_empty()) {
        parts.push(("manifest".into(), encoded_size(m.as_bytes())));
    }
    let hooks: String = release["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["manifest"].as_str())
        .collect();
    if !hooks.is_empty() {
        parts.push(("hooks".into(), encoded_size(hooks.as_bytes())));
    }
    let values = format!("{}{}", release["config"], release["chart"]["values"]);
    parts.push(("values".into(), encoded_size(values.as_bytes())));
    for list in ["templates", "files"] {
        for f in release["chart"][list].as_array().into_iter().flatten() {
            let (Some(name), Some(data)) = (f["name"].as_str(), f["data"].as_str()) else {
                continue;
            };
            // A chart file's data is its bytes, base64-encoded in the JSON.
            parts.push((name.to_string(), encoded_size(data.as_bytes())));
        }
    }
    parts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    parts.truncate(CONTRIBUTORS);
    Ok(Size {
        bytes: encoded_size(release_json.trim_ascii_end()),
        contributors: parts,
    })
}

/// `1.2 MiB`, `870.4 KiB`, `312 B`.
pub fn human(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

impl Size {
    /// Its share of `limit`, in whole percent (rounded down).
    pub fn percent_of(&self, limit: u64) -> u64 {
        self.bytes * 100 / limit.max(1)
    }

    /// `manifest 700.1 KiB, files/blob.bin 310.0 KiB, values 1.2 KiB`.
    pub fn describe_contributors(&self) -> String {
        self.contributors
            .iter()
            .map(|(name, bytes)| format!("{name} {}", human(*bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Bytes that do not compress: a xorshift stream.
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn release(blob: usize, manifest: &str) -> Vec<u8> {
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        serde_json::to_vec(&json!({
            "name": "r", "namespace": "ns", "version": 1, "manifest": manifest,
            "config": {"a": 1},
            "hooks": [{"manifest": "kind: Pod\n"}],
            "chart": {
                "metadata": {"name": "c", "version": "0.1.0"},
                "values": {"replicaCount": 1},
                "templates": [{"name": "templates/cm.yaml", "data": b64(b"kind: ConfigMap\n")}],
                "files": [{"name": "files/blob.bin", "data": b64(&noise(blob))}],
            },
        }))
        .unwrap()
    }

    /// The size is Helm's encoding's, and the largest part is named first.
    #[test]
    fn measures_the_record_and_names_the_largest_parts() {
        let json = release(600 * 1024, "kind: ConfigMap\nmetadata: {name: x}\n");
        let size = measure(&json).unwrap();
        // Noise, base64-encoded in the JSON, gzipped back to about its own size, then base64:
        // about 4/3 of 600 KiB.
        assert!(
            (780 * 1024..840 * 1024).contains(&size.bytes),
            "{}",
            size.bytes
        );
        assert_eq!(size.contributors[0].0, "files/blob.bin");
        assert_eq!(size.contributors.len(), 3);
        assert!(
            size.describe_contributors().starts_with("files/blob.bin 8"),
            "{}",
            size.describe_contributors()
        );
        assert_eq!(
            size.percent_of(OBJECT_DATA_LIMIT),
            size.bytes * 100 / OBJECT_DATA_LIMIT
        );
        assert!(measure(b"[1").is_err());
    }

    #[test]
    fn limits_per_driver() {
        for d in ["", "secret", "secrets", "configmap", "configmaps"] {
            assert_eq!(limit_for(d), Some(1024 * 1024), "{d}");
        }
        assert_eq!(limit_for("sql"), None);
        assert_eq!(limit_for("memory"), None);
        assert_eq!(human(312), "312 B");
        assert_eq!(human(870 * 1024 + 410), "870.4 KiB");
        assert_eq!(human(1024 * 1024 * 6 / 5), "1.2 MiB");
    }
}

//! The values a release was made with, made inspectable without showing a secret: a digest
//! always, and on request (`output.helmRelease.valuesPreview: true`) a preview with every value
//! that may be secret masked. Flux's helm-controller declines to show values at all because
//! they carry secrets (fluxcd/helm-controller#497); a one-shot runner knows where each of its
//! values came from, so it can show the rest.
//!
//! Which values: the release's user-supplied values as Helm stored them (`config` of the
//! release, what `helm get values` prints: every `valuesFrom`, `valuesFromFile` and inline layer
//! coalesced by Helm). With the chart (its name and version are in the same outputs) they
//! determine the computed values, so equal digests of one chart version mean equal values.
//!
//! The digest is `sha256:<64 hex digits>` over the values' canonical JSON: object keys sorted at
//! every level, no whitespace, numbers as JSON writes them. Telling two digests apart says the
//! values differ, without saying how.
//!
//! The preview is the values with each masked leaf replaced by [`MASK`]: every value at a key
//! path that a `valuesFrom` Secret supplied (whether or not a later layer overrode it), every
//! value under a key whose name looks secret ([`looks_secret`]), and every string equal to a
//! secret the run holds (a chart repository password, a Secret's values). What is left is what
//! came from ConfigMaps, files and the manifest under ordinary names.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What a masked value reads as in the preview.
pub const MASK: &str = "(masked)";

/// `sha256:<hex>` of `values`' canonical JSON (see the module).
pub fn digest(values: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(canonical(values).as_bytes());
    let sum = hasher.finalize();
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `value` as JSON with object keys sorted at every level (serde_json keeps insertion order
/// under its `preserve_order` feature, which a dependency may turn on).
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Whether a key's name suggests a secret: it contains, case-blind, `password`, `passwd`,
/// `secret`, `token`, `credential`, `private`, `apikey`, `api_key`, `auth`, `cert`,
/// `signature` or `dsn`, or ends in `key`/`keys` (`accessKey`, `sshKeys`) or `pass`.
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    const PARTS: [&str; 12] = [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "private",
        "apikey",
        "api_key",
        "auth",
        "cert",
        "signature",
        "dsn",
    ];
    PARTS.iter().any(|p| k.contains(p))
        || k.ends_with("key")
        || k.ends_with("keys")
        || k.ends_with("pass")
}

/// The key paths of every leaf of `values` (a path: the keys from the top, array positions as
/// their decimal index), for [`preview`]'s `from_secrets`.
pub fn leaf_paths(values: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    collect_paths(values, &mut Vec::new(), &mut out);
    out
}

fn collect_paths(value: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                path.push(k.clone());
                collect_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                collect_paths(v, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// `values` with every leaf masked that may be secret (see the module): leaves at a path in
/// `from_secrets` or under one (a Secret that supplied a whole map or list), under a key that
/// [`looks_secret`], or whose string is one of `secrets`.
pub fn preview(values: &Value, from_secrets: &BTreeSet<Vec<String>>, secrets: &[String]) -> Value {
    mask(values, &mut Vec::new(), false, from_secrets, secrets)
}

fn mask(
    value: &Value,
    path: &mut Vec<String>,
    masked: bool,
    from_secrets: &BTreeSet<Vec<String>>,
    secrets: &[String],
) -> Value {
    let masked = masked || from_secrets.contains(path.as_slice());
    match value {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                path.push(k.clone());
                let under = masked || looks_secret(k);
                out.insert(k.clone(), mask(v, path, under, from_secrets, secrets));
                path.pop();
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    path.push(i.to_string());
                    let m = mask(v, path, masked, from_secrets, secrets);
                    path.pop();
                    m
                })
                .collect(),
        ),
        Value::Null => Value::Null,
        _ if masked => Value::String(MASK.into()),
        Value::String(s)
            if secrets
                .iter()
                .any(|x| !x.is_empty() && s.contains(x.as_str()))
                || has_userinfo(s) =>
        {
            Value::String(MASK.into())
        }
        other => other.clone(),
    }
}

/// Whether `s` holds a URL with credentials in it (`scheme://user:password@host`).
fn has_userinfo(s: &str) -> bool {
    s.split("://").skip(1).any(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority.contains('@')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Key order does not change the digest; any value does.
    #[test]
    fn digests_are_canonical() {
        let a = json!({"b": {"y": 1, "x": [1, "two"]}, "a": null});
        let b: Value = serde_json::from_str(r#"{"a":null,"b":{"x":[1,"two"],"y":1}}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        assert!(digest(&a).starts_with("sha256:") && digest(&a).len() == 7 + 64);
        assert_ne!(
            digest(&a),
            digest(&json!({"b": {"y": 2, "x": [1, "two"]}, "a": null}))
        );
        assert_eq!(
            digest(&json!({})),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn secret_looking_keys() {
        for k in [
            "password",
            "dbPassword",
            "PASSWD",
            "clientSecret",
            "token",
            "apiKey",
            "api_key",
            "accessKey",
            "sshKeys",
            "privateKeyPem",
            "tlsCert",
            "authHeader",
            "sentryDsn",
            "userPass",
            "credentials",
        ] {
            assert!(looks_secret(k), "{k}");
        }
        for k in [
            "replicaCount",
            "image",
            "host",
            "keyspace",
            "monkeyBusiness",
            "port",
            "tag",
        ] {
            assert!(!looks_secret(k), "{k}");
        }
    }

    /// Values from a Secret (by path, a whole map too), under secret-looking keys and equal to a
    /// held secret are masked; the rest is shown as it is.
    #[test]
    fn the_preview_masks_what_may_be_secret() {
        let values = json!({
            "replicaCount": 2,
            "image": {"repository": "nginx", "tag": "1.27"},
            "db": {"host": "db.local", "password": "hunter2", "user": "app"},
            "fromSecret": {"a": "s1", "nested": {"b": "s2"}},
            "env": [{"name": "MODE", "value": "prod"}, {"name": "URL", "value": "https://u:pw-123@x"}],
            "links": {"url": "postgres://app:hunter3@db/x", "site": "https://example.com/a@b"},
            "empty": null,
        });
        let from_secret =
            json!({"fromSecret": {"a": "s1", "nested": {"b": "s2"}}, "db": {"user": "app"}});
        let mut paths = leaf_paths(&from_secret);
        paths.insert(vec!["fromSecret".into()]);
        let shown = preview(&values, &paths, &["pw-123".into()]);
        assert_eq!(
            shown,
            json!({
                "replicaCount": 2,
                "image": {"repository": "nginx", "tag": "1.27"},
                "db": {"host": "db.local", "password": MASK, "user": MASK},
                "fromSecret": {"a": MASK, "nested": {"b": MASK}},
                "env": [{"name": "MODE", "value": "prod"}, {"name": "URL", "value": MASK}],
                "links": {"url": MASK, "site": "https://example.com/a@b"},
                "empty": null,
            })
        );
        let text = shown.to_string();
        for secret in ["hunter2", "hunter3", "s1", "s2", "pw-123"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

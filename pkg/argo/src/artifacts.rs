//! Where a finished Workflow's output artifacts are: the references Argo recorded in its nodes'
//! `outputs.artifacts`, completed with the artifact repository the Workflow used.
//!
//! Argo records an artifact saved to the repository by its key alone (a "key-only artifact",
//! e.g. `s3: {key: wf/wf-123/hello-art.tgz}`); the bucket and endpoint are the repository's,
//! which Argo resolves once per Workflow into `status.artifactRepositoryRef.artifactRepository`
//! (Argo's `ArtifactRepositoryRefStatus`, `pkg/apis/workflow/v1alpha1/workflow_types.go`, the same
//! in v3.7 and v4). A reader needs both, so [`locate`] puts them together. Only the fields that
//! say where the object is are kept ([`LOCATION_FIELDS`]); references to the repository's
//! Secrets, its key format and its options are left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::nodes::NodeStatus;

/// Argo's artifact location kinds that can hold an output artifact (`ArtifactLocation`).
pub const LOCATION_KINDS: [&str; 8] = [
    "s3",
    "gcs",
    "oss",
    "azure",
    "hdfs",
    "artifactory",
    "http",
    "plugin",
];

/// The fields of a location that say where the object is, in any kind: `bucket`, `endpoint`,
/// `region` and `key` (S3, GCS, OSS), `container`, `blob` (Azure), `url` (Artifactory, HTTP),
/// `addresses`, `path` (HDFS), `name` (the plugin's).
pub const LOCATION_FIELDS: [&str; 10] = [
    "bucket",
    "endpoint",
    "region",
    "key",
    "container",
    "blob",
    "url",
    "addresses",
    "path",
    "name",
];

/// At most this many output artifacts are listed (the status ConfigMap must stay small); the
/// count of the others is in [`Artifacts::omitted`].
pub const MAX_ARTIFACTS: usize = 50;

/// One output artifact of one node: `{node: generate-artifact, name: hello-art, s3: {bucket,
/// endpoint, key}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputArtifact {
    /// The node's `displayName` (e.g. `generate-artifact`, `consume(0)`).
    pub node: String,
    /// The artifact's name in its template's `outputs.artifacts`.
    pub name: String,
    /// Its location, one kind (`s3: {...}`), as [`locate`] completes it.
    #[serde(flatten)]
    pub location: Map<String, Value>,
}

/// The output artifacts of a Workflow's pods: `items` in the order the pods started, at most
/// [`MAX_ARTIFACTS`], and how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifacts {
    /// The artifacts listed.
    pub items: Vec<OutputArtifact>,
    /// How many were left out past [`MAX_ARTIFACTS`] (0 when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Artifacts {
    /// Whether no artifact was found (the summary then leaves `artifacts` out).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.omitted == 0
    }
}

/// The repository Argo resolved for the Workflow: `status.artifactRepositoryRef.artifactRepository`
/// (`{s3: {bucket, endpoint, ...}}`), `None` when the status has none (no repository configured,
/// or a Workflow that never started a pod).
pub fn repository(artifact_repository_ref: Option<&Value>) -> Option<&Value> {
    artifact_repository_ref?
        .get("artifactRepository")
        .filter(|r| r.is_object())
}

/// Artifact `artifact` (Argo's `Artifact`: `{name, path, s3: {key}, ...}`) as a reader needs it:
/// `{name, <kind>: {location}}` where the kind's location is the one Argo recorded, with the
/// repository's fields of the same kind (`bucket`, `endpoint`, ...) where the artifact has none,
/// keeping only [`LOCATION_FIELDS`]. `None` when the artifact has no location (an optional
/// output that was not produced).
pub fn locate(artifact: &Value, repository: Option<&Value>) -> Option<Map<String, Value>> {
    let (kind, recorded) = LOCATION_KINDS
        .iter()
        .find_map(|k| artifact.get(*k).filter(|v| v.is_object()).map(|v| (*k, v)))?;
    let mut location = Map::new();
    let from_repository = repository.and_then(|r| r.get(kind));
    for field in LOCATION_FIELDS {
        if let Some(v) = recorded
            .get(field)
            .or_else(|| from_repository.and_then(|r| r.get(field)))
            .filter(|v| !v.is_null())
        {
            location.insert(field.into(), v.clone());
        }
    }
    let mut out = Map::new();
    out.insert(kind.into(), Value::Object(location));
    Some(out)
}

/// Every output artifact the Workflow's pods saved (nodes of type `Pod`, in the order they
/// started, then by name), located with [`locate`] against `repository`.
pub fn output_artifacts(
    nodes: &BTreeMap<String, NodeStatus>,
    repository: Option<&Value>,
) -> Artifacts {
    let mut pods: Vec<&NodeStatus> = nodes.values().filter(|n| n.node_type == "Pod").collect();
    pods.sort_by(|a, b| (&a.started_at, &a.name).cmp(&(&b.started_at, &b.name)));
    let mut all = Vec::new();
    for node in pods {
        let Some(arts) = node
            .outputs
            .as_ref()
            .and_then(|o| o.get("artifacts"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for a in arts {
            let (Some(name), Some(location)) =
                (a.get("name").and_then(Value::as_str), locate(a, repository))
            else {
                continue;
            };
            all.push(OutputArtifact {
                node: node.display_name.clone(),
                name: name.to_string(),
                location,
            });
        }
    }
    let omitted = all.len().saturating_sub(MAX_ARTIFACTS);
    all.truncate(MAX_ARTIFACTS);
    Artifacts {
        items: all,
        omitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn repo() -> Value {
        json!({"s3": {
            "bucket": "argo-artifacts", "endpoint": "10.88.0.1:9000", "region": "us-east-1",
            "insecure": true,
            "accessKeySecret": {"name": "s3", "key": "accessKey"},
            "secretKeySecret": {"name": "s3", "key": "secretKey"},
            "keyFormat": "{{workflow.name}}/{{pod.name}}"
        }})
    }

    #[test]
    fn a_key_only_artifact_gets_the_repositorys_bucket_and_endpoint_and_no_secret_reference() {
        let a = json!({"name": "hello-art", "path": "/tmp/x", "s3": {"key": "wf/p/hello-art.tgz"}});
        let got = locate(&a, Some(&repo())).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"s3": {"bucket": "argo-artifacts", "endpoint": "10.88.0.1:9000",
                          "region": "us-east-1", "key": "wf/p/hello-art.tgz"}})
        );
    }

    #[test]
    fn what_the_artifact_names_itself_wins_over_the_repository() {
        let a = json!({"name": "a", "s3": {"bucket": "mine", "key": "k"}});
        let got = locate(&a, Some(&repo())).unwrap();
        assert_eq!(got["s3"]["bucket"], "mine");
        assert_eq!(got["s3"]["endpoint"], "10.88.0.1:9000");
    }

    #[test]
    fn another_kind_takes_nothing_from_an_s3_repository() {
        let a = json!({"name": "a", "gcs": {"bucket": "b", "key": "k"}});
        assert_eq!(
            Value::Object(locate(&a, Some(&repo())).unwrap()),
            json!({"gcs": {"bucket": "b", "key": "k"}})
        );
    }

    #[test]
    fn an_artifact_without_a_location_is_none() {
        assert_eq!(
            locate(
                &json!({"name": "a", "path": "/x", "optional": true}),
                Some(&repo())
            ),
            None
        );
        assert_eq!(repository(Some(&json!({"default": true}))), None);
        assert_eq!(repository(None), None);
    }

    #[test]
    fn pods_artifacts_in_start_order_bounded() {
        let node = |id: &str, started: &str, arts: Value| NodeStatus {
            id: id.into(),
            name: format!("wf.{id}"),
            display_name: id.into(),
            node_type: "Pod".into(),
            started_at: Some(started.into()),
            outputs: Some(json!({"artifacts": arts})),
            ..Default::default()
        };
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "b".into(),
            node(
                "b",
                "2026-01-01T00:00:02Z",
                json!([{"name": "x", "s3": {"key": "kb"}}]),
            ),
        );
        nodes.insert(
            "a".into(),
            node(
                "a",
                "2026-01-01T00:00:01Z",
                json!([
            {"name": "y", "s3": {"key": "ka"}}, {"name": "main-logs", "s3": {"key": "ka-logs"}}]),
            ),
        );
        let mut steps = node(
            "s",
            "2026-01-01T00:00:00Z",
            json!([{"name": "y", "s3": {"key": "ka"}}]),
        );
        steps.node_type = "Steps".into();
        nodes.insert("s".into(), steps);
        let got = output_artifacts(&nodes, Some(&repo()));
        let names: Vec<_> = got
            .items
            .iter()
            .map(|a| format!("{}/{}", a.node, a.name))
            .collect();
        assert_eq!(names, ["a/y", "a/main-logs", "b/x"]);
        assert_eq!(got.omitted, 0);
        assert_eq!(got.items[2].location["s3"]["bucket"], "argo-artifacts");

        let many: Vec<Value> = (0..MAX_ARTIFACTS + 3)
            .map(|i| json!({"name": format!("a{i}"), "s3": {"key": format!("k{i}")}}))
            .collect();
        let mut nodes = BTreeMap::new();
        nodes.insert("m".into(), node("m", "2026-01-01T00:00:00Z", json!(many)));
        let got = output_artifacts(&nodes, None);
        assert_eq!((got.items.len(), got.omitted), (MAX_ARTIFACTS, 3));
        assert_eq!(got.items[0].location["s3"], json!({"key": "k0"}));
    }
}

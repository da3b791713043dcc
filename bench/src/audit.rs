//! What the API server's audit log says about a run: the requests the tool under test made
//! (as ServiceAccount `runner` of its [`TestEnv`]'s namespace), counted, and where a Helm
//! step's time went.

use std::collections::BTreeMap;

use action_runner_tests::test_env::TestEnv;
use serde_json::json;

/// Now, in the audit log's timestamp format.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// Where a Helm step's time went, from the audit log: the requests a Helm process (user
/// agent `Helm/...`) made as ServiceAccount `runner` of `env`'s namespace between `since` (taken just
/// before the tool was spawned) and `until` (just after its exit was seen), both audit
/// timestamps. In ms: `firstListMs`, how long the API server took over Helm's first `LIST`
/// of Secrets (its read of the release's records, Helm's first real request);
/// `beforeHelmMs`, spawn to Helm's first request (for the bare CLI, Helm's own start; for
/// ours, the runner's work before helm too); `afterHelmMs`, Helm's last answer to the exit
/// seen (Helm's exit, and ours' work after helm); `firstRequestMs`, spawn to the first
/// request of any kind (ours: the runner's own start). Empty without requests.
pub fn helm_timeline(
    env: &TestEnv,
    since: &str,
    until: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let at = |ev: &serde_json::Value, key: &str| {
        ev[key]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    let ms = |d: jiff::SignedDuration| json!((d.as_secs_f64() * 10_000.0).round() / 10.0);
    let all = runner_requests(env, since, Some(until));
    let first_any = all
        .first()
        .and_then(|ev| at(ev, "requestReceivedTimestamp"));
    let helm: Vec<&serde_json::Value> = all
        .iter()
        .filter(|ev| {
            ev["userAgent"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Helm/")
        })
        .collect();
    let mut out = serde_json::Map::new();
    let (Ok(since), Ok(until)) = (
        since.parse::<jiff::Timestamp>(),
        until.parse::<jiff::Timestamp>(),
    ) else {
        return out;
    };
    let first_list = helm
        .iter()
        .find(|ev| ev["verb"] == "list" && ev["objectRef"]["resource"] == "secrets");
    if let Some((received, done)) = first_list.and_then(|ev| {
        Some((
            at(ev, "requestReceivedTimestamp")?,
            at(ev, "stageTimestamp")?,
        ))
    }) {
        out.insert("firstListMs".into(), ms(done.duration_since(received)));
    }
    if let Some(first) = first_any {
        out.insert("firstRequestMs".into(), ms(first.duration_since(since)));
    }
    if let Some(first) = helm
        .first()
        .and_then(|ev| at(ev, "requestReceivedTimestamp"))
    {
        out.insert("beforeHelmMs".into(), ms(first.duration_since(since)));
    }
    if let Some(last) = helm.iter().filter_map(|ev| at(ev, "stageTimestamp")).max() {
        out.insert("afterHelmMs".into(), ms(until.duration_since(last)));
    }
    out
}

/// The answered requests ServiceAccount `runner` of `env`'s namespace made, received from `since` to
/// `until` (none: to now), oldest first: their audit events.
fn runner_requests(env: &TestEnv, since: &str, until: Option<&str>) -> Vec<serde_json::Value> {
    let user = format!("system:serviceaccount:{}:runner", env.ns);
    let mut events: Vec<serde_json::Value> = env
        .control_plane()
        .audit_events(&user)
        .into_iter()
        .filter(|ev| {
            // RFC 3339 UTC timestamps with fixed precision compare as strings.
            let received = ev["requestReceivedTimestamp"].as_str().unwrap_or_default();
            ev["stage"] == "ResponseComplete"
                && received >= since
                && until.is_none_or(|until| received <= until)
        })
        .collect();
    events.sort_by(|a, b| {
        a["requestReceivedTimestamp"]
            .as_str()
            .cmp(&b["requestReceivedTimestamp"].as_str())
    });
    events
}

/// Requests made by ServiceAccount `runner` of `env`'s namespace since `since`, by "verb resource".
pub fn counts(env: &TestEnv, since: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for ev in runner_requests(env, since, None) {
        let resource = ev["objectRef"]["resource"].as_str().unwrap_or("(none)");
        let verb = ev["verb"].as_str().unwrap_or("?");
        *counts.entry(format!("{verb} {resource}")).or_insert(0) += 1;
    }
    counts
}

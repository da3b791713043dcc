//! The markdown report.

use serde_json::Value;

use crate::measure::ratio;

/// A table: one row per figure, one column per tool (the first is ours), then `ours / peer`
/// for each peer.
fn table(results: &serde_json::Map<String, Value>, ours: &str, rows: &[(&str, &str)]) -> String {
    let mut s = String::from("| figure |");
    let our = results.get(ours).cloned().unwrap_or_default();
    let peers: Vec<&Value> = results
        .iter()
        .filter(|(k, _)| *k != ours)
        .map(|(_, v)| v)
        .collect();
    let columns: Vec<&Value> = std::iter::once(&our).chain(peers.iter().copied()).collect();
    for v in &columns {
        s.push_str(&format!(" {} |", v["label"].as_str().unwrap_or("")));
    }
    for v in &peers {
        s.push_str(&format!(" ours / {} |", v["label"].as_str().unwrap_or("")));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(columns.len() + peers.len()));
    s.push('\n');
    for (label, key) in rows {
        s.push_str(&format!("| {label} |"));
        for v in &columns {
            match &v[*key] {
                Value::Null => s.push_str(" n/a |"),
                x => s.push_str(&format!(" {x} |")),
            }
        }
        for v in &peers {
            s.push_str(&format!(" {} |", ratio(&our[*key], &v[*key])));
        }
        s.push('\n');
    }
    s
}

fn api_requests(results: &serde_json::Map<String, Value>, what: &str) -> String {
    let mut s = format!("\nAPI requests per {what} (verb resource: count):\n\n");
    for v in results.values() {
        s.push_str(&format!(
            "- {}: {}\n",
            v["label"].as_str().unwrap_or(""),
            v["apiRequests"]
        ));
    }
    s
}

/// The whole report as markdown.
pub fn markdown(r: &Value) -> String {
    let m = &r["machine"];
    let mut s = format!(
        "Machine: {} cores, {} GiB, {}. Repetitions: {} (medians).\n",
        m["cores"],
        m["memoryGiB"],
        m["cpu"].as_str().unwrap_or(""),
        r["repetitions"]
    );
    let argo = r["argo"].as_object().cloned().unwrap_or_default();
    let helm = r["helm"].as_object().cloned().unwrap_or_default();
    if !argo.is_empty() {
        argo_section(&mut s, &argo);
    }
    if !helm.is_empty() {
        helm_section(&mut s, &helm);
    }
    images_section(&mut s, r);
    s
}

fn argo_section(s: &mut String, argo: &serde_json::Map<String, Value>) {
    s.push_str("\n### Argo: submit a Workflow and wait for it\n\n");
    s.push_str(&table(
        argo,
        "argo-runner",
        &[
            ("binary size (bytes)", "binaryBytes"),
            ("cold start to Workflow seen (ms)", "coldStartMs"),
            ("completion notice to exit (ms)", "completionNoticeMs"),
            (
                "of which: the driver's status PATCH of the Workflow (ms)",
                "statusPatchMs",
            ),
            (
                "of which: from the change stored to exit (ms)",
                "noticeAfterStoredMs",
            ),
            ("peak RSS (KiB)", "maxRssKiB"),
            ("CPU time per run (ms)", "cpuMs"),
        ],
    ));
    s.push_str(&api_requests(argo, "run"));
    s.push_str(
        "\nScale (N at once; wall ms, process CPU ms, API server CPU ms, failures):\n\n| N |",
    );
    for v in argo.values() {
        s.push_str(&format!(" {} |", v["label"].as_str().unwrap_or("")));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(argo.len()));
    s.push('\n');
    let ours = argo.get("argo-runner").cloned().unwrap_or_default();
    for (i, row) in ours["scale"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        s.push_str(&format!("| {} |", row["n"]));
        for v in argo.values() {
            let c = &v["scale"][i];
            if c.get("skipped").is_some() {
                s.push_str(" skipped (memory) |");
            } else {
                s.push_str(&format!(
                    " {} / {} / {} / {} |",
                    c["wallMs"], c["processCpuMs"], c["apiServerCpuMs"], c["failures"]
                ));
            }
        }
        s.push('\n');
    }
}

fn helm_section(s: &mut String, helm: &serde_json::Map<String, Value>) {
    s.push_str("\n### Helm: install, then upgrade, of the same chart\n\n");
    s.push_str(&table(
        helm,
        "helm-runner",
        &[
            ("binaries shipped (bytes)", "shippedBytes"),
            ("install --wait: wall time (ms)", "installMs"),
            (
                "install --wait: peak RSS of the process tree (KiB)",
                "installRssKiB",
            ),
            ("install --wait: CPU time (ms)", "installCpuMs"),
            ("upgrade --wait: wall time (ms)", "upgradeMs"),
            (
                "upgrade --wait: peak RSS of the process tree (KiB)",
                "upgradeRssKiB",
            ),
            ("upgrade --wait: CPU time (ms)", "upgradeCpuMs"),
            ("install, no wait: wall time (ms)", "installNoWaitMs"),
            ("install, no wait: CPU time (ms)", "installNoWaitCpuMs"),
            ("upgrade, no wait: wall time (ms)", "upgradeNoWaitMs"),
            ("upgrade, no wait: CPU time (ms)", "upgradeNoWaitCpuMs"),
            (
                "install, no wait: helm's first LIST of its records (ms)",
                "installNoWaitFirstListMs",
            ),
            (
                "upgrade, no wait: helm's first LIST of its records (ms)",
                "upgradeNoWaitFirstListMs",
            ),
            (
                "install, no wait: spawn to helm's first request (ms)",
                "installNoWaitBeforeHelmMs",
            ),
            (
                "install, no wait: helm's last answer to exit (ms)",
                "installNoWaitAfterHelmMs",
            ),
            (
                "upgrade, no wait: spawn to helm's first request (ms)",
                "upgradeNoWaitBeforeHelmMs",
            ),
            (
                "upgrade, no wait: helm's last answer to exit (ms)",
                "upgradeNoWaitAfterHelmMs",
            ),
        ],
    ));
    s.push_str(&api_requests(helm, "run (every install and upgrade)"));
}

fn images_section(s: &mut String, r: &Value) {
    s.push_str("\n### Images\n\n");
    match r["images"].as_array() {
        Some(lines) if !lines.is_empty() => {
            s.push_str("From `hack/build-images.sh` (`target/images/sizes.txt`):\n\n");
            for l in lines {
                s.push_str(&format!("- {}\n", l.as_str().unwrap_or("")));
            }
        }
        _ => s.push_str("Not built in this run (`hack/bench.sh --images` builds them first).\n"),
    }
    s.push_str(&format!(
        "\n{}\n",
        r["peers"]["images"].as_str().unwrap_or("")
    ));
    s.push_str(&format!(
        "\nCapact: {}\n",
        r["peers"]["capact"].as_str().unwrap_or("")
    ));
}

/// The `--cluster` report as markdown: one row per side and N.
pub fn cluster_markdown(r: &Value) -> String {
    let m = &r["machine"];
    let mut s = format!(
        "Machine: {} cores, {} GiB, {}. One run per row, on the one-node cluster of \
         hack/cluster.sh, Argo {}.\n\n",
        m["cores"],
        m["memoryGiB"],
        m["cpu"].as_str().unwrap_or(""),
        r["argoVersion"].as_str().unwrap_or("?"),
    );
    s.push_str(
        "| Jobs at once | tool | all done (s) | failures | node CPU (s) | API server CPU (s) | \
         node memory peak (MiB) | pod start (s) | to Workflow (s) | controller (s) | \
         finishedAt to exit (s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let sides = r["cluster"].as_object().cloned().unwrap_or_default();
    let mut ns: Vec<String> = sides
        .values()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys().cloned())
        .collect();
    ns.sort_by_key(|n| n.parse::<usize>().unwrap_or(0));
    ns.dedup();
    for n in &ns {
        for (tool, by_n) in &sides {
            let Some(x) = by_n.get(n) else { continue };
            let p = &x["medianSeconds"];
            s.push_str(&format!(
                "| {n} | {tool} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                x["wallSeconds"],
                x["failures"],
                x["nodeCpuSeconds"],
                x["apiServerCpuSeconds"],
                x["nodeMemoryPeakAboveIdleMiB"],
                p["podStart"],
                p["podStartToWorkflowCreated"],
                p["controller"],
                p["finishedToJobExit"],
            ));
        }
    }
    s
}

/// The markdown table of a `--kwok` report: one row per tool and N.
pub fn kwok_markdown(r: &Value) -> String {
    let m = &r["machine"];
    let k = &r["kwok"];
    let mut s = format!(
        "Machine: {} cores, {} GiB, {}. One run per row: N actions at once as processes with \
         their own ServiceAccount tokens, against the control plane of hack/cluster.sh \
         (Kubernetes {}) and Argo {}'s workflow-controller, pods on {} KWOK nodes.\n\n",
        m["cores"],
        m["memoryGiB"],
        m["cpu"].as_str().unwrap_or(""),
        r["kubernetesVersion"].as_str().unwrap_or("?"),
        r["argoVersion"].as_str().unwrap_or("?"),
        k["nodes"]["count"],
    );
    s.push_str(
        "| tool | N | all done (s) | lost | wrong | requests/action | watch requests/action | \
         watches open (peak) | API server CPU (ms/action) | API server RSS peak (MiB) | \
         controller CPU (s) | process RSS median / max (MiB) | process private memory median / max \
         (MiB) | process CPU median (ms) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mib = |v: &Value| format!("{:.1}", v.as_f64().unwrap_or(0.0) / 1024.0);
    for tool in ["argo-runner", "argo-cli", "helm-runner"] {
        let Some(by_n) = k[tool].as_object() else {
            continue;
        };
        let mut rows: Vec<(&String, &Value)> = by_n.iter().collect();
        rows.sort_by_key(|(n, _)| n.parse::<usize>().unwrap_or(0));
        for (n, x) in rows {
            s.push_str(&format!(
                "| {tool} | {n} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} / {} | {} / {} | {} |\n",
                x["wallSeconds"],
                x["lost"],
                x["wrong"],
                x["requestsPerAction"],
                x["watchRequestsPerAction"],
                x["watchesOpenPeak"],
                x["apiServerCpuMsPerAction"],
                x["apiServer"]["rssPeakMiB"],
                x["workflowController"]["cpuMs"].as_f64().unwrap_or(0.0) / 1000.0,
                mib(&x["processRssKiB"]["median"]),
                mib(&x["processRssKiB"]["max"]),
                mib(&x["processUssKiB"]["median"]),
                mib(&x["processUssKiB"]["max"]),
                x["processCpuMs"]["median"],
            ));
        }
    }
    s
}

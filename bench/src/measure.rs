//! Running a process under measurement, and the small statistics the benchmark reports.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

/// What `wait4` and the sampler tell of a finished process.
#[derive(Debug, Clone)]
pub struct Exited {
    /// Exit code, or -1 when killed by a signal.
    pub code: i32,
    /// When `wait4` returned.
    pub at: Instant,
    /// Peak resident memory of the process tree (KiB): the largest sum, over the samples, of
    /// `VmHWM` of every live process of the tree (the process and its descendants).
    pub max_rss_kib: u64,
    /// Peak unique memory of the process tree (KiB): the largest sum, over the samples, of each
    /// live process's private pages (`Private_Clean` + `Private_Dirty` of
    /// `/proc/<pid>/smaps_rollup`), what the process alone costs when many share its binary's
    /// pages (RSS counts those shared pages in every process). 0 without sampling.
    pub max_uss_kib: u64,
    /// User + system CPU of the process and of the descendants it waited for (`wait4`).
    pub cpu: Duration,
    /// The last lines of its standard error.
    pub stderr_tail: String,
}

/// The process `pid` and its live descendants, from `/proc/<pid>/task/*/children`.
fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

/// Private pages of `pid` now (KiB): `Private_Clean` + `Private_Dirty` of its
/// `/proc/<pid>/smaps_rollup`; `None` once it has exited.
fn uss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(field("Private_Clean:")? + field("Private_Dirty:")?)
}

/// The memory line `key` (`"VmHWM:"`, `"VmRSS:"`) of `/proc/<pid>/status` (KiB), `None` once
/// it has exited (a zombie has no memory lines).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// `VmHWM` of `pid` (KiB): its peak RSS since `exec`.
fn hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Spawns `cmd` and returns its pid and a task resolving when it exits, reaped with `wait4`
/// (which gives CPU time including reaped descendants') once its pidfd says it has exited. No
/// thread per process: a thousand processes at once are a thousand small tasks.
///
/// With `rss_every`, peak RSS is sampled at that interval from `/proc` (`VmHWM`, each program's
/// own high-water mark since `exec`, summed over the process and its live descendants; the last
/// sample before the exit holds the peak unless memory grew in the final interval): `wait4`'s
/// `ru_maxrss` would count the RSS of this driver, which the child shares until `exec`, and
/// only the largest single process of a tree. Without it `max_rss_kib` is 0.
///
/// # Errors
/// When the process cannot be spawned or its pidfd opened (Linux 5.3 and later).
///
/// # Panics
/// Outside a tokio runtime.
pub fn spawn_measured(
    mut cmd: std::process::Command,
    rss_every: Option<Duration>,
) -> Result<(u32, tokio::task::JoinHandle<Exited>)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use tokio::io::AsyncReadExt;

    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("pidfd_open of the process just spawned: {e}");
    }
    // SAFETY: a descriptor just returned by pidfd_open, owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd is moved into the AsyncFd, so the descriptor stays open and the same
    // for the AsyncFd's whole life.
    let exited = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| anyhow::anyhow!("register the pidfd: {}", e.into_parts().1))?;
    let stderr = child
        .stderr
        .take()
        .map(tokio::process::ChildStderr::from_std)
        .transpose()?;
    // The std handle is dropped without waiting: the task below reaps the process.
    drop(child);
    let handle = tokio::spawn(async move {
        // Drain stderr so the process never blocks on a full pipe.
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_end(&mut sink).await;
            }
            let text = String::from_utf8_lossy(&sink).into_owned();
            // `KAR_BENCH_STDERR=DIR` keeps each run's whole stderr as DIR/<pid>.log, to see
            // where a run's time goes from its own log timestamps (with `RUST_LOG=debug`).
            if let Some(dir) = std::env::var_os("KAR_BENCH_STDERR") {
                let _ =
                    std::fs::write(std::path::Path::new(&dir).join(format!("{pid}.log")), &text);
            }
            let lines: Vec<&str> = text.lines().rev().take(3).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join("\n")
        });
        let (mut peak, mut peak_uss) = (0u64, 0u64);
        let mut tick = tokio::time::interval(rss_every.unwrap_or(Duration::from_secs(3600)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            tokio::select! {
                ready = exited.readable() => {
                    let Ok(mut guard) = ready else { break };
                    // SAFETY: pid is our own child, not yet reaped; both pointers are valid.
                    let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
                    if r == pid as i32 || r < 0 {
                        break;
                    }
                    guard.clear_ready();
                }
                _ = tick.tick(), if rss_every.is_some() => {
                    // Not reaped yet, so the pid is still this process's (a zombie has no
                    // memory lines and adds nothing).
                    let procs = tree(pid);
                    let sum: u64 = procs.iter().copied().filter_map(hwm_kib).sum();
                    peak = peak.max(sum);
                    let uss: u64 = procs.into_iter().filter_map(uss_kib).sum();
                    peak_uss = peak_uss.max(uss);
                }
            }
        }
        let at = Instant::now();
        let stderr_tail = drain.await.unwrap_or_default();
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Exited {
            code: if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            },
            at,
            max_rss_kib: peak,
            max_uss_kib: peak_uss,
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            stderr_tail,
        }
    });
    Ok((pid, handle))
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// User + system CPU of process `pid` from `/proc/<pid>/stat` (clock ticks of 10 ms).
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// The median (the upper one of an even count); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// The median of field `key` over `runs`.
pub fn median_of(runs: &[Value], key: &str) -> f64 {
    median(
        runs.iter()
            .map(|s| s[key].as_f64().unwrap_or(0.0))
            .collect(),
    )
}

/// `ours / peer`, if both are numbers and `peer` is not 0.
pub fn ratio_of(ours: &Value, peer: &Value) -> Option<f64> {
    match (ours.as_f64(), peer.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 100.0).round() / 100.0),
        _ => None,
    }
}

/// `ours / peer` with two decimals for a table cell, marked `(we lose)` above 1.05: every
/// figure of the benchmark is better lower. `n/a` when either is missing.
pub fn ratio(ours: &Value, peer: &Value) -> String {
    match ratio_of(ours, peer) {
        Some(r) if r > 1.05 => format!("{r:.2} (we lose)"),
        Some(r) => format!("{r:.2}"),
        None => "n/a".into(),
    }
}

/// Every ratio `ours / peer` of one comparison: `{peer key: {figure: ratio}}`, for each
/// numeric figure and, for the scale runs, `n<N>.<figure>`.
pub fn ratios(results: &serde_json::Map<String, Value>, ours: &str) -> Value {
    let our = results.get(ours).cloned().unwrap_or_default();
    let mut all = serde_json::Map::new();
    for (key, peer) in results.iter().filter(|(k, _)| *k != ours) {
        let mut r = serde_json::Map::new();
        for (figure, v) in our.as_object().into_iter().flatten() {
            if let Some(x) = ratio_of(v, &peer[figure]) {
                r.insert(figure.clone(), json!(x));
            }
        }
        let scale = |v: &Value| v["scale"].as_array().cloned().unwrap_or_default();
        for (a, b) in scale(&our).iter().zip(scale(peer).iter()) {
            for figure in ["wallMs", "processCpuMs", "apiServerCpuMs"] {
                if let Some(x) = ratio_of(&a[figure], &b[figure]) {
                    r.insert(format!("n{}.{figure}", a["n"]), json!(x));
                }
            }
        }
        all.insert(key.clone(), Value::Object(r));
    }
    Value::Object(all)
}

/// Cores, memory (GiB) and CPU model of this machine.
pub fn machine() -> Value {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kib = meminfo_kib("MemTotal:");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    json!({"cores": cores, "memoryGiB": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0, "cpu": cpu})
}

/// A `/proc/meminfo` line's value (KiB), 0 if absent.
fn meminfo_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `MemAvailable` (KiB).
pub fn mem_available_kib() -> u64 {
    meminfo_kib("MemAvailable:")
}

/// A file's size in bytes.
pub fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

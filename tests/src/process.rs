//! Processes: the runner binaries as a test spawns them ([`RunnerCommand`]), and helpers to tie
//! a child's life to the test process's.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Result;

/// Spawns `cmd` so that it dies with this process: `PR_SET_PDEATHSIG` fires when the thread
/// that forked it exits, so it is forked from a thread that lives as long as the process.
///
/// # Errors
/// When the process cannot be started.
pub fn spawn_tied_to_process(mut cmd: Command) -> Result<Child> {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.spawn());
        loop {
            std::thread::park();
        }
    });
    Ok(rx.recv()??)
}

/// Runs `f` when the test process exits normally (the test harness returns from `main` or calls
/// `exit`, which runs the C library's `atexit` handlers), last registered first. For what lives
/// in a `static` for the life of the process, which Rust never drops: the shared control plane,
/// the served chart repository. Not run when the process is killed by a signal.
pub fn on_exit(f: impl FnOnce() + Send + 'static) {
    type Hooks = std::sync::Mutex<Vec<Box<dyn FnOnce() + Send>>>;
    static HOOKS: std::sync::OnceLock<Hooks> = std::sync::OnceLock::new();
    extern "C" fn run_hooks() {
        if let Some(hooks) = HOOKS.get() {
            let hooks = std::mem::take(&mut *hooks.lock().unwrap_or_else(|e| e.into_inner()));
            for hook in hooks.into_iter().rev() {
                hook();
            }
        }
    }
    let mut first = false;
    let hooks = HOOKS.get_or_init(|| {
        first = true;
        Default::default()
    });
    hooks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(f));
    if first {
        // SAFETY: `run_hooks` is a plain function that touches only the static above.
        unsafe { libc::atexit(run_hooks) };
    }
}

/// Runs `fut` to completion on a fresh runtime in another thread (usable from sync code and
/// from inside a Tokio runtime alike).
pub fn block_on_thread<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    })
    .join()
    .expect("thread")
}

/// The lines a runner logged at ERROR level (its JSON log lines on standard error).
pub fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .map(String::from)
        .collect()
}

/// A runner process to spawn: the binary and its environment (which starts empty but for
/// `PATH` and `HOME`, so nothing from the caller's environment leaks in).
#[derive(Debug, Clone)]
pub struct RunnerCommand {
    /// The binary.
    pub bin: PathBuf,
    /// Its environment.
    pub env: BTreeMap<String, String>,
}

/// A finished runner process.
#[derive(Debug)]
pub struct RunnerOutput {
    /// Exit code (`-signal` if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the logs).
    pub stderr: String,
}

impl RunnerOutput {
    /// Fails when `text` (a secret, a file's content) is in the run's standard output or
    /// standard error.
    ///
    /// # Panics
    /// Naming the stream that shows it.
    pub fn assert_not_shown(&self, text: &str) {
        assert!(
            !self.stdout.contains(text),
            "stdout shows it: {}",
            self.stdout
        );
        assert!(
            !self.stderr.contains(text),
            "stderr shows it: {}",
            self.stderr
        );
    }
}

impl RunnerCommand {
    /// `bin` with the common `RUNNER_*` variables for context `name` in `namespace`, reading the
    /// manifest at `manifest`, and `KUBECONFIG` set to `kubeconfig`.
    pub fn new(
        bin: PathBuf,
        kubeconfig: &Path,
        namespace: &str,
        name: &str,
        manifest: &Path,
    ) -> Self {
        let mut env = BTreeMap::new();
        for k in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(k) {
                env.insert(k.to_string(), v);
            }
        }
        env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
        env.insert(
            "RUNNER_INPUT_MANIFEST_PATH".into(),
            manifest.display().to_string(),
        );
        env.insert("RUNNER_CONTEXT_NAME".into(), name.into());
        env.insert("RUNNER_CONTEXT_PLATFORM_NAMESPACE".into(), namespace.into());
        RunnerCommand { bin, env }
    }

    /// Sets (or, with `None`, removes) a variable.
    pub fn var(mut self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.env.insert(k.into(), v.into()),
            None => self.env.remove(k),
        };
        self
    }

    /// Spawns the process with piped output.
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub fn spawn(&self) -> Result<tokio::process::Child> {
        Ok(tokio::process::Command::new(&self.bin)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?)
    }

    /// Runs the process to completion (at most 120 s).
    ///
    /// # Errors
    /// When it cannot be spawned or runs too long.
    pub async fn run(&self) -> Result<RunnerOutput> {
        let child = self.spawn()?;
        collect(child).await
    }
}

/// Waits (at most 120 s) for `child` and collects its output.
///
/// # Errors
/// When it runs too long: the error then holds what it wrote to stderr so far (it is killed),
/// so a run that hangs says where it was waiting.
pub async fn collect(mut child: tokio::process::Child) -> Result<RunnerOutput> {
    use std::os::unix::process::ExitStatusExt;
    use tokio::io::AsyncReadExt;
    fn drain<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
        r: Option<R>,
    ) -> (
        std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        tokio::task::JoinHandle<()>,
    ) {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let task = tokio::spawn(async move {
            let Some(mut r) = r else { return };
            let mut chunk = [0u8; 8192];
            while let Ok(n) = r.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        (buf, task)
    }
    let (stdout, out_task) = drain(child.stdout.take());
    let (stderr, err_task) = drain(child.stderr.take());
    let text = |b: &std::sync::Arc<std::sync::Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&b.lock().unwrap()).into_owned()
    };
    let status = match tokio::time::timeout(Duration::from_secs(120), child.wait()).await {
        Ok(status) => status?,
        Err(elapsed) => {
            let _ = child.kill().await;
            return Err(anyhow::Error::new(elapsed).context(format!(
                "runner did not exit within 120 s; its stderr until then:\n{}",
                text(&stderr)
            )));
        }
    };
    let _ = tokio::join!(out_task, err_task);
    Ok(RunnerOutput {
        code: status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0)),
        stdout: text(&stdout),
        stderr: text(&stderr),
    })
}

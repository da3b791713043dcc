//! Logging setup: JSON lines by default, human-readable in dev mode; `RUST_LOG` honoured.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber, writing to standard error.
///
/// - `dev_mode == false`: one JSON object per line (`timestamp`, `level`, `target`, fields),
///   default level `info`.
/// - `dev_mode == true` (`RUNNER_LOGGER_DEV_MODE`): human-readable lines, default level `debug`.
///
/// `RUST_LOG` (an [`EnvFilter`] directive, e.g. `info,kube=debug`) overrides the default level.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(dev_mode: bool) {
    let default = if dev_mode { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if dev_mode {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
}

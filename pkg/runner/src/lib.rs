//! Framework for Kubernetes action runners.
//!
//! A runner binary builds a [`Manager`] from an [`ActionRunner`] and a [`StatusReporter`] and
//! runs it. The Manager reads the `RUNNER_*` environment variables ([`Config`]) and the input
//! manifest, starts the action, reports its status, waits for completion bounded by
//! `RUNNER_TIMEOUT`, reports the outcome and returns an [`Exit`] code. The contract follows
//! Capact's action runners. The only arguments a runner binary takes are `--help` and
//! `--version` ([`cli`]; [`Manager::about`] says what they print).
//!
//! ```no_run
//! use action_runner::{ConfigMapReporter, Manager};
//! # struct MyRunner;
//! # impl action_runner::ActionRunner for MyRunner {
//! #   type Args = serde_json::Value;
//! #   fn name(&self) -> &'static str { "my" }
//! #   async fn start(&mut self, _: action_runner::StartInput<serde_json::Value>)
//! #     -> Result<action_runner::StartOutput, action_runner::RunnerError> { unimplemented!() }
//! #   async fn wait_for_completion(&mut self, _: action_runner::WaitForCompletionInput)
//! #     -> Result<action_runner::WaitForCompletionOutput, action_runner::RunnerError> { unimplemented!() }
//! # }
//! fn main() -> std::process::ExitCode {
//!     action_runner::block_on(
//!         Manager::new(MyRunner, |client, ctx| {
//!             ConfigMapReporter::new(client, &ctx.platform.namespace, &ctx.name)
//!         })
//!         .run(),
//!     )
//! }
//! ```

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod events;
pub mod identity;
pub mod input_file;
pub mod logging;
pub mod manager;
pub mod manifest;
pub mod runner;
pub mod status;
pub mod validation;

pub use cli::About;
pub use config::{Config, Required, Variable};
pub use context::{ExecutionContext, KubernetesPlatform};
pub use error::{Exit, RunnerError};
pub use identity::InputDigest;
pub use manager::{Manager, block_on};
pub use runner::{
    ActionRunner, Activity, Progress, StartInput, StartOutput, WaitForCompletionInput,
    WaitForCompletionOutput,
};
pub use status::{ActionStatus, ConfigMapReporter, NoopReporter, Phase, Reason, StatusReporter};

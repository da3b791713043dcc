//! A trivial runner written outside the framework crate, to show that a new runner plugs in
//! without any change to it. Its manifest: `{message: <text>, succeed: <bool>, sleep: <Go
//! duration, optional>}`; it waits `sleep`, then finishes with `message`. It reports through the
//! `NoopReporter`.

use action_runner::{
    ActionRunner, Config, Manager, NoConfig, NoopReporter, RunnerError, StartInput, StartOutput,
    WaitForCompletionInput, WaitForCompletionOutput,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    message: String,
    #[serde(default = "yes")]
    succeed: bool,
    #[serde(default)]
    sleep: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Default)]
struct EchoRunner {
    args: Option<EchoArgs>,
    sleep: std::time::Duration,
}

impl ActionRunner for EchoRunner {
    type Config = NoConfig;
    type Args = EchoArgs;

    fn name(&self) -> &'static str {
        "echo"
    }

    fn prepare(&mut self, _: &Config, _: NoConfig, args: &EchoArgs) -> Result<(), RunnerError> {
        if let Some(s) = &args.sleep {
            self.sleep = action_runner::vars::go_duration(s).map_err(|e| {
                RunnerError::invalid_input(format!("input manifest: sleep {s:?} {e}"))
            })?;
        }
        Ok(())
    }

    async fn start(&mut self, input: StartInput<EchoArgs>) -> Result<StartOutput, RunnerError> {
        let status = serde_json::json!({ "echo": input.args.message });
        self.args = Some(input.args);
        Ok(StartOutput {
            status,
            ..StartOutput::default()
        })
    }

    async fn wait_for_completion(
        &mut self,
        _input: WaitForCompletionInput,
    ) -> Result<WaitForCompletionOutput, RunnerError> {
        tokio::time::sleep(self.sleep).await;
        let args = self.args.take().expect("start ran");
        Ok(WaitForCompletionOutput {
            succeeded: args.succeed,
            message: args.message,
            ..Default::default()
        })
    }
}

fn main() -> std::process::ExitCode {
    action_runner::block_on(Manager::new(EchoRunner::default(), |_, _| NoopReporter).run())
}

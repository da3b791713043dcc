//! `helm-runner`: not implemented yet (see the Helm runner issue); exits with code 2.

fn main() -> std::process::ExitCode {
    eprintln!("helm-runner: not implemented yet");
    std::process::ExitCode::from(2)
}

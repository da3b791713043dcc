//! The files the runner writes: private files in its scratch directories (values, a registry
//! configuration holding credentials) and the output files.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use action_runner::RunnerError;

/// Writes `bytes` to a new file at `path`, readable by its owner only (mode 0600): values and
/// credentials never sit in a file others can read. The file must not exist yet
/// (`O_CREAT|O_EXCL`), so a link planted at `path` is never followed.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) naming `path` when the file exists
/// already or cannot be created or written.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), RunnerError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| RunnerError::failed(format!("cannot write {}", path.display())).because(e))
}

/// Writes `text` to the output file at `path`, which the variable `var` set (mode 0644, as
/// Capact's runner writes it), replacing what it held.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) naming the file and `var` when it
/// cannot be written.
pub(crate) fn write_output(path: &Path, var: &str, text: &str) -> Result<(), RunnerError> {
    std::fs::write(path, text).map_err(|e| {
        RunnerError::failed(format!(
            "writing the output file {} ({var}) failed",
            path.display()
        ))
        .because(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_new_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("values.json");
        write_private(&path, b"{}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = write_private(&path, b"{}").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot write {}", path.display())),
            "{e}"
        );
    }

    #[test]
    fn output_errors_name_the_variable() {
        let e = write_output(Path::new("/nonexistent/out.yaml"), "RUNNER_X", "a: b\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("writing the output file /nonexistent/out.yaml (RUNNER_X) failed"),
            "{e}"
        );
    }
}

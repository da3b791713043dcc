//! Reading the input manifest.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::RunnerError;

/// Reads the manifest at `path` (YAML, or JSON, which is YAML) and deserializes it into `T`
/// with `serde-saphyr`, the YAML crate kube itself uses.
///
/// # Errors
/// [`RunnerError::InvalidInput`], one line naming the file, when it is missing, unreadable, empty,
/// malformed (with line and column) or of the wrong shape (with line and column, and the field).
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, RunnerError> {
    let what = format!(
        "input manifest {} (RUNNER_INPUT_MANIFEST_PATH)",
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunnerError::InvalidInput(format!("{what}: cannot read: {e}")))?;
    parse(&what, &text)
}

/// Parses manifest `text`; `what` names it in errors. See [`read`].
///
/// # Errors
/// As [`read`], for empty, malformed or wrongly shaped text.
pub fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, RunnerError> {
    let has_content = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---" && l != "...");
    if !has_content {
        return Err(RunnerError::InvalidInput(format!("{what}: is empty")));
    }
    serde_saphyr::from_str(text)
        .map_err(|e| RunnerError::InvalidInput(format!("{what}: {}", first_line(&e.to_string()))))
}

/// The first line of a serde-saphyr error ("line L column C: problem"); the rest is a snippet of
/// the input, which may hold secrets and is left out.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
    }

    #[test]
    fn empty_and_malformed() {
        let e = parse::<Shape>("m", "# only a comment\n---\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "m: is empty");
        let e = parse::<Shape>("m", "name: [a\nother: b")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m: line ") && e.contains(" column "), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn wrong_shape_names_field_and_position() {
        let e = parse::<Shape>("m", "name: a\nextra: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2 column 1") && e.contains("extra"), "{e}");
    }

    #[test]
    fn missing_file() {
        let e = read::<Shape>(Path::new("/nonexistent/x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.yaml") && e.contains("RUNNER_INPUT_MANIFEST_PATH"));
    }
}

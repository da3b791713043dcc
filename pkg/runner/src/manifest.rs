//! Reading the input manifest, so that no input can hurt the runner: only a regular file of at
//! most [`MAX_MANIFEST_BYTES`] is read, and the YAML parser works within budgets sized so that
//! the worst input stays far below the smallest memory limit in `deploy/` (64Mi).

use std::path::Path;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::RunnerError;

/// The largest manifest read, in bytes: 3 MiB, the largest request kube-apiserver accepts
/// (`maxRequestBodyBytes`, 3 MiB, `k8s.io/apiserver/pkg/server/config.go`). Whatever a runner
/// makes of its manifest must reach the cluster in a request, and etcd stores objects of at most
/// 1.5 MiB (`--max-request-bytes`), so nothing larger could ever be acted on.
pub const MAX_MANIFEST_BYTES: u64 = 3 * 1024 * 1024;

/// The YAML parser's budgets. serde-saphyr's defaults allow 1,000,000 events replayed from
/// aliases, which a 746-byte "billion laughs" manifest turns into about 100 MiB of memory before
/// it is refused. Here: at most 100,000 replayed events and 250,000 nodes, 8 MiB of scalars and of
/// anchored content, nesting 64 deep. A 3 MiB manifest of ordinary YAML (no aliases) stays well
/// within them; `alias_bombs_are_refused_within_the_budgets` and the cluster test
/// `a_manifest_of_aliases_is_refused_under_the_memory_limit` check the worst inputs. Every YAML
/// text a runner parses (the manifest, values files, `valuesFrom` texts, release files) is
/// parsed with these budgets.
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 1_000_000,
            max_nodes: 250_000,
            max_total_scalar_bytes: 8 * 1024 * 1024,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: 8 * 1024 * 1024,
            max_depth: 64,
            max_documents: 16,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 64,
        },
    }
}

/// Reads the manifest at `path` (YAML, or JSON, which is YAML) with the bounded reader
/// ([`crate::input_file`], at most [`MAX_MANIFEST_BYTES`]) and deserializes it into `T` with
/// `serde-saphyr`, the YAML crate kube itself uses.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::error::ErrorKind), one line naming the file, when it is
/// missing or unreadable, not a regular file (a directory, FIFO, device or socket: refused before
/// any read, so `/dev/zero` or a FIFO never hangs the runner), larger than
/// [`MAX_MANIFEST_BYTES`], not UTF-8, empty, malformed or of the wrong shape (with line and
/// column, and the field), or holds more than one YAML document.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, RunnerError> {
    let (what, text) = read_text(path)?;
    parse(&what, &text)
}

/// The manifest's text as [`read`] reads it, and the words that name it in errors
/// (`input manifest <path> (RUNNER_INPUT_MANIFEST_PATH)`), for a caller that also needs the text
/// itself (the [`Manager`](crate::Manager) digests it: [`crate::identity`]).
///
/// # Errors
/// As [`read`], except for the parsing.
pub fn read_text(path: &Path) -> Result<(String, String), RunnerError> {
    let what = format!(
        "input manifest {} (RUNNER_INPUT_MANIFEST_PATH)",
        path.display()
    );
    let text = crate::input_file::read_to_string(path, &what, MAX_MANIFEST_BYTES)?;
    Ok((what, text))
}

/// Parses manifest `text`; `what` names it in errors. See [`read`].
///
/// # Errors
/// As [`read`], for empty, malformed or wrongly shaped text, or more than one document (a
/// single `---` before or after the document is fine).
pub fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, RunnerError> {
    parse_with(what, text, |d| T::deserialize(d))
}

/// Parses manifest `text` with `deserialize`, which is given the deserializer of its one
/// document: [`parse`] for a type whose shape depends on more than the text (the Manager parses
/// a runner's [`Args`](crate::ActionRunner::Args) with its [`FromManifest`], given the
/// configuration). `what` names the manifest in errors.
///
/// # Errors
/// As [`parse`].
///
/// [`FromManifest`]: crate::runner::FromManifest
pub fn parse_with<T, F>(what: &str, text: &str, deserialize: F) -> Result<T, RunnerError>
where
    F: for<'t, 'e> Fn(serde_saphyr::Deserializer<'t, 'e>) -> Result<T, serde_saphyr::Error>,
{
    let has_content = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---" && l != "...");
    let empty = || RunnerError::invalid_input(format!("{what}: is empty"));
    if !has_content {
        return Err(empty());
    }
    let (first, e) = match first_document(text, &deserialize) {
        Ok(doc) => return Ok(doc),
        Err(failed) => failed,
    };
    // A shape error may come from the first of several documents: count them (empty ones, as
    // a `---` at the end makes, do not count), so that the message is about their number.
    let documents =
        serde_saphyr::from_multiple_with_options::<Option<IgnoredAny>>(text, yaml_options());
    let count = documents.as_ref().map_or(1, |d| d.iter().flatten().count());
    if count > 1 {
        return Err(RunnerError::invalid_input(format!(
            "{what}: holds {count} YAML documents; one is expected"
        )));
    }
    let invalid = |e| RunnerError::invalid_input(what).because(YamlError(e));
    if !multiple_documents(&e) {
        return Err(invalid(e));
    }
    // The parser read the first document and found more: empty ones, or a malformed one.
    documents.map_err(invalid)?;
    // One document among empty ones: the first, when it is the one; else the one, read where
    // it stands.
    match first {
        Some(doc) if !first_is_empty(text) => Ok(doc),
        _ => parse_with(what, &content_first(text).ok_or_else(empty)?, deserialize),
    }
}

/// The first document of `text`, deserialized; on an error, with what the first document gave
/// when the error came after it (the parser found more documents).
fn first_document<T, F>(text: &str, deserialize: &F) -> Result<T, (Option<T>, serde_saphyr::Error)>
where
    F: for<'t, 'e> Fn(serde_saphyr::Deserializer<'t, 'e>) -> Result<T, serde_saphyr::Error>,
{
    let mut first = None;
    let read = serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |d| {
        first = Some(deserialize(d)?);
        Ok(())
    });
    match (read, first) {
        (Ok(()), Some(doc)) => Ok(doc),
        (Ok(()), None) => unreachable!("a parse that succeeds deserialized the document"),
        (Err(e), first) => Err((first, e)),
    }
}

/// Whether the first document of `text` is empty or null.
fn first_is_empty(text: &str) -> bool {
    let mut empty = false;
    let _ = serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |d| {
        empty = Option::<IgnoredAny>::deserialize(d)?.is_none();
        Ok(())
    });
    empty
}

/// `text` with everything before its first document that is not empty blanked (spaces, the
/// line breaks kept), so that it is the first and every position stays; `None` when there is
/// none.
fn content_first(text: &str) -> Option<String> {
    let docs: Vec<serde_saphyr::Spanned<IgnoredAny>> =
        serde_saphyr::from_multiple_with_options(text, yaml_options()).ok()?;
    let start = usize::try_from(docs.first()?.referenced.span().byte_offset()?).ok()?;
    let (before, after) = text.split_at_checked(start)?;
    let blank = before.chars().map(|c| if c == '\n' { c } else { ' ' });
    Some(blank.chain(after.chars()).collect())
}

fn multiple_documents(e: &serde_saphyr::Error) -> bool {
    match e {
        serde_saphyr::Error::MultipleDocuments { .. } => true,
        serde_saphyr::Error::WithSnippet { error, .. } => multiple_documents(error),
        _ => false,
    }
}

/// A YAML error, kept as the cause of the manifest's [`RunnerError`] and shown in the user's
/// words (`user_message`); the parser's own text, with its advice to the programmer, is
/// reached with `.0`.
#[derive(Debug)]
pub struct YamlError(pub serde_saphyr::Error);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&user_message(&self.0))
    }
}

impl std::error::Error for YamlError {}

/// serde-saphyr's message for users (its `UserMessageFormatter`: no advice meant for the
/// programmer, such as which function or option to use), with its location, on one line and
/// without the snippet of the input, which may hold secrets.
fn user_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.render_with_options(serde_saphyr::render_options! {
        formatter: &serde_saphyr::UserMessageFormatter,
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let line = rendered.lines().next().unwrap_or_default();
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

    fn err(text: &str) -> String {
        parse::<Shape>("m", text).unwrap_err().to_string()
    }

    #[test]
    fn empty_and_malformed() {
        assert_eq!(err("# only a comment\n---\n"), "m: is empty");
        let e = err("name: [a\nother: b");
        assert!(
            e.starts_with("m: ") && e.contains("line") && e.contains("column"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn wrong_shape_names_field_and_position() {
        let e = err("name: a\nextra: 1\n");
        assert!(e.contains("line 2") && e.contains("extra"), "{e}");
        // The parser's error is kept as the cause.
        let e = parse::<Shape>("m", "name: a\nextra: 1\n").unwrap_err();
        let cause = std::error::Error::source(&e).expect("a cause");
        assert!(cause.downcast_ref::<YamlError>().is_some());
    }

    #[test]
    fn no_advice_meant_for_programmers() {
        let e = err("name: a\nname: b\n");
        assert!(e.contains("duplicate") && e.contains("name"), "{e}");
        assert!(
            !e.contains("DuplicateKeyPolicy") && !e.contains("Options"),
            "{e}"
        );
        let e = err("name: a\n---\nname: b\n---\nname: c\n");
        assert_eq!(e, "m: holds 3 YAML documents; one is expected");
        assert!(!e.contains("from_str"), "{e}");
        // A single separator before or after the document is fine.
        assert!(parse::<Shape>("m", "---\nname: a\n").is_ok());
        assert!(parse::<Shape>("m", "name: a\n---\n").is_ok());
    }

    #[test]
    fn alias_bombs_are_refused_within_the_budgets() {
        // Each level refers to the one before it ten times: 10^9 strings if expanded.
        let mut bomb = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
            ));
        }
        let e = parse::<serde_json::Value>("m", &bomb).unwrap_err();
        assert_eq!(e.exit(), crate::Exit::InvalidInput);
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn missing_file() {
        let e = read::<Shape>(Path::new("/nonexistent/x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.yaml") && e.contains("RUNNER_INPUT_MANIFEST_PATH"));
    }

    #[test]
    fn only_regular_files_of_at_most_3_mib_are_read() {
        let e = read::<Shape>(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("is a character device, not a regular file"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = read::<Shape>(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        let fifo = crate::input_file::tests::fifo_in(dir.path());
        let e = read::<Shape>(&fifo).unwrap_err().to_string();
        assert!(e.ends_with("is a FIFO, not a regular file"), "{e}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, format!("name: {}\n", "x".repeat(3 * 1024 * 1024))).unwrap();
        let e = read::<Shape>(&big).unwrap_err().to_string();
        assert!(e.contains("larger than 3145728 bytes (3 MiB)"), "{e}");
        let ok = dir.path().join("ok.yaml");
        std::fs::write(&ok, "name: a\n").unwrap();
        assert_eq!(read::<Shape>(&ok).unwrap().name, "a");
    }

    /// Documents around the one that are empty or null do not count, whichever comes first;
    /// a malformed one is an error.
    #[test]
    fn empty_documents_around_the_one_do_not_count() {
        for text in [
            "---\n---\nname: a\n",
            "~\n---\nname: a\n",
            "name: a\n---\n~\n",
            "---\n# c\n---\nname: a\n...\n---\n",
        ] {
            let value: serde_json::Value = parse("m", text).unwrap();
            assert_eq!(value, serde_json::json!({"name": "a"}), "{text:?}");
        }
        // Read where it stands: positions are the text's.
        let e = parse::<Option<Shape>>("m", "---\n---\nname: a\nextra: 1\n").unwrap_err();
        assert!(e.to_string().ends_with("at line 4, column 1"), "{e}");
        let e = err("name: a\n---\nbad: [\n");
        assert!(e.contains("line 3"), "{e}");
    }
}

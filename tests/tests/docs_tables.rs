//! The documentation's variable and exit-code tables are the code's: `README.md` ("Configuration",
//! "Exit codes"), `cmd/helm-runner/README.md` ("Variables") and `docs/argo.md` ("Variables") list
//! exactly the rows of [`action_runner::config::VARIABLES`], [`Exit::ALL`],
//! [`action_runner_helm::config::VARIABLES`] and [`action_runner_argo::VARIABLES`], which are
//! also what `--help` prints. A change to one without the other fails here, naming the row.

use std::path::Path;

use action_runner::{Exit, Variable};

/// A Markdown file of the repository.
fn read(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The lines of `text` after the line `heading`, up to the next heading of the same or a higher
/// level (outside fenced code, where `# ` starts a shell comment).
fn section<'a>(path: &str, text: &'a str, heading: &str) -> Vec<&'a str> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = text.lines().skip_while(|l| *l != heading);
    assert!(lines.next().is_some(), "{path}: no heading {heading:?}");
    let mut in_code = false;
    let mut body = Vec::new();
    for line in lines {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !in_code && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        body.push(line);
    }
    body
}

/// The cells of one table row (`| a | b |`), trimmed.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// The body rows of the first table in the section under `heading`, whose header must be
/// `header`.
fn table(path: &str, heading: &str, header: &[&str]) -> Vec<Vec<String>> {
    let text = read(path);
    let lines = section(path, &text, heading);
    let rows: Vec<Vec<String>> = lines
        .iter()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| cells(l))
        .collect();
    assert!(rows.len() >= 2, "{path}: no table under {heading:?}");
    assert_eq!(
        rows[0], header,
        "{path}: the table under {heading:?} has other columns"
    );
    rows[2..].to_vec()
}

/// Fails listing every row that differs between the documentation (`documented`) and the code
/// (`code`), keyed by their first cell.
fn same_rows(path: &str, heading: &str, documented: Vec<Vec<String>>, code: Vec<Vec<String>>) {
    let mut problems = Vec::new();
    for row in &code {
        match documented.iter().find(|d| d[0] == row[0]) {
            None => problems.push(format!("missing row {}: {:?}", row[0], row)),
            Some(d) if d != row => problems.push(format!(
                "row {} differs:\n    documented: {:?}\n    code:       {:?}",
                row[0], d, row
            )),
            Some(_) => {}
        }
    }
    for d in &documented {
        if !code.iter().any(|row| row[0] == d[0]) {
            problems.push(format!("row {} is not in the code's table", d[0]));
        }
    }
    if problems.is_empty() {
        let order = |rows: &[Vec<String>]| rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
        assert_eq!(
            order(&documented),
            order(&code),
            "{path} {heading:?}: the rows are in another order than the code's"
        );
    }
    assert!(
        problems.is_empty(),
        "{path}, table under {heading:?}, against the code (change both together):\n  {}",
        problems.join("\n  ")
    );
}

fn variable_rows(table: &[Variable]) -> Vec<Vec<String>> {
    table
        .iter()
        .map(|v| {
            vec![
                format!("`{}`", v.name),
                v.required.as_str().to_string(),
                v.default.unwrap_or_default().to_string(),
                v.meaning.to_string(),
            ]
        })
        .collect()
}

const VARIABLE_COLUMNS: [&str; 4] = ["variable", "required", "default", "meaning"];

fn check_variables(path: &str, heading: &str, code: &[Variable]) {
    let documented = table(path, heading, &VARIABLE_COLUMNS);
    same_rows(path, heading, documented, variable_rows(code));
}

#[test]
fn readme_configuration_table_is_the_framework_variables() {
    check_variables(
        "README.md",
        "## Configuration",
        action_runner::config::VARIABLES,
    );
}

#[test]
fn helm_runner_readme_variable_table_is_the_helm_variables() {
    check_variables(
        "cmd/helm-runner/README.md",
        "### Variables",
        action_runner_helm::config::VARIABLES,
    );
}

#[test]
fn argo_doc_variable_table_is_the_argo_variables() {
    check_variables(
        "docs/argo.md",
        "## Variables",
        action_runner_argo::VARIABLES,
    );
}

#[test]
fn readme_exit_code_table_is_exit_all() {
    let heading = "## Exit codes";
    let documented = table("README.md", heading, &["code", "meaning", "retrying"]);
    let code = Exit::ALL
        .iter()
        .map(|e| {
            vec![
                e.code().to_string(),
                e.meaning().to_string(),
                e.retrying().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    same_rows("README.md", heading, documented, code);
}

#[test]
fn helm_runner_readme_exit_codes_are_framework_codes() {
    let path = "cmd/helm-runner/README.md";
    let rows = table(
        path,
        "### Status, messages and exit codes",
        &["exit", "when"],
    );
    for row in rows {
        assert!(
            Exit::ALL.iter().any(|e| e.code().to_string() == row[0]),
            "{path}: exit {} is not one of the runner's exit codes",
            row[0]
        );
    }
}

/// The README's Configuration section names each runner's own variables in its prose: the same
/// set as the runners' tables.
#[test]
fn readme_names_every_runner_own_variable() {
    let text = read("README.md");
    let mut named: Vec<&str> = section("README.md", &text, "## Configuration")
        .into_iter()
        .filter(|l| !l.starts_with('|'))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .filter(|span| span.starts_with("RUNNER_") && span.len() > "RUNNER_".len())
        .collect();
    named.sort_unstable();
    named.dedup();
    let mut own: Vec<&str> = action_runner_helm::config::VARIABLES
        .iter()
        .chain(action_runner_argo::VARIABLES)
        .map(|v| v.name)
        .collect();
    own.sort_unstable();
    assert_eq!(
        named, own,
        "README.md's Configuration prose names other runner variables than the runners' tables"
    );
}

/// `--help` prints the tables as text: Markdown code spans only (their backticks are dropped),
/// no links or emphasis that would show as punctuation at a terminal.
#[test]
fn the_tables_hold_code_spans_only() {
    let texts = action_runner::config::VARIABLES
        .iter()
        .chain(action_runner_helm::config::VARIABLES)
        .chain(action_runner_argo::VARIABLES)
        .flat_map(|v| {
            [
                v.required.as_str(),
                v.default.unwrap_or_default(),
                v.meaning,
            ]
        })
        .chain(Exit::ALL.iter().map(|e| e.meaning()));
    for text in texts {
        assert!(
            !text.contains("](") && !text.contains("**") && !text.contains('|'),
            "not plain enough for --help: {text:?}"
        );
        assert_eq!(
            text.matches('`').count() % 2,
            0,
            "unbalanced code span: {text:?}"
        );
    }
}

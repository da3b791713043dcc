//! Where a chart comes from, and getting an unpacked copy of it.
//!
//! The runner always works from an unpacked copy of the chart in its scratch directory: it
//! installs from that copy, and renders the additional output by adding a template file to it
//! (see [`crate::render`]). Remote charts are fetched once with `helm pull`, so the version
//! resolved from a range is the same for both.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use action_runner::RunnerError;
use action_runner::error::ErrorKind;

use crate::cli::Helm;
use crate::input::Chart;

/// A chart's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// A local chart directory or `.tgz` archive.
    Local(PathBuf),
    /// A chart `helm pull` fetches: `reference` (a chart name with `repo`, an `oci://`
    /// reference, or `<repo-name>/<chart>` of a repository configured in Helm) and `version`.
    Remote {
        /// Chart reference.
        reference: String,
        /// `--repo`, for a chart repository URL.
        repo: Option<String>,
        /// `--version`, when set.
        version: Option<String>,
    },
}

impl ChartSource {
    /// In words, for messages: `./chart`, `nginx (version 1.0.0) from https://...`,
    /// `oci://registry/charts/nginx`.
    pub fn describe(&self) -> String {
        match self {
            ChartSource::Local(path) => path.display().to_string(),
            ChartSource::Remote {
                reference,
                repo,
                version,
            } => {
                let mut s = reference.clone();
                if let Some(v) = version {
                    s.push_str(&format!(" (version {v})"));
                }
                if let Some(r) = repo {
                    s.push_str(&format!(" from {r}"));
                }
                s
            }
        }
    }
}

/// Decides where `chart` comes from (rules in [`Chart`]'s documentation).
///
/// Why the input's `chart` names no chart; the text names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// `chart.name` is empty.
    #[error("chart.name is required")]
    MissingName,
    /// `chart.name` is an `oci://` reference and `chart.repo` is set too.
    #[error("chart.repo must be empty when chart.name is an oci:// reference ({0})")]
    RepoBesideOci(String),
    /// `chart.repo` is not an `http://`, `https://` or `oci://` URL.
    #[error("chart.repo {0:?} is not a chart repository URL (http://, https:// or oci://)")]
    NotARepository(String),
    /// `chart.name` is a path that does not exist.
    #[error(
        "chart.name {0:?}: no such local chart directory or archive (set chart.repo for a chart \
         from a repository, or use an oci:// reference)"
    )]
    NoLocalChart(String),
}

/// # Errors
/// The [`ChartError`] naming the `chart` field at fault: no name, a repository URL with another
/// scheme than `http`, `https` or `oci`, or a local path that does not exist.
pub fn resolve(chart: &Chart) -> Result<ChartSource, ChartError> {
    let name = chart.name.trim();
    let repo = chart.repo.trim();
    let version = Some(chart.version.trim().to_string()).filter(|v| !v.is_empty());
    if name.is_empty() {
        return Err(ChartError::MissingName);
    }
    if name.starts_with("oci://") {
        if !repo.is_empty() {
            return Err(ChartError::RepoBesideOci(name.into()));
        }
        return Ok(ChartSource::Remote {
            reference: name.into(),
            repo: None,
            version,
        });
    }
    if repo.starts_with("oci://") {
        return Ok(ChartSource::Remote {
            reference: format!("{}/{name}", repo.trim_end_matches('/')),
            repo: None,
            version,
        });
    }
    if !repo.is_empty() {
        if !(repo.starts_with("http://") || repo.starts_with("https://")) {
            return Err(ChartError::NotARepository(repo.into()));
        }
        return Ok(ChartSource::Remote {
            reference: name.into(),
            repo: Some(repo.into()),
            version,
        });
    }
    let path = Path::new(name);
    if path.exists() {
        return Ok(ChartSource::Local(path.to_path_buf()));
    }
    if path.is_absolute() || name.starts_with('.') || !name.contains('/') {
        return Err(ChartError::NoLocalChart(name.into()));
    }
    Ok(ChartSource::Remote {
        reference: name.into(),
        repo: None,
        version,
    })
}

/// Puts an unpacked copy of the chart under `dest` (which must exist and be empty) and returns
/// the chart's directory. `pull_args` are added to `helm pull` (a private repository's access,
/// [`crate::sources::RepositoryAccess::pull_args`]).
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) with Helm's message when `helm pull` fails (missing chart or
/// version, unreachable repository); [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) when a local chart cannot be
/// read or unpacked (nothing was written to the cluster).
pub async fn fetch(
    helm: &Helm,
    source: &ChartSource,
    pull_args: &[OsString],
    dest: &Path,
) -> Result<PathBuf, RunnerError> {
    let unpacked = dest.join("chart");
    std::fs::create_dir_all(&unpacked).map_err(|e| scratch_error(&unpacked, e))?;
    match source {
        ChartSource::Local(path) if path.is_dir() => {
            let name = path
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(ToOwned::to_owned))
                .unwrap_or_else(|| "chart".into());
            let target = unpacked.join(name);
            copy_dir(path, &target).map_err(|e| {
                RunnerError::invalid_input(format!(
                    "chart.name {}: cannot copy the chart directory",
                    path.display()
                ))
                .because(e)
            })?;
            Ok(target)
        }
        ChartSource::Local(path) => untar(path, &unpacked).map_err(|e| {
            RunnerError::invalid_input(format!(
                "chart.name {}: not a chart archive (.tgz)",
                path.display()
            ))
            .because(e)
        }),
        ChartSource::Remote {
            reference,
            repo,
            version,
        } => {
            let pulled = dest.join("pull");
            std::fs::create_dir_all(&pulled).map_err(|e| scratch_error(&pulled, e))?;
            let mut args: Vec<OsString> = vec!["pull".into(), reference.into()];
            if let Some(repo) = repo {
                args.extend(["--repo".into(), repo.into()]);
            }
            if let Some(v) = version {
                args.extend(["--version".into(), v.into()]);
            }
            args.extend(pull_args.iter().cloned());
            args.extend(["--destination".into(), pulled.clone().into()]);
            helm.run("helm pull", &args)
                .await
                .map_err(|e| match e.kind() {
                    // The repository, not the cluster, failed: the action failed.
                    ErrorKind::Cluster | ErrorKind::Unavailable => e.with_kind(ErrorKind::Failed),
                    _ => e,
                })?;
            let archive = std::fs::read_dir(&pulled)
                .ok()
                .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
                .ok_or_else(|| {
                    RunnerError::failed(format!(
                        "helm pull {reference}: no chart archive was saved"
                    ))
                })?;
            untar(&archive, &unpacked).map_err(|e| {
                RunnerError::failed(format!("helm pull {reference}: cannot unpack the chart"))
                    .because(e)
            })
        }
    }
}

fn scratch_error(path: &Path, e: std::io::Error) -> RunnerError {
    RunnerError::failed(format!(
        "cannot create scratch directory {}",
        path.display()
    ))
    .because(e)
}

/// Unpacks a gzipped chart archive into `dest` and returns its single top-level directory
/// (Helm packages a chart as `<name>/...`). The `tar` crate refuses entries outside `dest`.
fn untar(archive: &Path, dest: &Path) -> std::io::Result<PathBuf> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(false);
    tar.unpack(dest)?;
    let dirs: Vec<PathBuf> = std::fs::read_dir(dest)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match dirs.as_slice() {
        [one] if one.join("Chart.yaml").is_file() => Ok(one.clone()),
        _ => Err(std::io::Error::other(
            "expected one top-level chart directory holding Chart.yaml",
        )),
    }
}

/// Copies a directory tree (following symbolic links, as Helm's loader does).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(name: &str, repo: &str, version: &str) -> Chart {
        Chart {
            name: name.into(),
            repo: repo.into(),
            version: version.into(),
            ..Chart::default()
        }
    }

    #[test]
    fn sources() {
        assert_eq!(
            resolve(&chart("nginx", "https://charts.example.com", "1.0.0")),
            Ok(ChartSource::Remote {
                reference: "nginx".into(),
                repo: Some("https://charts.example.com".into()),
                version: Some("1.0.0".into())
            })
        );
        assert_eq!(
            resolve(&chart("nginx", "oci://r.example.com/charts/", "")),
            Ok(ChartSource::Remote {
                reference: "oci://r.example.com/charts/nginx".into(),
                repo: None,
                version: None
            })
        );
        assert_eq!(
            resolve(&chart("oci://r.example.com/charts/nginx", "", "1")).unwrap(),
            ChartSource::Remote {
                reference: "oci://r.example.com/charts/nginx".into(),
                repo: None,
                version: Some("1".into())
            }
        );
        assert_eq!(
            resolve(&chart("/", "", "")),
            Ok(ChartSource::Local("/".into()))
        );
        assert!(matches!(
            resolve(&chart("bitnami/nginx", "", "")),
            Ok(ChartSource::Remote { .. })
        ));
    }

    #[test]
    fn bad_sources() {
        assert!(
            resolve(&chart("", "", ""))
                .unwrap_err()
                .to_string()
                .contains("chart.name")
        );
        assert!(
            resolve(&chart("x", "ftp://a", ""))
                .unwrap_err()
                .to_string()
                .contains("chart.repo")
        );
        assert!(
            resolve(&chart("./nope", "", ""))
                .unwrap_err()
                .to_string()
                .contains("./nope")
        );
        assert!(
            resolve(&chart("nope", "", ""))
                .unwrap_err()
                .to_string()
                .contains("chart.name")
        );
    }
}

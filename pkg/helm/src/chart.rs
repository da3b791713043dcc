//! Where a chart comes from, and getting an unpacked copy of it.
//!
//! The runner always works from an unpacked copy of the chart in its scratch directory: it
//! installs from that copy, and renders the additional output by adding a template file to it
//! (see [`crate::render`]). Remote charts are fetched once with `helm pull`, so the version
//! resolved from a range is the same for both.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

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

/// The most a chart may unpack to, the sum of its files' sizes: 20 MiB. Helm's own loader allows
/// 100 MiB (`MaxDecompressedChartSize`, `pkg/chart/loader/archive/archive.go` of `helm.sh/helm/v4`
/// v4.3.2, `pkg/chart/loader/archive.go` of `helm.sh/helm/v3` v3.22.0), but the runner unpacks into its scratch
/// directory, which `deploy/helm-runner` mounts as an `emptyDir` of 64Mi (a pod over it is
/// evicted, not failed), and Helm stores the chart's files with each release in one Secret of at
/// most 1 MiB: a chart of 20 MiB could never be installed anyway.
pub const MAX_CHART_BYTES: u64 = 20 * 1024 * 1024;

/// The most one file of a chart may hold: 5 MiB, Helm 3's `MaxDecompressedFileSize`, which
/// `helm.sh/helm/v3` v3.22.0 enforces on archives and directories (`pkg/chart/loader/archive.go`,
/// `directory.go`). Helm 4 (v4.3.2) keeps the variable, deprecated, and enforces only the total:
/// a chart the runner installs works with both.
pub const MAX_CHART_FILE_BYTES: u64 = 5 * 1024 * 1024;

/// The most entries (files, directories, links) a chart may hold: 10,000. Helm sets no such
/// limit; charts hold tens to hundreds of files, and this bounds the work on an archive of
/// empty entries.
pub const MAX_CHART_ENTRIES: u64 = 10_000;

/// The most bytes read out of a chart archive's gzip stream: [`MAX_CHART_BYTES`] plus 2 KiB for
/// each of [`MAX_CHART_ENTRIES`] entries (its header, padding, and a long-name or PAX header).
/// It bounds what the `tar` crate reads for itself, such as a long name, before an entry reaches
/// the checks: a gzip bomb is cut here whatever entries it holds.
pub const MAX_ARCHIVE_STREAM_BYTES: u64 = MAX_CHART_BYTES + MAX_CHART_ENTRIES * 2048;

/// Why a chart was not unpacked or copied. `entry` is the entry's path in the archive, or the
/// path relative to the chart directory.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A symbolic link in an archive, or one leaving a chart directory.
    #[error(
        "entry {entry:?} is a symbolic link (a chart holds regular files and directories only)"
    )]
    Symlink {
        /// The entry.
        entry: String,
    },
    /// A symbolic link of a chart directory that resolves outside it.
    #[error(
        "entry {entry:?} is a symbolic link leaving the chart directory (to {target}); links are \
         followed only within the chart"
    )]
    LinkOut {
        /// The entry.
        entry: String,
        /// Where it resolves to.
        target: String,
    },
    /// A symbolic link of a chart directory that cannot be resolved, or leads back to a
    /// directory that holds it.
    #[error("entry {entry:?} is a symbolic link that {why}")]
    BadLink {
        /// The entry.
        entry: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A hard link in an archive.
    #[error("entry {entry:?} is a hard link (a chart holds regular files and directories only)")]
    HardLink {
        /// The entry.
        entry: String,
    },
    /// A device, FIFO, socket or sparse file.
    #[error("entry {entry:?} is {kind} (a chart holds regular files and directories only)")]
    Special {
        /// The entry.
        entry: String,
        /// What it is: `a FIFO`, `a character device`, ...
        kind: String,
    },
    /// An absolute path.
    #[error("entry {entry:?} is an absolute path")]
    Absolute {
        /// The entry.
        entry: String,
    },
    /// A path with a `..` component.
    #[error("entry {entry:?} has a '..' component")]
    Parent {
        /// The entry.
        entry: String,
    },
    /// An entry outside the archive's one top-level directory.
    #[error(
        "entry {entry:?} is outside the top-level directory {top:?} (a chart archive holds one \
         directory)"
    )]
    OutsideTop {
        /// The entry.
        entry: String,
        /// The top-level directory of the entries before it.
        top: String,
    },
    /// A file at the archive's top level.
    #[error(
        "entry {entry:?} is a file at the archive's top level (a chart archive holds one \
         directory)"
    )]
    TopLevelFile {
        /// The entry.
        entry: String,
    },
    /// An entry whose path was already unpacked.
    #[error("entry {entry:?} appears twice")]
    Duplicate {
        /// The entry.
        entry: String,
    },
    /// A file over [`MAX_CHART_FILE_BYTES`].
    #[error(
        "entry {entry:?} holds more than {MAX_CHART_FILE_BYTES} bytes (5 MiB), the most one \
         file of a chart may hold (Helm 3's limit)"
    )]
    FileTooLarge {
        /// The entry.
        entry: String,
    },
    /// More than [`MAX_CHART_BYTES`] in all.
    #[error("the chart holds more than {MAX_CHART_BYTES} bytes (20 MiB), the most unpacked")]
    TooLarge,
    /// More than [`MAX_CHART_ENTRIES`] entries.
    #[error("the chart holds more than {MAX_CHART_ENTRIES} entries, the most unpacked")]
    TooManyEntries,
    /// No entries, or no `Chart.yaml` in the top-level directory.
    #[error("holds no Chart.yaml in its top-level directory")]
    NoChartYaml,
    /// Not a gzipped tar archive, or a damaged one.
    #[error("not a chart archive (.tgz)")]
    Format(#[source] std::io::Error),
    /// A file of a chart directory could not be read.
    #[error("entry {entry:?} cannot be read")]
    Read {
        /// The entry.
        entry: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runner's scratch directory could not be written (not the chart's fault).
    #[error("cannot write {path} in the scratch directory")]
    Write {
        /// What could not be written.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl UnpackError {
    /// The [`RunnerError`] saying `context` (which names the chart) because of this: exit 2,
    /// except when the runner's own scratch directory failed (exit 1).
    fn into_runner_error(self, context: String) -> RunnerError {
        match self {
            UnpackError::Write { .. } => RunnerError::failed(context).because(self),
            _ => RunnerError::invalid_input(context).because(self),
        }
    }
}

/// Puts an unpacked copy of the chart under `dest` (which must exist and be empty) and returns
/// the chart's directory. `pull_args` are added to `helm pull` (a private repository's access,
/// [`crate::sources::RepositoryAccess::pull_args`]).
///
/// Nothing the chart holds can reach outside the copy or the chart: an archive (local, or
/// fetched by `helm pull`) is unpacked by [`unpack`] and a directory copied by [`copy_chart_dir`],
/// which write regular files and directories only, within [`MAX_CHART_BYTES`],
/// [`MAX_CHART_FILE_BYTES`] and [`MAX_CHART_ENTRIES`].
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) with Helm's message when `helm pull`
/// fails (missing chart or version, unreachable repository);
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the chart (`chart.name`, or
/// the reference pulled) and the entry when a chart cannot be read, or holds what a chart may
/// not ([`UnpackError`]); nothing was written to the cluster (the runner fetches the chart before
/// it writes anything).
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
            copy_chart_dir(path, &target)
                .map_err(|e| e.into_runner_error(format!("chart.name {}", path.display())))?;
            Ok(target)
        }
        ChartSource::Local(path) => {
            let what = format!("chart.name {}", path.display());
            let file = action_runner::input_file::open(path, &what)?;
            unpack(file, &unpacked).map_err(|e| e.into_runner_error(what))
        }
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
            let what = format!("chart {reference} (helm pull)");
            let file = action_runner::input_file::open(&archive, &what)?;
            unpack(file, &unpacked).map_err(|e| e.into_runner_error(what))
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

/// Counts what a chart holds against [`MAX_CHART_BYTES`] and [`MAX_CHART_ENTRIES`].
#[derive(Debug, Default)]
struct Budget {
    bytes: u64,
    entries: u64,
}

impl Budget {
    fn entry(&mut self) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > MAX_CHART_ENTRIES {
            return Err(UnpackError::TooManyEntries);
        }
        Ok(())
    }

    /// Copies one file's content from `src` to the new file `dst` (created, never followed nor
    /// overwritten, mode 0644), counting it; `entry` names it in errors.
    fn copy_file(
        &mut self,
        src: &mut impl Read,
        dst: &Path,
        entry: &str,
    ) -> Result<(), UnpackError> {
        let write_error = |source| UnpackError::Write {
            path: dst.display().to_string(),
            source,
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(dst)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => UnpackError::Duplicate {
                    entry: entry.into(),
                },
                _ => write_error(e),
            })?;
        let allowed = MAX_CHART_FILE_BYTES.min(MAX_CHART_BYTES - self.bytes);
        // Copy one byte more than allowed, to tell a file at the limit from one over it.
        let mut limited = src.take(allowed + 1);
        let copied = copy_counting(&mut limited, &mut out).map_err(|e| match e {
            Copy::Read(e) if is_stream_cap(&e) => UnpackError::TooLarge,
            Copy::Read(source) => UnpackError::Read {
                entry: entry.into(),
                source,
            },
            Copy::Write(e) => write_error(e),
        })?;
        if copied > allowed {
            return Err(if copied > MAX_CHART_FILE_BYTES {
                UnpackError::FileTooLarge {
                    entry: entry.into(),
                }
            } else {
                UnpackError::TooLarge
            });
        }
        self.bytes += copied;
        Ok(())
    }
}

/// A failed copy: reading or writing.
enum Copy {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// `std::io::copy`, telling a read error from a write error.
fn copy_counting(src: &mut impl Read, dst: &mut impl Write) -> Result<u64, Copy> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        dst.write_all(&buf[..n]).map_err(Copy::Write)?;
        total += n as u64;
    }
}

/// The error [`StreamCap`] returns past its limit.
#[derive(Debug, thiserror::Error)]
#[error("the archive unpacks to more than {MAX_ARCHIVE_STREAM_BYTES} bytes")]
struct StreamCapReached;

fn is_stream_cap(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<StreamCapReached>())
}

/// A reader that fails once more than [`MAX_ARCHIVE_STREAM_BYTES`] were read from it.
struct StreamCap<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for StreamCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read >= MAX_ARCHIVE_STREAM_BYTES {
            return Err(std::io::Error::other(StreamCapReached));
        }
        let room = usize::try_from(MAX_ARCHIVE_STREAM_BYTES - self.read).unwrap_or(usize::MAX);
        let n = buf.len().min(room);
        let got = self.inner.read(&mut buf[..n])?;
        self.read += got as u64;
        Ok(got)
    }
}

/// Unpacks the gzipped tar archive `archive` (read as a stream, never whole) into `dest` and
/// returns its single top-level directory (Helm packages a chart as `<name>/...`), which must
/// hold `Chart.yaml`.
///
/// Only regular files and directories are unpacked, each entry checked before anything is
/// written for it: symbolic and hard links, devices, FIFOs and sparse files are refused, as are
/// absolute paths, `..` components and entries outside the first entry's top-level directory
/// (`.` components are dropped; GNU long names and PAX headers are read by the `tar` crate, and
/// PAX global headers skipped, as Helm does). Files are created new (a path seen twice is
/// refused), mode 0644, directories 0755: no permission of the archive is kept. The budgets:
/// [`MAX_CHART_FILE_BYTES`] for a file and [`MAX_CHART_BYTES`] in all, counted as bytes are
/// copied (a header's size is never trusted), [`MAX_CHART_ENTRIES`] entries, and
/// [`MAX_ARCHIVE_STREAM_BYTES`] read out of gzip in all. A gzip stream of several members is read
/// whole, as Go's `compress/gzip` (Helm's) reads it.
///
/// # Errors
/// The [`UnpackError`] naming the entry at fault; what was unpacked before it stays in `dest`
/// (the runner's scratch directory, removed with it).
pub fn unpack(archive: impl Read, dest: &Path) -> Result<PathBuf, UnpackError> {
    let gz = flate2::read::MultiGzDecoder::new(archive);
    let mut tar = tar::Archive::new(StreamCap { inner: gz, read: 0 });
    let stream_error = |e: std::io::Error| {
        if is_stream_cap(&e) {
            UnpackError::TooLarge
        } else {
            UnpackError::Format(e)
        }
    };
    let mut budget = Budget::default();
    let mut top: Option<OsString> = None;
    for entry in tar.entries().map_err(stream_error)? {
        let mut entry = entry.map_err(stream_error)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        budget.entry()?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let parts = archive_path(&entry.path_bytes(), &name)?;
        check_entry_kind(kind, &name)?;
        let Some((first, _)) = parts.split_first() else {
            // `./` or `.`: the archive's root itself.
            continue;
        };
        match &top {
            Some(t) if t != first => {
                return Err(UnpackError::OutsideTop {
                    entry: name,
                    top: t.to_string_lossy().into_owned(),
                });
            }
            _ if parts.len() == 1 && !kind.is_dir() => {
                return Err(UnpackError::TopLevelFile { entry: name });
            }
            _ => top = Some(first.clone()),
        }
        let target: PathBuf = parts.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        if kind.is_dir() {
            make_dirs(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            make_dirs(parent)?;
        }
        budget.copy_file(&mut entry, &target, &name)?;
    }
    let top = dest.join(top.ok_or(UnpackError::NoChartYaml)?);
    match std::fs::symlink_metadata(top.join("Chart.yaml")) {
        Ok(m) if m.is_file() => Ok(top),
        _ => Err(UnpackError::NoChartYaml),
    }
}

/// The components of an archive entry's path, `.` components dropped.
///
/// # Errors
/// [`UnpackError::Absolute`] or [`UnpackError::Parent`].
fn archive_path(raw: &[u8], name: &str) -> Result<Vec<OsString>, UnpackError> {
    use std::os::unix::ffi::OsStrExt;
    let mut parts = Vec::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(part) => parts.push(part.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => return Err(UnpackError::Parent { entry: name.into() }),
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::Absolute { entry: name.into() });
            }
        }
    }
    Ok(parts)
}

/// Refuses every kind of archive entry but regular files and directories.
fn check_entry_kind(kind: tar::EntryType, name: &str) -> Result<(), UnpackError> {
    use tar::EntryType as T;
    let special = |what: &str| {
        Err(UnpackError::Special {
            entry: name.into(),
            kind: what.into(),
        })
    };
    match kind {
        T::Regular | T::Continuous | T::Directory => Ok(()),
        T::Symlink => Err(UnpackError::Symlink { entry: name.into() }),
        T::Link => Err(UnpackError::HardLink { entry: name.into() }),
        T::Char => special("a character device"),
        T::Block => special("a block device"),
        T::Fifo => special("a FIFO"),
        T::GNUSparse => special("a sparse file"),
        other => special(&format!(
            "an entry of type {:?}",
            char::from(other.as_byte())
        )),
    }
}

/// Creates `dir` and its missing parents, mode 0755.
fn make_dirs(dir: &Path) -> Result<(), UnpackError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| UnpackError::Write {
            path: dir.display().to_string(),
            source,
        })
}

/// Copies the chart directory `from` to `to` (which must not exist), with the budgets of
/// [`unpack`].
///
/// Helm's own loader follows symbolic links in a chart directory wherever they lead (its
/// `sympath.Walk`, logging "found symbolic link in path"); the runner follows only those that
/// resolve inside the chart directory (as `deploy/helm-runner` needs: Kubernetes mounts a
/// ConfigMap's files as links into its `..data` directory), copying what they resolve to as
/// regular files and directories. A link that resolves outside the chart, does not resolve, or
/// leads back to a directory that holds it is refused, as is anything not a regular file or a
/// directory (a FIFO, socket or device). Files are opened without following links and without
/// blocking, and checked through the open descriptor.
///
/// # Errors
/// The [`UnpackError`] naming the entry at fault by its path relative to the chart.
pub fn copy_chart_dir(from: &Path, to: &Path) -> Result<(), UnpackError> {
    let root = from.canonicalize().map_err(|source| UnpackError::Read {
        entry: ".".into(),
        source,
    })?;
    let mut budget = Budget::default();
    let mut open_dirs = vec![root.clone()];
    copy_tree(&root, &root, to, Path::new(""), &mut open_dirs, &mut budget)
}

/// Copies the directory `dir` (a resolved path inside `root`) to `to`; `rel` is its path relative
/// to the chart; `open_dirs` the resolved directories being copied (it and those holding it).
fn copy_tree(
    root: &Path,
    dir: &Path,
    to: &Path,
    rel: &Path,
    open_dirs: &mut Vec<PathBuf>,
    budget: &mut Budget,
) -> Result<(), UnpackError> {
    make_dirs(to)?;
    let read_error = |source| UnpackError::Read {
        entry: rel.display().to_string(),
        source,
    };
    for item in std::fs::read_dir(dir).map_err(read_error)? {
        let item = item.map_err(read_error)?;
        budget.entry()?;
        let rel = rel.join(item.file_name());
        let entry = rel.display().to_string();
        let (real, meta) = resolve_entry(root, &dir.join(item.file_name()), &entry)?;
        let dst = to.join(item.file_name());
        if meta.is_dir() {
            if open_dirs.contains(&real) {
                return Err(UnpackError::BadLink {
                    entry,
                    why: "leads back to a directory holding it (a loop)",
                });
            }
            open_dirs.push(real.clone());
            copy_tree(root, &real, &dst, &rel, open_dirs, budget)?;
            open_dirs.pop();
        } else if meta.is_file() {
            let mut file = open_chart_file(&real, &entry)?;
            budget.copy_file(&mut file, &dst, &entry)?;
        } else {
            return Err(UnpackError::Special {
                entry,
                kind: action_runner::input_file::file_kind(&meta).into(),
            });
        }
    }
    Ok(())
}

/// What `path` (inside the chart) is: itself, or for a symbolic link what it resolves to, which
/// must be inside `root`.
fn resolve_entry(
    root: &Path,
    path: &Path,
    entry: &str,
) -> Result<(PathBuf, std::fs::Metadata), UnpackError> {
    let read_error = |source| UnpackError::Read {
        entry: entry.into(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(read_error)?;
    if !meta.file_type().is_symlink() {
        return Ok((path.to_path_buf(), meta));
    }
    let Ok(real) = path.canonicalize() else {
        return Err(UnpackError::BadLink {
            entry: entry.into(),
            why: "does not resolve",
        });
    };
    if !real.starts_with(root) {
        return Err(UnpackError::LinkOut {
            entry: entry.into(),
            target: real.display().to_string(),
        });
    }
    let meta = std::fs::symlink_metadata(&real).map_err(read_error)?;
    Ok((real, meta))
}

/// Opens a chart's regular file at the resolved path `real` without following a link and
/// without blocking, and checks through the descriptor that it is a regular file.
fn open_chart_file(real: &Path, entry: &str) -> Result<std::fs::File, UnpackError> {
    let read_error = |source| UnpackError::Read {
        entry: entry.into(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(real)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(UnpackError::Special {
            entry: entry.into(),
            kind: action_runner::input_file::file_kind(&meta).into(),
        });
    }
    Ok(file)
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

    /// An archive header for `path` (written as is: absolute paths and `..` too), of `kind`
    /// and `size`, mode 0644.
    fn header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        h
    }

    /// A gzipped tar archive of `entries`: path, kind, content. Directories and links hold no
    /// content; a link's target is `/etc/hostname`.
    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, kind, data) in entries {
            let mut h = header(path, *kind, data.len() as u64);
            if kind.is_symlink() || kind.is_hard_link() {
                h.set_link_name_literal("/etc/hostname").unwrap();
                h.set_cksum();
            }
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    const FILE: tar::EntryType = tar::EntryType::Regular;
    const DIR: tar::EntryType = tar::EntryType::Directory;
    const CHART_YAML: &[u8] = b"apiVersion: v2\nname: mychart\nversion: 0.1.0\n";

    /// What unpacking `bytes` says, and that nothing was written outside `dest`.
    fn unpack_err(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let e = unpack(bytes, &dest).unwrap_err();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only dest was written to");
        e.to_string()
    }

    /// The entries a refused archive holds before its hostile one: a chart's start.
    fn with_chart<'a>(
        hostile: (&'a str, tar::EntryType, &'a [u8]),
    ) -> Vec<(&'a str, tar::EntryType, &'a [u8])> {
        vec![
            ("mychart/", DIR, b""),
            ("mychart/Chart.yaml", FILE, CHART_YAML),
            hostile,
        ]
    }

    #[test]
    fn a_chart_archive_is_unpacked_as_regular_files_and_directories() {
        let long = format!("mychart/templates/{}.yaml", "l".repeat(150));
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut pax = header("pax_global_header", tar::EntryType::XGlobalHeader, 0);
        let comment = b"52 comment=0123456789012345678901234567890123456789\n";
        pax.set_size(comment.len() as u64);
        pax.set_cksum();
        b.append(&pax, &comment[..]).unwrap();
        b.append(&header("mychart/", DIR, 0), &b""[..]).unwrap();
        let mut chart_yaml = header("./mychart/Chart.yaml", FILE, CHART_YAML.len() as u64);
        chart_yaml.set_mode(0o4755);
        chart_yaml.set_cksum();
        b.append(&chart_yaml, CHART_YAML).unwrap();
        // A long name: the tar crate writes a GNU long-name entry before it.
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"a: b\n\n"[..]).unwrap();
        let bytes = b.into_inner().unwrap().finish().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let top = unpack(bytes.as_slice(), dir.path()).unwrap();
        assert_eq!(top, dir.path().join("mychart"));
        assert_eq!(std::fs::read(top.join("Chart.yaml")).unwrap(), CHART_YAML);
        assert_eq!(std::fs::read(dir.path().join(&long)).unwrap(), b"a: b\n\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(top.join("Chart.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7111, 0, "no setuid, no execute: {mode:o}");
        assert!(!dir.path().join("pax_global_header").exists());
    }

    #[test]
    fn links_and_special_entries_are_refused() {
        use tar::EntryType as T;
        for (kind, says) in [
            (T::Symlink, "a symbolic link"),
            (T::Link, "a hard link"),
            (T::Fifo, "a FIFO"),
            (T::Char, "a character device"),
            (T::Block, "a block device"),
        ] {
            let e = unpack_err(&archive(&with_chart(("mychart/files/tok", kind, b""))));
            assert_eq!(
                e,
                format!(
                    "entry \"mychart/files/tok\" is {says} (a chart holds regular files and \
                     directories only)"
                )
            );
        }
        // A sparse entry: the tar crate reads its map first (this one has none and is refused
        // as damaged); one it reads is refused as a sparse file.
        let e = unpack_err(&archive(&with_chart(("mychart/s", T::GNUSparse, b""))));
        assert!(e.starts_with("not a chart archive (.tgz)"), "{e}");
    }

    #[test]
    fn paths_outside_the_chart_are_refused() {
        for (path, says) in [
            (
                "/etc/cron.d/x",
                "entry \"/etc/cron.d/x\" is an absolute path",
            ),
            (
                "mychart/../../x",
                "entry \"mychart/../../x\" has a '..' component",
            ),
            ("../x", "entry \"../x\" has a '..' component"),
            (
                "other/Chart.yaml",
                "entry \"other/Chart.yaml\" is outside the top-level directory \"mychart\" (a \
                 chart archive holds one directory)",
            ),
            (
                "Chart.yaml",
                "entry \"Chart.yaml\" is outside the top-level directory \"mychart\" (a chart \
                 archive holds one directory)",
            ),
            (
                "mychart/Chart.yaml",
                "entry \"mychart/Chart.yaml\" appears twice",
            ),
        ] {
            assert_eq!(unpack_err(&archive(&with_chart((path, FILE, b"x")))), says);
        }
        let e = unpack_err(&archive(&[("values.yaml", FILE, b"x")]));
        assert!(e.contains("is a file at the archive's top level"), "{e}");
        let e = unpack_err(&archive(&[("mychart/values.yaml", FILE, b"x")]));
        assert_eq!(e, "holds no Chart.yaml in its top-level directory");
        let e = unpack_err(b"not gzip at all");
        assert!(e.starts_with("not a chart archive (.tgz)"), "{e}");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let names: Vec<String> = (0..=MAX_CHART_ENTRIES)
            .map(|i| format!("mychart/f{i}"))
            .collect();
        let mut entries = with_chart(("mychart/templates/", DIR, b""));
        entries.extend(names.iter().map(|n| (n.as_str(), FILE, &b""[..])));
        let e = unpack_err(&archive(&entries));
        assert_eq!(
            e,
            "the chart holds more than 10000 entries, the most unpacked"
        );
    }

    #[test]
    fn files_over_the_budgets_are_refused() {
        let big = vec![b'x'; MAX_CHART_FILE_BYTES as usize + 1];
        let e = unpack_err(&archive(&with_chart(("mychart/big", FILE, &big))));
        assert_eq!(
            e,
            "entry \"mychart/big\" holds more than 5242880 bytes (5 MiB), the most one file of a \
             chart may hold (Helm 3's limit)"
        );
        // Files at the limit each, over the chart's budget together.
        let at_limit = vec![b'x'; MAX_CHART_FILE_BYTES as usize];
        let names: Vec<String> = (0..5).map(|i| format!("mychart/f{i}")).collect();
        let mut entries = with_chart(("mychart/files/", DIR, b""));
        entries.extend(
            names
                .iter()
                .map(|n| (n.as_str(), FILE, at_limit.as_slice())),
        );
        let e = unpack_err(&archive(&entries));
        assert_eq!(
            e,
            "the chart holds more than 20971520 bytes (20 MiB), the most unpacked"
        );
    }

    /// A gzip bomb: one entry of 1 GiB of zeros (about 1 MiB compressed), made and read as
    /// streams. Unpacking stops at the file's budget: no more than that is written or held.
    #[test]
    fn a_gzip_bomb_is_refused_while_streaming() {
        const GIB: u64 = 1024 * 1024 * 1024;
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        b.append(
            &header("mychart/Chart.yaml", FILE, CHART_YAML.len() as u64),
            CHART_YAML,
        )
        .unwrap();
        b.append(
            &header("mychart/zeros", FILE, GIB),
            std::io::repeat(0).take(GIB),
        )
        .unwrap();
        let bytes = b.into_inner().unwrap().finish().unwrap();
        assert!(bytes.len() < 8 * 1024 * 1024, "{}", bytes.len());
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(bytes.as_slice(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("entry \"mychart/zeros\" holds more than 5242880 bytes"),
            "{e}"
        );
        let written = std::fs::metadata(dir.path().join("mychart/zeros"))
            .unwrap()
            .len();
        assert_eq!(written, MAX_CHART_FILE_BYTES + 1);
    }

    /// The budget on the gzip stream also bounds what the tar crate reads for itself: a long
    /// name of 1 GiB is cut at [`MAX_ARCHIVE_STREAM_BYTES`].
    #[test]
    fn a_long_name_bomb_is_cut() {
        const GIB: u64 = 1024 * 1024 * 1024;
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = header("././@LongLink", tar::EntryType::GNULongName, GIB);
        h.set_cksum();
        b.append(&h, std::io::repeat(b'a').take(GIB)).unwrap();
        let bytes = b.into_inner().unwrap().finish().unwrap();
        let e = unpack_err(&bytes);
        assert_eq!(
            e,
            "the chart holds more than 20971520 bytes (20 MiB), the most unpacked"
        );
    }

    /// A chart directory to copy: `Chart.yaml` and `templates/cm.yaml`.
    fn chart_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("mychart");
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        std::fs::write(chart.join("Chart.yaml"), CHART_YAML).unwrap();
        std::fs::write(chart.join("templates/cm.yaml"), "kind: ConfigMap\n").unwrap();
        dir
    }

    fn copy_err(dir: &Path) -> String {
        let out = tempfile::tempdir().unwrap();
        copy_chart_dir(&dir.join("mychart"), &out.path().join("c"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_chart_directory_is_copied_following_links_within_it() {
        use std::os::unix::fs::symlink;
        // Kubernetes' layout of a mounted ConfigMap: the files are links into `..data`.
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("mychart");
        std::fs::create_dir_all(chart.join("..2026_01_01/templates")).unwrap();
        std::fs::write(chart.join("..2026_01_01/Chart.yaml"), CHART_YAML).unwrap();
        std::fs::write(
            chart.join("..2026_01_01/templates/cm.yaml"),
            "kind: ConfigMap\n",
        )
        .unwrap();
        symlink("..2026_01_01", chart.join("..data")).unwrap();
        symlink("..data/Chart.yaml", chart.join("Chart.yaml")).unwrap();
        symlink("..data/templates", chart.join("templates")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let to = out.path().join("c");
        copy_chart_dir(&chart, &to).unwrap();
        assert_eq!(std::fs::read(to.join("Chart.yaml")).unwrap(), CHART_YAML);
        let copied = std::fs::symlink_metadata(to.join("templates")).unwrap();
        assert!(copied.is_dir(), "a directory, not a link");
        assert_eq!(
            std::fs::read_to_string(to.join("templates/cm.yaml")).unwrap(),
            "kind: ConfigMap\n"
        );
    }

    #[test]
    fn links_leaving_a_chart_directory_are_refused() {
        use std::os::unix::fs::symlink;
        let dir = chart_dir();
        let secret = dir.path().join("secret-token");
        std::fs::write(&secret, "s3cr3t-t0ken").unwrap();
        std::fs::create_dir(dir.path().join("mychart/files")).unwrap();
        symlink(&secret, dir.path().join("mychart/files/tok")).unwrap();
        let e = copy_err(dir.path());
        assert!(
            e.starts_with("entry \"files/tok\" is a symbolic link leaving the chart directory"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"), "{e}");

        let dir = chart_dir();
        symlink("..", dir.path().join("mychart/templates/up")).unwrap();
        let e = copy_err(dir.path());
        assert!(
            e.contains("entry \"templates/up\" is a symbolic link"),
            "{e}"
        );

        let dir = chart_dir();
        symlink("../templates", dir.path().join("mychart/templates/loop")).unwrap();
        assert_eq!(
            copy_err(dir.path()),
            "entry \"templates/loop\" is a symbolic link that leads back to a directory holding \
             it (a loop)"
        );

        let dir = chart_dir();
        symlink("nowhere", dir.path().join("mychart/dangling")).unwrap();
        assert_eq!(
            copy_err(dir.path()),
            "entry \"dangling\" is a symbolic link that does not resolve"
        );
    }

    #[test]
    fn special_files_in_a_chart_directory_are_refused_at_once() {
        let dir = chart_dir();
        let fifo = dir.path().join("mychart/templates/fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Refused without opening it: a copy that opened the FIFO would block here for good.
        assert_eq!(
            copy_err(dir.path()),
            "entry \"templates/fifo\" is a FIFO (a chart holds regular files and directories only)"
        );
        // A link to a FIFO inside the chart: the same.
        std::fs::rename(&fifo, dir.path().join("mychart/fifo")).unwrap();
        std::os::unix::fs::symlink("../fifo", &fifo).unwrap();
        let e = copy_err(dir.path());
        assert!(e.contains("is a FIFO"), "{e}");
    }

    #[test]
    fn a_chart_directory_has_the_budgets_of_an_archive() {
        let dir = chart_dir();
        let big = dir.path().join("mychart/big");
        std::fs::write(&big, vec![b'x'; MAX_CHART_FILE_BYTES as usize + 1]).unwrap();
        assert!(copy_err(dir.path()).starts_with("entry \"big\" holds more than 5242880 bytes"));
        std::fs::remove_file(&big).unwrap();
        for i in 0..MAX_CHART_ENTRIES {
            std::fs::write(dir.path().join(format!("mychart/templates/f{i}")), "").unwrap();
        }
        assert_eq!(
            copy_err(dir.path()),
            "the chart holds more than 10000 entries, the most unpacked"
        );
    }

    #[test]
    fn bad_sources() {
        for ((name, repo), named) in [
            (("", ""), "chart.name"),
            (("x", "ftp://a"), "chart.repo"),
            (("./nope", ""), "./nope"),
            (("nope", ""), "chart.name"),
        ] {
            let e = resolve(&chart(name, repo, "")).unwrap_err().to_string();
            assert!(e.contains(named), "{name} {repo}: {e}");
        }
    }
}

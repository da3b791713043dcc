//! One bounded reader for every file a runner reads: the input manifest, and in the runners
//! the files the manifest or the variables name (`valuesFromFile`, `RUNNER_HELM_RELEASE_PATH`,
//! `chart.auth.usernameFile`, ...).
//!
//! A file is read only when it is a regular file of at most a given size:
//! - the path is looked at first (`stat`, which follows symbolic links), and anything else than a
//!   regular file (a directory, FIFO, character or block device such as `/dev/zero`, socket) is
//!   refused before it is opened, so opening never has a device's side effects;
//! - it is then opened with `O_NONBLOCK`, so that even a FIFO put in its place meanwhile does not
//!   block the open (a FIFO's open for reading waits for a writer otherwise), and checked again
//!   through the open descriptor (`fstat`): what is read is what was checked;
//! - at most `max_bytes + 1` bytes are read (`Read::take`), so a file that grows after the check
//!   is refused too, and memory is never reserved by the size the file claims.
//!
//! Symbolic links are followed for the path given: the paths are the user's own (a variable, a
//! field of the manifest), and Kubernetes mounts ConfigMaps and Secrets as symbolic links into
//! a `..data` directory, so refusing links would refuse them. Inside chart trees, which come
//! from elsewhere, links are handled by the Helm runner's own rules (`action-runner-helm`,
//! `chart`).
//!
//! Errors are one line naming the file as the caller names it (`what`: the field or variable
//! and the path), never quoting the content.

use std::fs::{File, FileType, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::RunnerError;

/// Opens `path` for reading if it is a regular file (see the [module](self) documentation):
/// refused before opening when it is not one, opened without blocking, and checked again
/// through the open descriptor.
///
/// `what` names the file in errors as the user knows it: the field or variable, and the path
/// (for example `valuesFromFile /etc/values.yaml`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) (exit 2), one line: `<what>: cannot
/// read: <why>` when it is missing or unreadable, `<what>: is a FIFO, not a regular file` (a
/// directory, a character device, ...) otherwise.
pub fn open(path: &Path, what: &str) -> Result<File, RunnerError> {
    let cannot_read =
        |e: std::io::Error| RunnerError::invalid_input(format!("{what}: cannot read")).because(e);
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    require_regular(&meta, what)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot_read)?;
    require_regular(&file.metadata().map_err(cannot_read)?, what)?;
    Ok(file)
}

/// Reads the regular file at `path`, at most `max_bytes` bytes (see [`open`]).
///
/// # Errors
/// As [`open`]; and `<what>: is larger than <max_bytes> bytes (<in KiB or MiB>), the most read`
/// when the file holds more, checked on its size before reading and on what was read.
pub fn read_bytes(path: &Path, what: &str, max_bytes: u64) -> Result<Vec<u8>, RunnerError> {
    let file = open(path, what)?;
    let too_large = || {
        RunnerError::invalid_input(format!(
            "{what}: is larger than {max_bytes} bytes ({}), the most read",
            human(max_bytes)
        ))
    };
    let size = file
        .metadata()
        .map_err(|e| RunnerError::invalid_input(format!("{what}: cannot read")).because(e))?
        .len();
    if size > max_bytes {
        return Err(too_large());
    }
    // Reserve what the file holds now (at most `max_bytes`), and read one byte more than allowed,
    // so that a file that grew since is seen to be too large.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| RunnerError::invalid_input(format!("{what}: cannot read")).because(e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads the regular file at `path` as UTF-8 text, at most `max_bytes` bytes (see
/// [`read_bytes`]).
///
/// # Errors
/// As [`read_bytes`]; and `<what>: is not UTF-8 text`.
pub fn read_to_string(path: &Path, what: &str, max_bytes: u64) -> Result<String, RunnerError> {
    String::from_utf8(read_bytes(path, what, max_bytes)?)
        .map_err(|_| RunnerError::invalid_input(format!("{what}: is not UTF-8 text")))
}

fn require_regular(meta: &Metadata, what: &str) -> Result<(), RunnerError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(RunnerError::invalid_input(format!(
        "{what}: is {}, not a regular file",
        file_kind(meta)
    )))
}

/// What kind of file `meta` describes, in words: `a directory`, `a FIFO`, `a character
/// device`, `a block device`, `a socket`, `a symbolic link`, `a regular file`.
pub fn file_kind(meta: &Metadata) -> &'static str {
    /// Whether a file is of a kind.
    type Is = fn(&FileType) -> bool;
    let kinds: [(Is, &str); 7] = [
        (FileType::is_file, "a regular file"),
        (FileType::is_dir, "a directory"),
        (FileType::is_symlink, "a symbolic link"),
        (FileTypeExt::is_fifo, "a FIFO"),
        (FileTypeExt::is_char_device, "a character device"),
        (FileTypeExt::is_block_device, "a block device"),
        (FileTypeExt::is_socket, "a socket"),
    ];
    let t = meta.file_type();
    kinds
        .iter()
        .find(|(is, _)| is(&t))
        .map_or("a special file", |(_, kind)| kind)
}

/// `bytes` in the largest binary unit it is a whole number of: `3 MiB`, `64 KiB`, `100 bytes`.
pub fn human(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn err(path: &Path, max: u64) -> String {
        let e = read_bytes(path, "valuesFromFile x", max).unwrap_err();
        assert_eq!(e.exit(), crate::Exit::InvalidInput);
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        text
    }

    /// A FIFO made in `dir` (`mkfifo`).
    pub(crate) fn fifo_in(dir: &Path) -> std::path::PathBuf {
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        fifo
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        // Refused before any read: a reader that waited on the FIFO would block here for good.
        assert_eq!(
            err(&fifo, 100),
            "valuesFromFile x: is a FIFO, not a regular file"
        );
        // Opening itself does not block either, even without the check before it.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        assert!(require_regular(&f.metadata().unwrap(), "f").is_err());
    }

    #[test]
    fn devices_and_directories_are_refused() {
        assert_eq!(
            err(Path::new("/dev/zero"), 100),
            "valuesFromFile x: is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            err(dir.path(), 100),
            "valuesFromFile x: is a directory, not a regular file"
        );
        let missing = err(&dir.path().join("missing"), 100);
        assert!(
            missing.starts_with("valuesFromFile x: cannot read: "),
            "{missing}"
        );
    }

    #[test]
    fn a_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(
            err(&path, 100),
            "valuesFromFile x: is a socket, not a regular file"
        );
    }

    #[test]
    fn an_oversize_file_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, "secret-content ".repeat(100)).unwrap();
        let e = err(&path, 1024);
        assert_eq!(
            e,
            "valuesFromFile x: is larger than 1024 bytes (1 KiB), the most read"
        );
        assert_eq!(read_bytes(&path, "v", 1500).unwrap().len(), 1500);
        let e = read_to_string(&path, "v", 1499).unwrap_err().to_string();
        assert!(!e.contains("secret-content"), "{e}");
    }

    #[test]
    fn text_must_be_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, [0xff, 0xfe, b'a']).unwrap();
        assert_eq!(
            read_to_string(&path, "v", 10).unwrap_err().to_string(),
            "v: is not UTF-8 text"
        );
        std::fs::write(&path, "a: b\n").unwrap();
        assert_eq!(read_to_string(&path, "v", 10).unwrap(), "a: b\n");
    }

    /// A link given as the path is followed (Kubernetes mounts ConfigMaps and Secrets as links);
    /// what it points to must be a regular file all the same.
    #[test]
    fn a_link_given_as_the_path_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "x: 1\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_to_string(&link, "v", 10).unwrap(), "x: 1\n");
        let to_device = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &to_device).unwrap();
        assert_eq!(
            err(&to_device, 10),
            "valuesFromFile x: is a character device, not a regular file"
        );
    }

    #[test]
    fn units() {
        assert_eq!(human(3 * 1024 * 1024), "3 MiB");
        assert_eq!(human(64 * 1024), "64 KiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}

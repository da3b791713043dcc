//! Which helm CLI the runner drives, and the argument vectors that differ between Helm 3 and
//! Helm 4.
//!
//! The version is read once per run, from the binary's Go build information
//! ([`from_build_info`]: the main module `helm.sh/helm/v4` at `v4.3.2`), or, for a binary
//! without it, with `helm version --template {{.Version}}` (Helm prints its `internal/version`
//! stamp, `v3.22.0` or `v4.3.2`; a build without the `-X` stamp prints `v4.3`). Everything else the runner passes is the same for both majors; what differs is
//! decided here, in one place, from [`HelmVersion::major`]:
//!
//! | what | Helm 3 | Helm 4 |
//! |------|--------|--------|
//! | wait for resources | `--wait` (poll readiness) | `--wait=watcher` (kstatus watch; `--wait` alone means the same, spelled out to be explicit) |
//! | no wait | nothing | nothing (Helm 4's default strategy `hookOnly`: hooks only, as Helm 3 without `--wait`) |
//! | undo a failed install/upgrade | `--atomic` | `--rollback-on-failure` (`--atomic` is its deprecated alias) |
//! | rollback dry run | `--dry-run` (a boolean) | `--dry-run=server` (a mode, as install's) |
//! | `helm registry login` without `--plain-http` to a registry that answers in plain HTTP | falls back to plain HTTP and sends the credentials: the runner writes them into Helm's registry configuration itself instead (no login) | refuses |
//!
//! The same `--wait` rule holds for `install`, `upgrade`, `uninstall` and `rollback`.
//!
//! The same in both (checked with each binary's `--help` and source): the flags of the login
//! to a private chart source, `helm repo add <name> <url> --username U --password-stdin
//! [--ca-file F] [--pass-credentials]` and `helm registry login <host> --username U
//! --password-stdin [--ca-file F] [--plain-http]` (`--plain-http` is `WithPlainHTTPLogin` in
//! both; `--insecure` only skips TLS verification), each reading the password from standard
//! input and removing one trailing `\n`, then one `\r` (`cmd/helm/repo_add.go`,
//! `registry_login.go` of Helm 3; `pkg/cmd/` of Helm 4); and `helm pull`'s `--ca-file`,
//! `--pass-credentials`, `--plain-http`, `--repo`, `--version`, `--destination`.
//!
//! Sources: `helm.sh/helm/v4` `pkg/cmd/flags.go` (`AddWaitFlag`: `NoOptDefVal` is `watcher`,
//! the default `hookOnly`), `pkg/cmd/install.go`, `upgrade.go` (`--rollback-on-failure`) and
//! `rollback.go` (`--dry-run` a string); `helm.sh/helm/v3` `cmd/helm/flags.go` (`--wait` is a
//! boolean), `install.go`, `upgrade.go` (`--atomic`) and `rollback.go` (`--dry-run` a boolean).

use std::fmt;

/// A helm CLI version, as `helm version --template {{.Version}}` prints it: `v<major>.<minor>`
/// with an optional `.<patch>`, pre-release (`-rc.1`) and build metadata (`+g1234`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmVersion {
    /// Major version: 3 or 4 (others are refused by [`HelmVersion::parse`]).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version; 0 when the binary reports none (an unstamped build).
    pub patch: u32,
    /// The text helm printed, trimmed (for messages and the status).
    pub text: String,
}

/// Why a helm version could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not `v<major>.<minor>[.<patch>][-pre][+meta]`.
    #[error("helm reported version {0:?}, which is not v<major>.<minor>.<patch>")]
    Malformed(String),
    /// A major version this runner does not drive.
    #[error("helm reported version {0:?}: the runner drives Helm 3 (3.x) and Helm 4 (4.x) only")]
    Unsupported(String),
}

impl HelmVersion {
    /// Parses `helm version --template {{.Version}}`'s output (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`VersionError::Malformed`] when the text is not a version, [`VersionError::Unsupported`]
    /// when its major is not 3 or 4.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let text = text.trim();
        let malformed = || VersionError::Malformed(text.to_string());
        let core = text.strip_prefix('v').ok_or_else(malformed)?;
        let core = core.split(['+', '-']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let mut number = |required: bool| -> Result<u32, VersionError> {
            match parts.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().map_err(|_| malformed())
                }
                None if !required => Ok(0),
                _ => Err(malformed()),
            }
        };
        let major = number(true)?;
        let minor = number(true)?;
        let patch = number(false)?;
        if parts.next().is_some() {
            return Err(malformed());
        }
        if !matches!(major, 3 | 4) {
            return Err(VersionError::Unsupported(text.to_string()));
        }
        Ok(HelmVersion {
            major,
            minor,
            patch,
            text: text.to_string(),
        })
    }

    /// The arguments that make helm wait (`wait: true`) or not (`wait: false`) for the
    /// release's resources to be ready, for this major version (see the module's table).
    pub fn wait_args(&self, wait: bool) -> Vec<&'static str> {
        match (self.major, wait) {
            (_, false) => vec![],
            (3, true) => vec!["--wait"],
            (_, true) => vec!["--wait=watcher"],
        }
    }

    /// The flag that makes a failed install or upgrade undo itself (see the module's table).
    pub fn rollback_on_failure_arg(&self) -> &'static str {
        if self.major == 3 {
            "--atomic"
        } else {
            "--rollback-on-failure"
        }
    }

    /// The flag of a dry-run `helm rollback`: validated against the cluster where the major
    /// allows it (see the module's table).
    pub fn rollback_dry_run_arg(&self) -> &'static str {
        if self.major == 3 {
            "--dry-run"
        } else {
            "--dry-run=server"
        }
    }

    /// Whether `helm registry login` without `--plain-http` falls back to plain HTTP, and logs
    /// in over it, credentials and all, when the registry answers a TLS handshake in plain HTTP
    /// (so does anyone on the way): Helm 3 does (`helm.sh/helm/v3` `pkg/registry/fallback.go`,
    /// kept "for backward compatibility", and `Client.Login`, which then retries with
    /// `PlainHTTP` set); Helm 4 does not (`server gave HTTP response to HTTPS client`).
    /// Seen with both binaries against a plain-HTTP registry on loopback. `helm pull` of both
    /// never sends credentials after such a fallback (ORAS refuses to forward them across the
    /// change of scheme).
    pub fn registry_login_falls_back_to_plain_http(&self) -> bool {
        self.major == 3
    }

    /// Whether Helm applies the chart's objects with server-side apply by default: Helm 4 for
    /// an install (`--server-side` defaults to `true`) and for an upgrade of a release it
    /// installed so (`auto`); Helm 3 never does. The runner passes no `--server-side`, so
    /// Helm's default holds; this is reported, not acted on.
    pub fn server_side_apply_by_default(&self) -> bool {
        self.major >= 4
    }
}

impl fmt::Display for HelmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_and_unstamped_versions() {
        let v = HelmVersion::parse("v4.3.1\n").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (4, 3, 1));
        assert_eq!(v.to_string(), "v4.3.1");
        let v = HelmVersion::parse("v3.22.0+g1234abc").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (3, 22, 0));
        let v = HelmVersion::parse("v4.3").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (4, 3, 0));
        let v = HelmVersion::parse("v4.0.0-rc.1").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (4, 0, 0));
    }

    #[test]
    fn refuses_other_texts_and_majors() {
        for bad in [
            "",
            "4.3.1",
            "v4",
            "v4.x.1",
            "v4.3.1.2",
            "version.BuildInfo{}",
        ] {
            assert!(
                matches!(HelmVersion::parse(bad), Err(VersionError::Malformed(_))),
                "{bad:?}"
            );
        }
        for old in ["v2.17.0", "v5.0.0"] {
            let e = HelmVersion::parse(old).unwrap_err();
            assert!(matches!(e, VersionError::Unsupported(_)), "{old}");
            assert!(e.to_string().contains("Helm 3 (3.x) and Helm 4"), "{e}");
        }
    }

    #[test]
    fn wait_flags_per_major() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
        assert_eq!(v3.wait_args(true), ["--wait"]);
        assert_eq!(v4.wait_args(true), ["--wait=watcher"]);
        assert!(v3.wait_args(false).is_empty() && v4.wait_args(false).is_empty());
        assert!(!v3.server_side_apply_by_default() && v4.server_side_apply_by_default());
    }

    #[test]
    fn registry_login_fallback_per_major() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.2").unwrap();
        assert!(v3.registry_login_falls_back_to_plain_http());
        assert!(!v4.registry_login_falls_back_to_plain_http());
    }

    #[test]
    fn rollback_flags_per_major() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
        assert_eq!(v3.rollback_on_failure_arg(), "--atomic");
        assert_eq!(v4.rollback_on_failure_arg(), "--rollback-on-failure");
        assert_eq!(v3.rollback_dry_run_arg(), "--dry-run");
        assert_eq!(v4.rollback_dry_run_arg(), "--dry-run=server");
    }
}

/// The helm binary's version from the build information Go writes into every binary (section
/// `.go.buildinfo`, Go 1.18 and later; the format of Go's `debug/buildinfo`): the `mod` line
/// names the main module and its version, e.g. `mod  helm.sh/helm/v4  v4.3.1  h1:...`. Reads
/// the ELF headers and that one section only, so it costs far less than starting helm, which
/// `helm version` does. `None` when the binary is not an ELF Go binary with inline build
/// information, or its main module is not `helm.sh/helm/v<major>` at a tagged version (a
/// `(devel)` build): the caller then asks helm itself.
pub fn from_build_info(binary: &std::path::Path) -> Option<HelmVersion> {
    use object::{Object, ObjectSection};
    // A regular file only, opened without blocking (a FIFO is not waited on).
    let file = action_runner::input_file::open(binary, "RUNNER_HELM_BINARY_PATH").ok()?;
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let data = elf.section_by_name(".go.buildinfo")?.data().ok()?;
    let (path, version) = main_module(data)?;
    let major = path.strip_prefix("helm.sh/helm/v")?;
    let parsed = HelmVersion::parse(&version).ok()?;
    (parsed.major.to_string() == major).then_some(parsed)
}

/// The main module's path and version from a `.go.buildinfo` section: a 32-byte header
/// (`\xff Go buildinf:`, pointer size, flags; flag 2: the strings follow inline), then the Go
/// version and the module information as unsigned-varint-prefixed strings; the module
/// information is framed by 16 bytes on each side and holds a `mod\t<path>\t<version>` line.
fn main_module(data: &[u8]) -> Option<(String, String)> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    if !data.starts_with(MAGIC) || data.len() < 32 || data[15] & 2 == 0 {
        return None;
    }
    let mut rest = &data[32..];
    let mut string = || -> Option<&[u8]> {
        let mut len: usize = 0;
        for (i, b) in rest.iter().enumerate().take(10) {
            len |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                let s = rest.get(i + 1..i + 1 + len)?;
                rest = &rest[i + 1 + len..];
                return Some(s);
            }
        }
        None
    };
    let _go_version = string()?;
    let info = string()?;
    let info = String::from_utf8_lossy(info);
    info.lines().find_map(|l| {
        let mut f = l.split('\t');
        (f.next()?.ends_with("mod"))
            .then(|| Some((f.next()?.to_string(), f.next()?.to_string())))
            .flatten()
    })
}

#[cfg(test)]
mod build_info_tests {
    use super::*;

    fn section(info: &str) -> Vec<u8> {
        let mut d = b"\xff Go buildinf:".to_vec();
        d.extend([8, 2]);
        d.resize(32, 0);
        for s in ["go1.26.8", info] {
            let mut n = s.len();
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                d.push(if n > 0 { b | 0x80 } else { b });
                if n == 0 {
                    break;
                }
            }
            d.extend(s.as_bytes());
        }
        d
    }

    #[test]
    fn the_main_module_is_read_from_the_build_info() {
        let framing = "0123456789abcdef";
        let info = format!(
            "{framing}path\thelm.sh/helm/v4/cmd/helm\nmod\thelm.sh/helm/v4\tv4.3.1\th1:x=\ndep\tk8s.io/api\tv0.34.0\n{framing}"
        );
        assert_eq!(
            main_module(&section(&info)),
            Some(("helm.sh/helm/v4".into(), "v4.3.1".into()))
        );
        assert_eq!(main_module(b"not a build info section at all, no"), None);
    }

    /// The helm binaries `hack/install-tools.sh` builds (when present: `KAR_HELM4`, `KAR_HELM3`).
    #[test]
    fn the_pinned_helms_are_recognised_without_running_them() {
        for (var, major) in [("KAR_HELM4", 4), ("KAR_HELM3", 3)] {
            let Some(path) = std::env::var_os(var) else {
                continue;
            };
            let v = from_build_info(std::path::Path::new(&path)).expect("build info");
            assert_eq!(v.major, major, "{var}");
        }
    }
}

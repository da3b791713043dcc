//! What one action is: its owner, its name and its input.
//!
//! A Job retries its pod, and the retried pod must carry on with what its predecessor started
//! (adopt it) rather than start it twice; but the same `RUNNER_CONTEXT_NAME` run again with
//! another input, or by another Job, is another action, and what the first one made must never
//! be reported as the second one's outcome. So an action is identified by three things, which
//! the runners store on what they create (Helm's release labels, the Workflow's labels):
//!
//! - its owner's uid (`RUNNER_CONTEXT_PLATFORM_OWNER_UID`, the Job: the same for each of its
//!   pods), or none;
//! - its name (`RUNNER_CONTEXT_NAME`);
//! - an [`InputDigest`] of its effective input: the input manifest as read, and whatever else
//!   the runner acts on (for Helm: the command, the release file, each values layer as read and
//!   the chart's content; see each runner's docs).
//!
//! A retry is the same action with the same input: same owner, name and digest. Anything else
//! is a new action.
//!
//! The digest is SHA-256 over the parts, each framed by its name and length, cut to
//! [`DIGEST_LEN`] hexadecimal digits so that it fits a label value (at most 63 characters,
//! apimachinery's `IsValidLabelValue`). It is not a secret's encoding, but it is a function of
//! input that may hold secrets: like any hash of a low-entropy value alone it could be guessed
//! by trying candidates, which is why every part is hashed together with the manifest, never a
//! value on its own.

use sha2::{Digest, Sha256};

/// Label holding [`InputDigest::finish`] on what a runner creates (Helm release revisions,
/// Workflows).
pub const INPUT_DIGEST_LABEL: &str = "kube-action-runners.io/input-digest";

/// Hexadecimal digits of SHA-256 kept in the label: 40 (160 bits, the length of a Git object
/// name), within a label value's 63 characters.
pub const DIGEST_LEN: usize = 40;

/// A digest of an action's effective input, built part by part. Cheap to clone, so that a
/// runner can add its own parts to the one the [`Manager`](crate::Manager) started from the
/// manifest.
#[derive(Clone, Default)]
pub struct InputDigest {
    hasher: Sha256,
}

impl std::fmt::Debug for InputDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InputDigest({})", self.finish())
    }
}

impl InputDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one part: `name` (what it is, for example `manifest` or `valuesFrom[0]`) and its
    /// bytes. Each part is framed by its name's and its content's lengths, so no two different
    /// sequences of parts give the same stream.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> &mut Self {
        self.hasher.update((name.len() as u64).to_be_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
        self
    }

    /// The digest so far: the first [`DIGEST_LEN`] lowercase hexadecimal digits of SHA-256.
    pub fn finish(&self) -> String {
        let full = self.hasher.clone().finalize();
        let mut hex = String::with_capacity(DIGEST_LEN);
        for b in full.iter().take(DIGEST_LEN / 2) {
            hex.push_str(&format!("{b:02x}"));
        }
        hex
    }
}

/// What a runner found stored under its action's name, compared with this action
/// ([`compare`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sameness {
    /// The same owner (or none on both sides) and the same input digest: a retry of this action.
    Same,
    /// Made under this name by another owner (a Job's uid that is not this runner's): another
    /// Job uses the same `RUNNER_CONTEXT_NAME`.
    OtherOwner {
        /// The other owner's uid.
        uid: String,
    },
    /// The same owner (or none), another input: a new action under the same name.
    OtherInput {
        /// The stored digest (`None` when there is none: made by an earlier runner version or by
        /// hand).
        digest: Option<String>,
    },
}

/// Compares what is stored (`stored_owner`: the owner uid recorded, `None` for none;
/// `stored_digest`: the [`INPUT_DIGEST_LABEL`] value) with this action's owner uid and digest.
/// The owner is compared first: another owner's object is never this action's, whatever its
/// input.
pub fn compare(
    stored_owner: Option<&str>,
    stored_digest: Option<&str>,
    owner: Option<&str>,
    digest: &str,
) -> Sameness {
    match stored_owner {
        Some(uid) if Some(uid) != owner => Sameness::OtherOwner { uid: uid.into() },
        None if owner.is_some() => Sameness::OtherInput {
            digest: stored_digest.map(Into::into),
        },
        _ if stored_digest == Some(digest) => Sameness::Same,
        _ => Sameness::OtherInput {
            digest: stored_digest.map(Into::into),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_frame_their_parts() {
        let d = |parts: &[(&str, &[u8])]| {
            let mut d = InputDigest::new();
            for (n, b) in parts {
                d.add(n, b);
            }
            d.finish()
        };
        let a = d(&[("manifest", b"ab"), ("values", b"c")]);
        assert_eq!(a.len(), DIGEST_LEN);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(a, d(&[("manifest", b"ab"), ("values", b"c")]));
        assert_ne!(a, d(&[("manifest", b"a"), ("values", b"bc")]));
        assert_ne!(a, d(&[("manifest", b"ab"), ("value", b"sc")]));
        assert_ne!(a, d(&[("manifest", b"ab")]));
        // SHA-256 of the framed stream, cut: a fixed vector, so the label never changes
        // between versions by accident.
        assert_eq!(d(&[]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4");
    }

    #[test]
    fn owner_first_then_input() {
        use Sameness::*;
        assert_eq!(compare(Some("u1"), Some("d"), Some("u1"), "d"), Same);
        assert_eq!(compare(None, Some("d"), None, "d"), Same);
        assert_eq!(
            compare(Some("u2"), Some("d"), Some("u1"), "d"),
            OtherOwner { uid: "u2".into() }
        );
        assert_eq!(
            compare(Some("u2"), Some("d"), None, "d"),
            OtherOwner { uid: "u2".into() }
        );
        assert_eq!(
            compare(None, Some("d"), Some("u1"), "d"),
            OtherInput {
                digest: Some("d".into())
            }
        );
        assert_eq!(
            compare(Some("u1"), Some("e"), Some("u1"), "d"),
            OtherInput {
                digest: Some("e".into())
            }
        );
        assert_eq!(
            compare(Some("u1"), None, Some("u1"), "d"),
            OtherInput { digest: None }
        );
    }
}

//! Kubernetes object-name rules, as the API server applies them.
//!
//! Source: `k8s.io/apimachinery/pkg/util/validation` (`IsDNS1123Label`, `IsDNS1123Subdomain`).
//! Checking them locally lets a runner reject a bad name with exit code 2 before it writes
//! anything to the cluster.

/// Which rule a name breaks. Its text is a sentence for after the name ("must be no more than 63
/// characters (has 64)").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than `max` characters.
    #[error("must be no more than {max} characters (has {len})")]
    TooLong {
        /// The limit.
        max: usize,
        /// The name's length.
        len: usize,
    },
    /// The name has characters the rule does not allow.
    #[error(
        "must consist of lower case alphanumeric characters{}, and must start and end with an \
         alphanumeric character (RFC 1123 {rule})",
        if *.rule == "subdomain" { ", '-' or '.'" } else { " or '-'" }
    )]
    Characters {
        /// `label` or `subdomain`.
        rule: &'static str,
    },
}

/// Maximum length of an RFC 1123 label (`IsDNS1123Label`): 63 characters.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Maximum length of an RFC 1123 subdomain (`IsDNS1123Subdomain`): 253 characters.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

/// Whether `part` is lower-case alphanumerics or `-`, starting and ending with an alphanumeric
/// (apimachinery's `dns1123LabelFmt`).
fn label_chars_ok(part: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|&b| alnum(b) || b == b'-')
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
}

/// Checks that a name is not empty and at most `max` characters long.
fn length_ok(value: &str, max: usize) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty);
    }
    if value.len() > max {
        return Err(NameError::TooLong {
            max,
            len: value.len(),
        });
    }
    Ok(())
}

/// Checks an RFC 1123 label (`IsDNS1123Label`): at most 63 characters, lower-case
/// alphanumerics or `-`, starting and ending with an alphanumeric. Namespaces must be labels.
///
/// # Errors
/// The [`NameError`] saying which rule `value` breaks: its length, or its characters.
pub fn dns1123_label(value: &str) -> Result<(), NameError> {
    length_ok(value, DNS1123_LABEL_MAX_LENGTH)?;
    if !label_chars_ok(value) {
        return Err(NameError::Characters { rule: "label" });
    }
    Ok(())
}

/// Checks an RFC 1123 subdomain (`IsDNS1123Subdomain`): at most 253 characters in all, and
/// dot-separated parts that are each lower-case alphanumerics or `-`, starting and ending with
/// an alphanumeric. Unlike a label, a part has no length limit of its own: apimachinery's
/// pattern (`dns1123SubdomainFmt`) bounds only the whole. Most object names (ConfigMap,
/// ServiceAccount, custom resources) must be subdomains.
///
/// # Errors
/// The [`NameError`] saying which rule `value` breaks: its length, or its characters.
pub fn dns1123_subdomain(value: &str) -> Result<(), NameError> {
    length_ok(value, DNS1123_SUBDOMAIN_MAX_LENGTH)?;
    if !value.split('.').all(label_chars_ok) {
        return Err(NameError::Characters { rule: "subdomain" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let long = |n| "a".repeat(n);
        for (name, ok) in [
            ("default", true),
            ("a-1", true),
            (&long(63), true),
            ("", false),
            ("Default", false),
            ("-a", false),
            ("a-", false),
            ("a.b", false),
            (&long(64), false),
        ] {
            assert_eq!(dns1123_label(name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("my.config-map").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("under_score").is_err());
        // No limit per part: a 64-character name is a valid ConfigMap name.
        assert!(dns1123_subdomain(&"a".repeat(64)).is_ok());
        assert!(dns1123_subdomain(&"a".repeat(253)).is_ok());
        let e = dns1123_subdomain(&"a".repeat(254)).unwrap_err().to_string();
        assert!(e.contains("no more than 253"), "{e}");
        let e = dns1123_subdomain("Upper").unwrap_err().to_string();
        assert!(e.contains("lower case"), "{e}");
        assert!(dns1123_subdomain(&["a".repeat(63), "b".repeat(63)].join(".")).is_ok());
        assert!(dns1123_subdomain("a.-b").is_err());
    }
}

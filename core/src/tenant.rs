//! The tenant identifier.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// The identifier of a tenant, e.g. `acme`.
///
/// A tenant id is a DNS label (1 to 63 characters of `a-z`, `0-9` and `-`, not starting or
/// ending with `-`) because the gateway resolves it from the request's host name
/// (`acme.example.com`). Keeping it that narrow also means it can be put into cache keys,
/// object-store keys and log lines without any escaping.
///
/// INVARIANT: the inner string always satisfies [`TenantId::parse`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantId(Box<str>);

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {value:?}: {reason}")]
pub struct TenantIdError {
    value: String,
    reason: &'static str,
}

impl TenantIdError {
    /// The rejected input.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// A short explanation of the rule the input broke.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl TenantId {
    /// The longest tenant id: a DNS label has at most 63 characters.
    pub const MAX_LEN: usize = 63;

    /// Parses and validates a tenant id.
    ///
    /// # Errors
    /// [`TenantIdError`] when `value` is empty, too long, or not a lowercase DNS label.
    pub fn parse(value: &str) -> Result<Self, TenantIdError> {
        let fail = |reason| {
            Err(TenantIdError {
                value: value.chars().take(80).collect(),
                reason,
            })
        };
        if value.is_empty() {
            return fail("it is empty");
        }
        if value.len() > Self::MAX_LEN {
            return fail("it is longer than 63 characters");
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return fail("only a-z, 0-9 and '-' are allowed");
        }
        if value.starts_with('-') || value.ends_with('-') {
            return fail("it must not start or end with '-'");
        }
        Ok(Self(value.into()))
    }

    /// The tenant id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["acme", "a", "tenant-42", "0abc", &"x".repeat(63)] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_anything_that_could_escape_a_key_or_a_host_name() {
        for bad in [
            "",
            "Acme",
            "acme.evil",
            "acme/..",
            "-acme",
            "acme-",
            "ac me",
            "acme\n",
            "äcme",
            &"x".repeat(64),
        ] {
            let err = TenantId::parse(bad).unwrap_err();
            assert!(!err.reason().is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn deserialization_validates() {
        let ok: TenantId = serde_json::from_str("\"globex\"").unwrap();
        assert_eq!(ok.to_string(), "globex");
        let bad = serde_json::from_str::<TenantId>("\"Globex Corp\"").unwrap_err();
        assert!(bad.to_string().contains("invalid tenant id"), "{bad}");
    }
}

//! Checking what clients send: names, tags, metadata, pages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_adapter_kit::AdapterError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The most items a page holds.
pub const MAX_PAGE: i64 = 200;
const DEFAULT_PAGE: i64 = 50;
const MAX_TAGS: usize = 50;
const MAX_TAG_CHARS: usize = 64;
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// A JSON request body, or a clear `invalid_input` saying what is wrong with it.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdapterError> {
    serde_json::from_slice(body).map_err(|e| AdapterError::InvalidInput(format!("body: {e}")))
}

/// A folder or document name: 1 to 255 characters, no `/`, no control characters, not
/// `.` or `..`, no leading or trailing spaces. Names are data, never paths or keys, but
/// clients put them into paths, so what would be dangerous there is refused here.
pub fn name(value: &str) -> Result<&str, AdapterError> {
    let bad = |why: &str| Err(AdapterError::InvalidInput(format!("name: {why}")));
    if value.is_empty() || value.chars().count() > 255 {
        return bad("1 to 255 characters");
    }
    if value.contains('/') || value.contains('\\') || value.chars().any(char::is_control) {
        return bad("no slashes, backslashes or control characters");
    }
    if value == "." || value == ".." {
        return bad("not . or ..");
    }
    if value.trim() != value {
        return bad("no leading or trailing spaces");
    }
    Ok(value)
}

/// Tags: at most 50, each 1 to 64 characters without control characters; duplicates
/// dropped, order kept.
pub fn tags(values: Vec<String>) -> Result<Vec<String>, AdapterError> {
    if values.len() > MAX_TAGS {
        return Err(AdapterError::InvalidInput(format!(
            "tags: at most {MAX_TAGS}"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for tag in values {
        let count = tag.chars().count();
        if count == 0 || count > MAX_TAG_CHARS || tag.chars().any(char::is_control) {
            return Err(AdapterError::InvalidInput(format!(
                "tags: each 1 to {MAX_TAG_CHARS} characters, no control characters"
            )));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// Metadata: a JSON object of at most 16 KiB.
pub fn metadata(value: serde_json::Value) -> Result<serde_json::Value, AdapterError> {
    if !value.is_object() || value.to_string().len() > MAX_METADATA_BYTES {
        return Err(AdapterError::InvalidInput(format!(
            "metadata: a JSON object of at most {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(value)
}

/// A classification Cedar policies know.
pub fn classification(value: &str) -> Result<&str, AdapterError> {
    match value {
        "public" | "internal" | "confidential" | "restricted" => Ok(value),
        _ => Err(AdapterError::InvalidInput(
            "classification: public, internal, confidential or restricted".into(),
        )),
    }
}

/// `?limit=&cursor=` of a list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Where a page starts (after this name and id) and how long it is.
#[derive(Debug)]
pub struct Page {
    /// Items per page, 1 to [`MAX_PAGE`].
    pub limit: i64,
    /// The last (name, id) of the previous page.
    pub after: Option<(String, String)>,
}

impl Page {
    /// `limit` items after `after`.
    pub fn after(limit: i64, after: Option<(String, String)>) -> Self {
        Self { limit, after }
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor(String, String);

/// The prefix of a sealed cursor.
const SEALED: &str = "s.";

/// The key sealed cursors are encrypted with: this process's own, so they open only here
/// (after a restart a list is started again).
static CURSOR_KEY: std::sync::LazyLock<aes_gcm::Aes256Gcm> = std::sync::LazyLock::new(|| {
    use aes_gcm::KeyInit as _;
    aes_gcm::Aes256Gcm::new(&rand::random::<[u8; 32]>().into())
});

impl PageQuery {
    /// A page query from its parts.
    pub fn new(limit: Option<i64>, cursor: Option<String>) -> Self {
        Self { limit, cursor }
    }

    /// The page asked for.
    ///
    /// # Errors
    /// [`AdapterError::InvalidInput`] for a limit out of range or a cursor not made here.
    pub fn page(&self) -> Result<Page, AdapterError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AdapterError::InvalidInput(format!(
                "limit: 1 to {MAX_PAGE}"
            )));
        }
        let Some(text) = &self.cursor else {
            return Ok(Page::after(limit, None));
        };
        let bad = || AdapterError::InvalidInput("cursor: not a cursor of this list".into());
        let json = match text.strip_prefix(SEALED) {
            Some(sealed) => open(sealed).ok_or_else(bad)?,
            None => URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?,
        };
        let Cursor(name, id) = serde_json::from_slice(&json).map_err(|_| bad())?;
        Ok(Page::after(limit, Some((name, id))))
    }
}

/// The cursor of the page after one ending with `name` and `id`.
pub fn next_cursor(name: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(cursor_json(name, id))
}

/// The cursor of the page after `name` and `id`, sealed: for a position the reader may
/// not know (a document a list decided item by item and denied), encrypted so that it
/// says nothing of it.
pub fn sealed_cursor(name: &str, id: &str) -> String {
    use aes_gcm::aead::Aead as _;
    let nonce: [u8; 12] = rand::random();
    let sealed = CURSOR_KEY
        .encrypt(&nonce.into(), cursor_json(name, id).as_slice())
        .expect("sealing a short text cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    format!("{SEALED}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The text of a sealed cursor, if this process sealed it.
fn open(sealed: &str) -> Option<Vec<u8>> {
    use aes_gcm::aead::Aead as _;
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let (nonce, sealed) = bytes.split_at_checked(12)?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    CURSOR_KEY.decrypt(&nonce.into(), sealed).ok()
}

fn cursor_json(name: &str, id: &str) -> Vec<u8> {
    serde_json::to_vec(&Cursor(name.to_string(), id.to_string())).expect("two strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_be_dangerous_in_a_path_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "..\\x",
            "a\u{0}b",
            " lead",
            "x".repeat(256).as_str(),
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
        for good in ["Q4 plan", "Ünïcode ✓", "'; DROP TABLE documents; --", "a.b"] {
            assert_eq!(name(good).unwrap(), good);
        }
    }

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        let query = PageQuery {
            limit: Some(10),
            cursor: Some(next_cursor("b'; --", "id-1")),
        };
        let page = query.page().unwrap();
        assert_eq!(page.after, Some(("b'; --".into(), "id-1".into())));
        let sealed = sealed_cursor("hidden-name", "hidden-id");
        assert!(
            !sealed.contains("hidden")
                && !String::from_utf8_lossy(
                    &URL_SAFE_NO_PAD.decode(&sealed[SEALED.len()..]).unwrap()
                )
                .contains("hidden")
        );
        let page = PageQuery::new(Some(10), Some(sealed.clone()))
            .page()
            .unwrap();
        assert_eq!(page.after, Some(("hidden-name".into(), "hidden-id".into())));
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(PageQuery::new(None, Some(tampered)).page().is_err());
        let forged = PageQuery {
            limit: None,
            cursor: Some("not-base64!".into()),
        };
        assert_eq!(forged.page().unwrap_err().code(), "invalid_input");
        let too_long = PageQuery {
            limit: Some(MAX_PAGE + 1),
            cursor: None,
        };
        assert!(too_long.page().is_err());
    }

    #[test]
    fn tags_are_bounded_and_deduplicated() {
        let t = tags(vec!["a".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(t, ["a", "b"]);
        assert!(tags(vec![String::new()]).is_err());
        assert!(tags((0..51).map(|i| i.to_string()).collect()).is_err());
    }
}

//! Submitted forms as ordered key/value pairs. HTML forms repeat keys (one `event_types`
//! per ticked box), which `serde_urlencoded` cannot collect, so handlers read pairs.

use axum::body::{Body, Bytes};

use super::error::UiError;

/// Largest form body the UI accepts (a webhook form is a few KiB at most).
pub const MAX_FORM: usize = 64 * 1024;

/// A parsed `application/x-www-form-urlencoded` body.
#[derive(Debug, Default, Clone)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// Parses a urlencoded body (invalid UTF-8 is replaced, never rejected; so is a NUL
    /// character, which no browser's text box sends and PostgreSQL refuses in text).
    pub fn parse(bytes: &[u8]) -> Self {
        let clean = |s: String| {
            if s.contains('\0') {
                s.replace('\0', "\u{FFFD}")
            } else {
                s
            }
        };
        Self(
            form_urlencoded::parse(bytes)
                .into_owned()
                .map(|(k, v)| (clean(k), clean(v)))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, trimmed, or "" when absent.
    pub fn text(&self, key: &str) -> String {
        self.get(key).unwrap_or_default().trim().to_owned()
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a checkbox named `key` was ticked.
    pub fn checked(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Reads a request body of at most [`MAX_FORM`] bytes.
pub async fn read_body(body: Body) -> Result<Bytes, UiError> {
    axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| UiError::BadRequest(format!("the form is larger than {MAX_FORM} bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_checkboxes() {
        let f = FormData::parse(b"a=1&t=X%3AY&t=Z&c=on&n=+x+");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.all("t").collect::<Vec<_>>(), vec!["X:Y", "Z"]);
        assert!(f.checked("c") && !f.checked("d"));
        assert_eq!(f.text("n"), "x");
    }

    #[test]
    fn a_nul_character_is_replaced_like_invalid_utf8() {
        let f = FormData::parse(b"name=a%00b&k%00=v&bad=%FF");
        assert_eq!(f.get("name"), Some("a\u{FFFD}b"));
        assert_eq!(f.get("k\u{FFFD}"), Some("v"));
        assert_eq!(f.get("bad"), Some("\u{FFFD}"));
    }
}

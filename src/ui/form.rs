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
    /// Parses a urlencoded body (invalid UTF-8 is replaced, never rejected).
    pub fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).into_owned().collect())
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
}

//! `ApiJson<T>`: the JSON body extractor. Unlike axum's `Json`, every rejection is a
//! problem+json response, and a wrongly typed field is reported by its JSON path
//! (`headers[0].secured`) rather than a line and column.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON request body parsed into `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !(mime == "application/json" || mime.ends_with("+json")) {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY)
            } else {
                ApiError::MalformedJson(rej.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses JSON bytes, mapping syntax errors to 400 and type errors to 422 naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so a malformed document is a 400 and not a "field" problem.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::MalformedJson(e.to_string()));
    }
    if let Some(field) = nul_path(bytes) {
        return Err(ApiError::field(
            field.clone(),
            format!("{field}: text must not contain the NUL character (\\u0000)"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde's message ends with " at line X column Y"; drop the position noise.
        let msg = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
        let field = offending_field(&path, &msg, "body");
        ApiError::field(field.clone(), format!("{field}: {msg}"))
    })
}

/// The name of what serde refused, from `serde_path_to_error`'s `path` and serde's `msg`;
/// `whole` names the input itself (`body`, `query`) when the path is its top. A "missing
/// field `id`" is reported at the containing object: the field itself is named.
pub(super) fn offending_field(path: &str, msg: &str, whole: &str) -> String {
    let missing = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'));
    match (path, missing) {
        (".", Some(m)) => m.to_owned(),
        (".", None) => whole.to_owned(),
        (p, Some(m)) => format!("{p}.{m}"),
        (p, None) => p.to_owned(),
    }
}

/// The JSON path (`headers[0].value`, or `body`) of the first string or key holding a NUL
/// character, if any. Why: PostgreSQL refuses NUL in text, so such a value reached the
/// database as an internal error (500) on one backend and was stored on the other; one
/// check here makes it a 422 naming the field on both, for every JSON body. The raw
/// bytes are searched first (a NUL can only be written as the escape `\u0000`), so a
/// body without one is never parsed twice.
fn nul_path(bytes: &[u8]) -> Option<String> {
    memchr::memmem::find(bytes, b"\\u0000")?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut path = String::new();
    find_nul(&value, &mut path).then(|| if path.is_empty() { "body".to_owned() } else { path })
}

/// Walks `v`, leaving in `path` the place of the first NUL found (a key holding one names
/// its own place).
fn find_nul(v: &serde_json::Value, path: &mut String) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = find_nul(item, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(k, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let found = k.contains('\0') || find_nul(item, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        match parse::<serde_json::Value>(body.as_bytes()) {
            Err(ApiError::Validation(errs)) => Some(errs[0].field.clone()),
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn a_nul_anywhere_is_refused_naming_its_place() {
        assert_eq!(field_of(r#"{"name":"a\u0000"}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"headers":[{"name":"X"},{"value":"\u0000"}]}"#).as_deref(),
            Some("headers[1].value")
        );
        assert_eq!(
            field_of(r#"{"custom":{"k\u0000":1}}"#).as_deref(),
            Some("custom.k\0")
        );
        assert_eq!(field_of(r#""\u0000""#).as_deref(), Some("body"));
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_plain_text() {
        // The text `\u0000` (backslash, then "u0000") holds no NUL.
        assert_eq!(field_of(r#"{"name":"a\\u0000"}"#), None);
        assert_eq!(field_of(r#"{"name":"plain"}"#), None);
    }
}

//! `ApiQuery<T>`: the query-string extractor. Unlike axum's `Query`, whose rejection is a
//! plain-text 400 that names no parameter, every rejection here is a problem+json 400
//! naming the parameter (`limit`, `after`), as the OpenAPI document promises.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// A query string parsed into `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses a query string, mapping every problem to a 400 naming the parameter.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // PostgreSQL refuses NUL in text: a filter holding one would reach it as a 500.
    if let Some((k, _)) =
        form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(ApiError::BadQuery(
            k.into_owned(),
            "must not contain the NUL character (%00)".into(),
        ));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let field = super::json::offending_field(&path, &msg, "query");
        ApiError::BadQuery(field.clone(), format!("{field}: {msg}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Q {
        #[allow(dead_code)]
        limit: Option<i64>,
        #[allow(dead_code)]
        after: Option<i64>,
        #[allow(dead_code)]
        #[serde(rename = "eventType")]
        event_type: Option<String>,
    }

    fn field_of(q: &str) -> Option<String> {
        match parse::<Q>(q) {
            Err(ApiError::BadQuery(f, _)) => Some(f),
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn a_bad_value_names_its_parameter() {
        assert_eq!(field_of("limit=abc").as_deref(), Some("limit"));
        assert_eq!(field_of("limit=10&after=1.5").as_deref(), Some("after"));
        assert_eq!(field_of("limit=99999999999999999999").as_deref(), Some("limit"));
        assert_eq!(field_of("eventType=%00").as_deref(), Some("eventType"));
    }

    #[test]
    fn good_and_empty_queries_parse() {
        assert_eq!(field_of(""), None);
        assert_eq!(
            field_of("limit=5&after=7&eventType=Project%3AUpdated&other=x"),
            None
        );
    }
}

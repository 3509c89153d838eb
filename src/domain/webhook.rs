//! Webhook configuration: what an admin submits, checked field by field so every problem is
//! reported against the field that caused it, and turned into a [`WebhookSpec`] that the
//! rest of Herald can trust (HTTPS URL, safe headers, known event types the format can carry).

use serde::{Deserialize, Serialize};
use url::Url;

use super::event_type::EventType;
use crate::formats::Format;

/// Shown instead of a secured header value, in every response and page.
pub const MASK: &str = "********";
/// Custom headers per webhook (Projectrak's limit).
pub const MAX_HEADERS: usize = 5;
/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;
/// Longest accepted header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 4096;
/// Most project ids in a filter.
pub const MAX_PROJECT_FILTER: usize = 1000;

/// One problem with one input field; `field` uses the API's JSON path (`headers[1].name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the offending field.
    pub field: String,
    /// What is wrong, safe to show (never contains a secured value).
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The HTTP method used for deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpVerb {
    /// The default, and the only verb Projectrak and Tracker use.
    #[default]
    Post,
    /// Allowed by PPM Express.
    Put,
    /// Allowed by PPM Express.
    Patch,
}

impl HttpVerb {
    /// Upper-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
    /// Case-insensitive parse.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "POST" => Some(Self::Post),
            "PUT" => Some(Self::Put),
            "PATCH" => Some(Self::Patch),
            _ => None,
        }
    }
}

/// Delivery ordering guarantee a webhook asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Ordering {
    /// Deliveries are independent (fastest).
    #[default]
    #[serde(rename = "none")]
    None,
    /// Deliveries about one entity go strictly in event order.
    #[serde(rename = "per-entity")]
    PerEntity,
}

impl Ordering {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::PerEntity => "per-entity",
        }
    }
    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "per-entity" => Some(Self::PerEntity),
            _ => None,
        }
    }
}

/// A checked `https://` URL without credentials. Keeps the text as the admin typed it
/// (trimmed), so the API returns exactly what was configured, as PPM Express does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    raw: String,
    url: Url,
}

impl WebhookUrl {
    /// Parses and checks a target URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let raw = s.trim();
        let url = Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
        if url.scheme() != "https" {
            return Err("must use https:// (plain http is not allowed)".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password; use a custom header instead".into());
        }
        Ok(Self {
            raw: raw.to_owned(),
            url,
        })
    }

    /// The URL text as configured.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// What the admin submitted, before checking. Absent values were already defaulted.
#[derive(Debug, Clone, Default)]
pub struct WebhookDraft {
    /// Display name; empty means "derive from the URL's host".
    pub name: String,
    /// Free text.
    pub description: String,
    /// Target URL.
    pub url: String,
    /// HTTP method.
    pub http_verb: String,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// Wire format.
    pub format: String,
    /// Only events about these projects (empty = all).
    pub project_ids: Vec<i64>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// `none` or `per-entity`.
    pub ordering: String,
    /// Custom headers.
    pub headers: Vec<HeaderDraft>,
}

/// One submitted custom header.
#[derive(Debug, Clone)]
pub struct HeaderDraft {
    /// Header name as typed.
    pub name: String,
    /// The value (or, for a secured header being kept, its stored sealed form).
    pub value: HeaderValue,
    /// Whether the value is secret.
    pub secured: bool,
}

/// A header value at the API boundary.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// A plaintext value the admin typed.
    Plain(String),
    /// Keep the already-stored sealed value (the admin sent the mask back).
    KeepSealed(String),
}

impl std::fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderValue(..)")
    }
}

/// A fully checked webhook configuration.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Target URL.
    pub url: WebhookUrl,
    /// HTTP method.
    pub http_verb: HttpVerb,
    /// Subscribed event types, deduplicated, in submitted order.
    pub event_types: Vec<EventType>,
    /// Wire format.
    pub format: Format,
    /// Project filter (empty = all projects).
    pub project_ids: Vec<i64>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Ordering guarantee.
    pub ordering: Ordering,
    /// Custom headers.
    pub headers: Vec<HeaderDraft>,
}

/// Names Herald sets itself, or that would break HTTP framing; custom headers cannot use them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-connection",
];

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a custom header name.
pub fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 {
        return Err("must be 1-256 characters".into());
    }
    if !name.bytes().all(is_token_char) {
        return Err(
            "must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~, no spaces or colons)".into(),
        );
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("webhook-")
        || lower.starts_with("herald-")
    {
        return Err(format!("`{name}` is set by Herald and cannot be overridden"));
    }
    Ok(())
}

/// Checks a header value; the message never repeats the value (it may be a secret).
pub fn check_header_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!("must be at most {MAX_HEADER_VALUE_LEN} bytes"));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err("must not contain CR, LF or NUL".into());
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Checks a draft; returns every problem found, each naming its field.
pub fn validate(d: WebhookDraft) -> Result<WebhookSpec, Vec<FieldError>> {
    let mut errs = Vec::new();
    let url = WebhookUrl::parse(&d.url)
        .map_err(|m| errs.push(FieldError::new("url", format!("url {m}"))))
        .ok();
    let http_verb = HttpVerb::parse(&d.http_verb).unwrap_or_else(|| {
        errs.push(FieldError::new("httpVerb", "httpVerb must be POST, PUT or PATCH"));
        HttpVerb::Post
    });
    let format = Format::parse(&d.format).unwrap_or_else(|| {
        errs.push(FieldError::new(
            "format",
            "format must be one of ppm, projectrak, tracker-v5, standard",
        ));
        Format::Ppm
    });
    let ordering = Ordering::parse(&d.ordering).unwrap_or_else(|| {
        errs.push(FieldError::new(
            "ordering",
            "ordering must be `none` or `per-entity`",
        ));
        Ordering::None
    });
    let mut event_types = Vec::new();
    if d.event_types.is_empty() {
        errs.push(FieldError::new(
            "eventTypes",
            "eventTypes must list at least one event type",
        ));
    }
    if d.event_types.len() > 64 {
        errs.push(FieldError::new(
            "eventTypes",
            "eventTypes may list at most 64 entries",
        ));
    }
    for (i, t) in d.event_types.iter().enumerate() {
        let field = format!("eventTypes[{i}]");
        match t.parse::<EventType>() {
            Err(_) => errs.push(FieldError::new(field, format!("unknown event type `{t}`"))),
            Ok(et) if !format.supports(et) => {
                let ok: Vec<String> = format.event_types().map(|t| t.to_string()).collect();
                errs.push(FieldError::new(
                    field,
                    format!(
                        "event type `{t}` cannot be expressed in the `{}` format (it carries: {})",
                        format.as_str(),
                        ok.join(", ")
                    ),
                ));
            }
            Ok(et) if !event_types.contains(&et) => event_types.push(et),
            Ok(_) => {}
        }
    }
    if d.headers.len() > MAX_HEADERS {
        errs.push(FieldError::new(
            "headers",
            format!("at most {MAX_HEADERS} custom headers are allowed"),
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, h) in d.headers.iter().enumerate() {
        if let Err(m) = check_header_name(&h.name) {
            errs.push(FieldError::new(
                format!("headers[{i}].name"),
                format!("header name {m}"),
            ));
        } else if seen.contains(&h.name.to_ascii_lowercase()) {
            errs.push(FieldError::new(
                format!("headers[{i}].name"),
                format!("header `{}` is given twice", h.name),
            ));
        }
        seen.push(h.name.to_ascii_lowercase());
        if let HeaderValue::Plain(v) = &h.value {
            if let Err(m) = check_header_value(v) {
                errs.push(FieldError::new(
                    format!("headers[{i}].value"),
                    format!("header value {m}"),
                ));
            }
        }
    }
    if d.project_ids.len() > MAX_PROJECT_FILTER {
        errs.push(FieldError::new(
            "projectIds",
            format!("projectIds may list at most {MAX_PROJECT_FILTER} projects"),
        ));
    }
    if let Some(i) = d.project_ids.iter().position(|p| *p <= 0) {
        errs.push(FieldError::new(
            format!("projectIds[{i}]"),
            "project ids are positive integers",
        ));
    }
    if d.name.chars().count() > 200 {
        errs.push(FieldError::new("name", "name must be at most 200 characters"));
    }
    if d.description.chars().count() > 2000 {
        errs.push(FieldError::new(
            "description",
            "description must be at most 2000 characters",
        ));
    }
    let Some(url) = url.filter(|_| errs.is_empty()) else {
        return Err(errs);
    };
    let name = match d.name.trim() {
        "" => url.url().host_str().unwrap_or("webhook").to_owned(),
        n => n.to_owned(),
    };
    let mut project_ids = d.project_ids;
    project_ids.sort_unstable();
    project_ids.dedup();
    Ok(WebhookSpec {
        name,
        description: d.description,
        url,
        http_verb,
        event_types,
        format,
        project_ids,
        enabled: d.enabled,
        ordering,
        headers: d.headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> WebhookDraft {
        WebhookDraft {
            url: "https://example.com/hook".into(),
            http_verb: "POST".into(),
            event_types: vec!["Project:Created".into()],
            format: "ppm".into(),
            enabled: true,
            ordering: "none".into(),
            ..Default::default()
        }
    }

    fn field_of(d: WebhookDraft) -> Vec<String> {
        validate(d).unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_minimal_ppm_webhook_is_valid_and_named_after_its_host() {
        let s = validate(draft()).unwrap();
        assert_eq!(s.name, "example.com");
        assert_eq!(s.event_types, vec![EventType::PROJECT_CREATED]);
    }

    #[test]
    fn urls_must_be_https_without_credentials() {
        for bad in [
            "http://example.com",
            "ftp://x",
            "not a url",
            "https://u:p@example.com/",
        ] {
            let mut d = draft();
            d.url = bad.into();
            assert_eq!(field_of(d), vec!["url"], "{bad}");
        }
        let mut d = draft();
        d.url = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(field_of(d), vec!["url"]);
    }

    #[test]
    fn event_types_must_be_known_and_expressible() {
        let mut d = draft();
        d.event_types = vec!["Project:Exploded".into()];
        assert_eq!(field_of(d), vec!["eventTypes[0]"]);
        let mut d = draft();
        d.format = "projectrak".into();
        d.event_types = vec!["Project:Updated".into(), "Task:Created".into()];
        let e = validate(d).unwrap_err();
        assert_eq!(e[0].field, "eventTypes[1]");
        assert!(e[0].message.contains("Task:Created"));
    }

    #[test]
    fn headers_are_checked() {
        let h = |name: &str, value: &str| HeaderDraft {
            name: name.into(),
            value: HeaderValue::Plain(value.into()),
            secured: true,
        };
        for (name, value, field) in [
            ("Content-Type", "x", "headers[0].name"),
            ("webhook-id", "x", "headers[0].name"),
            ("Herald-Event-Type", "x", "headers[0].name"),
            ("bad name", "x", "headers[0].name"),
            ("X-Ok", "a\r\nInjected: 1", "headers[0].value"),
            ("X-Ok", "nul\0", "headers[0].value"),
        ] {
            let mut d = draft();
            d.headers = vec![h(name, value)];
            let errs = validate(d).unwrap_err();
            assert_eq!(errs[0].field, field, "{name}");
            assert!(!errs[0].message.contains("Injected"));
        }
        let mut d = draft();
        d.headers = (0..6).map(|i| h(&format!("X-{i}"), "v")).collect();
        assert_eq!(field_of(d), vec!["headers"]);
        let mut d = draft();
        d.headers = vec![h("X-A", &"v".repeat(4097))];
        assert_eq!(field_of(d), vec!["headers[0].value"]);
    }

    #[test]
    fn verbs_and_formats() {
        let mut d = draft();
        d.http_verb = "GET".into();
        assert_eq!(field_of(d), vec!["httpVerb"]);
        let mut d = draft();
        d.http_verb = "patch".into();
        assert_eq!(validate(d).unwrap().http_verb, HttpVerb::Patch);
        let mut d = draft();
        d.format = "xml".into();
        assert!(field_of(d).contains(&"format".to_string()));
    }
}

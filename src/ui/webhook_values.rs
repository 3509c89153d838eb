//! The webhook form's values: what it shows for a stored webhook, and how a submission
//! becomes the API's [`WebhookIn`] (so validation is exactly the API's) plus the values to
//! show again. Secured header values are never kept for re-display.

use crate::api::webhooks::{HeaderIn, WebhookIn};
use crate::domain::webhook::{FieldError, MAX_HEADERS};
use crate::formats::Format;
use crate::store::WebhookRecord;

/// One header row of the form.
#[derive(Debug, Clone, Default)]
pub struct HeaderRow {
    /// Header name.
    pub name: String,
    /// Plain value (always empty for secured rows: never echoed).
    pub value: String,
    /// Whether the value is secret.
    pub secured: bool,
    /// A secured value is stored for this name and is kept when the box stays empty.
    pub is_set: bool,
}

/// Everything the form shows.
#[derive(Debug, Clone)]
pub struct FormValues {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Target URL.
    pub url: String,
    /// `POST`, `PUT` or `PATCH`.
    pub http_verb: String,
    /// Wire format.
    pub format: String,
    /// Ticked event types.
    pub event_types: Vec<String>,
    /// Project filter as typed (comma-separated ids).
    pub project_ids: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// `none` or `per-entity`.
    pub ordering: String,
    /// Exactly [`MAX_HEADERS`] rows.
    pub headers: Vec<HeaderRow>,
}

impl Default for FormValues {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            url: String::new(),
            http_verb: "POST".into(),
            format: Format::Ppm.as_str().into(),
            event_types: Vec::new(),
            project_ids: String::new(),
            enabled: true,
            ordering: "none".into(),
            headers: vec![HeaderRow::default(); MAX_HEADERS],
        }
    }
}

impl FormValues {
    /// The form for editing a stored webhook.
    pub fn from_record(w: &WebhookRecord) -> Self {
        let c = &w.config;
        let mut headers: Vec<HeaderRow> = c
            .headers
            .iter()
            .map(|h| HeaderRow {
                name: h.name.clone(),
                value: if h.secured {
                    String::new()
                } else {
                    h.value.clone().unwrap_or_default()
                },
                secured: h.secured,
                is_set: h.secured,
            })
            .collect();
        headers.resize(MAX_HEADERS.max(headers.len()), HeaderRow::default());
        let ids: Vec<String> = c.project_ids.iter().map(ToString::to_string).collect();
        Self {
            name: c.name.clone(),
            description: c.description.clone(),
            url: c.url.clone(),
            http_verb: c.http_verb.as_str().into(),
            format: c.format.as_str().into(),
            event_types: c.event_types.iter().map(ToString::to_string).collect(),
            project_ids: ids.join(", "),
            enabled: c.enabled,
            ordering: c.ordering.as_str().into(),
            headers,
        }
    }
}

/// A parsed submission: the API input, the values to show again, which form row each
/// submitted header came from, and problems found before validation (project ids).
#[derive(Debug)]
pub struct Submission {
    /// What goes to `draft_from`.
    pub input: WebhookIn,
    /// What the form shows if it comes back.
    pub values: FormValues,
    /// `rows[i]` = form row of the i-th submitted header.
    pub rows: Vec<usize>,
    /// Problems found while reading the form.
    pub errors: Vec<FieldError>,
}

/// Reads a submitted form. `stored` is the webhook being edited (to know which secured
/// values are set).
pub fn parse(form: &super::form::FormData, stored: Option<&WebhookRecord>) -> Submission {
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    let ids_text = form.text("project_ids");
    for part in ids_text
        .split([',', ' ', '\n', '\t'])
        .filter(|p| !p.trim().is_empty())
    {
        match part.trim().parse::<i64>() {
            Ok(id) => ids.push(id),
            Err(_) => errors.push(FieldError::new(
                "projectIds",
                format!(
                    "project ids are whole numbers separated by commas (`{}` is not one)",
                    part.trim()
                ),
            )),
        }
    }
    let stored_secured = |name: &str| {
        stored.is_some_and(|w| {
            w.config
                .headers
                .iter()
                .any(|h| h.secured && h.name.eq_ignore_ascii_case(name))
        })
    };
    let (mut headers, mut rows, mut shown) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..MAX_HEADERS {
        let name = form.text(&format!("header_name_{i}"));
        let value = form
            .get(&format!("header_value_{i}"))
            .unwrap_or_default()
            .to_owned();
        let secured = form.checked(&format!("header_secured_{i}"));
        let is_set = secured && stored_secured(&name);
        if !(name.is_empty() && value.is_empty()) {
            headers.push(HeaderIn {
                name: name.clone(),
                // An empty box keeps the stored secured value (draft_from's rule), also
                // when "secured" is being unticked: the value then shows again.
                value: if value.is_empty() && (secured || stored_secured(&name)) {
                    None
                } else {
                    Some(value.clone())
                },
                // The form always says: a checkbox is either ticked or not.
                secured: Some(secured),
            });
            rows.push(i);
        }
        shown.push(HeaderRow {
            name,
            value: if secured { String::new() } else { value },
            secured,
            is_set,
        });
    }
    let values = FormValues {
        name: form.text("name"),
        description: form.text("description"),
        url: form.text("url"),
        http_verb: form.text("http_verb"),
        format: form.text("format"),
        event_types: form.all("event_types").map(str::to_owned).collect(),
        project_ids: ids_text,
        enabled: form.checked("enabled"),
        ordering: form.text("ordering"),
        headers: shown,
    };
    if values.url.is_empty() {
        errors.push(FieldError::new(
            "url",
            "Enter the URL Herald should send to (https://…)",
        ));
    }
    let input = WebhookIn {
        event_types: Some(values.event_types.clone()),
        headers: Some(headers),
        http_verb: Some(values.http_verb.clone()),
        url: Some(values.url.clone()),
        name: Some(values.name.clone()),
        description: Some(values.description.clone()),
        format: Some(values.format.clone()),
        project_ids: Some(ids),
        enabled: Some(values.enabled),
        ordering: Some(values.ordering.clone()),
    };
    Submission {
        input,
        values,
        rows,
        errors,
    }
}

/// Maps validation errors to form keys: `headers[j].name` → `headers[row].name`,
/// `eventTypes[3]` → `eventTypes`, `projectIds[0]` → `projectIds`.
pub fn form_errors(errs: Vec<FieldError>, rows: &[usize]) -> Vec<FieldError> {
    errs.into_iter()
        .map(|mut e| {
            if let Some(rest) = e.field.strip_prefix("headers[") {
                if let Some((j, tail)) = rest.split_once(']') {
                    if let Some(row) = j.parse::<usize>().ok().and_then(|j| rows.get(j)) {
                        e.field = format!("headers[{row}]{tail}");
                    }
                }
            } else if let Some((head, _)) = e.field.split_once('[') {
                e.field = head.to_owned();
            }
            e
        })
        .collect()
}

//! The create/edit webhook form: its values, how a submission becomes the API's
//! [`WebhookIn`] (so validation is exactly the API's), and its rendering with every
//! server-side error next to the field it is about.
//!
//! Secured header values are never written into the page: a stored one shows as "set"
//! (leave the box empty to keep it, type to replace it), and a value typed into a form that
//! comes back with errors must be typed again.

use maud::{html, Markup};

use super::csrf;
use super::session::Session;
use crate::api::webhooks::{HeaderIn, WebhookIn};
use crate::domain::event_type::EventType;
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
                value: if h.secured { String::new() } else { h.value.clone().unwrap_or_default() },
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
    for part in ids_text.split([',', ' ', '\n', '\t']).filter(|p| !p.trim().is_empty()) {
        match part.trim().parse::<i64>() {
            Ok(id) => ids.push(id),
            Err(_) => errors.push(FieldError::new(
                "projectIds",
                format!("project ids are whole numbers separated by commas (`{}` is not one)", part.trim()),
            )),
        }
    }
    let stored_secured = |name: &str| {
        stored.is_some_and(|w| {
            w.config.headers.iter().any(|h| h.secured && h.name.eq_ignore_ascii_case(name))
        })
    };
    let (mut headers, mut rows, mut shown) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..MAX_HEADERS {
        let name = form.text(&format!("header_name_{i}"));
        let value = form.get(&format!("header_value_{i}")).unwrap_or_default().to_owned();
        let secured = form.checked(&format!("header_secured_{i}"));
        let is_set = secured && stored_secured(&name);
        if !(name.is_empty() && value.is_empty()) {
            headers.push(HeaderIn {
                name: name.clone(),
                // An empty secured box keeps the stored value (draft_from's rule).
                value: if secured && value.is_empty() { None } else { Some(value.clone()) },
                secured,
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
        errors.push(FieldError::new("url", "Enter the URL Herald should send to (https://…)"));
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
    Submission { input, values, rows, errors }
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

fn err<'a>(errs: &'a [FieldError], key: &str) -> Option<&'a str> {
    errs.iter().find(|e| e.field == key).map(|e| e.message.as_str())
}

/// An error line under a field, and the attributes that tie it to the input.
fn err_line(errs: &[FieldError], key: &str, id: &str) -> Markup {
    html! { @if let Some(m) = err(errs, key) { p.error id={ (id) "-error" } { (m) } } }
}

fn described(errs: &[FieldError], key: &str, id: &str, help: Option<&str>) -> String {
    let mut ids: Vec<String> = help.map(|h| vec![h.to_owned()]).unwrap_or_default();
    if err(errs, key).is_some() {
        ids.push(format!("{id}-error"));
    }
    ids.join(" ")
}

fn format_help(f: Format) -> &'static str {
    match f {
        Format::Ppm => "PPM Express: projects, ideas, tasks and key dates",
        Format::Projectrak => "Projectrak: project field changes only",
        Format::TrackerV5 => "Pivotal Tracker v5: stories and comments",
        Format::Standard => "Herald's standard envelope: every event type",
    }
}

fn header_rows(v: &FormValues, errs: &[FieldError]) -> Markup {
    html! {
        @for (i, h) in v.headers.iter().enumerate() {
            @let (nk, vk) = (format!("headers[{i}].name"), format!("headers[{i}].value"));
            fieldset.header-row {
                legend.sr-only { "Header " (i + 1) }
                div.field {
                    label for={ "hn" (i) } { "Name " span.sr-only { "of header " (i + 1) } }
                    input id={ "hn" (i) } name={ "header_name_" (i) } value=(h.name) autocomplete="off"
                        spellcheck="false" aria-invalid=[err(errs, &nk).map(|_| "true")]
                        aria-describedby=(described(errs, &nk, &format!("hn{i}"), None));
                    (err_line(errs, &nk, &format!("hn{i}")))
                }
                div.field {
                    label for={ "hv" (i) } { "Value " span.sr-only { "of header " (i + 1) } }
                    @let help = format!("hv{i}-help");
                    input id={ "hv" (i) } name={ "header_value_" (i) } value=(h.value) autocomplete="off"
                        spellcheck="false" type=(if h.secured { "password" } else { "text" })
                        placeholder=[h.is_set.then_some("Set (hidden): leave empty to keep")]
                        aria-invalid=[err(errs, &vk).map(|_| "true")]
                        aria-describedby=(described(errs, &vk, &format!("hv{i}"), h.is_set.then_some(help.as_str())));
                    @if h.is_set { p.help id=(help) { "A secured value is set and never shown. Type a new value to replace it." } }
                    (err_line(errs, &vk, &format!("hv{i}")))
                }
                div.field.check {
                    input id={ "hs" (i) } type="checkbox" name={ "header_secured_" (i) } checked[h.secured];
                    label for={ "hs" (i) } { "Secured" }
                }
            }
        }
    }
}

/// Renders the form. `action` is where it posts; `errs` are already [`form_errors`].
pub fn render(session: &Session, action: &str, v: &FormValues, errs: &[FieldError], submit: &str) -> Markup {
    let current = Format::parse(&v.format).unwrap_or_default();
    let text = |key: &str, id: &str, label: &str, value: &str, help: Option<&str>, extra: Markup| {
        let help_id = format!("{id}-help");
        html! {
            div.field {
                label for=(id) { (label) }
                (extra)
                input id=(id) name=(id) value=(value) aria-invalid=[err(errs, key).map(|_| "true")]
                    aria-describedby=(described(errs, key, id, help.map(|_| help_id.as_str())));
                @if let Some(h) = help { p.help id=(help_id) { (h) } }
                (err_line(errs, key, id))
            }
        }
    };
    html! {
        @if !errs.is_empty() {
            div.notice.notice-error role="alert" #form-errors {
                p { strong { "The webhook was not saved:" } }
                ul { @for e in errs { li { (e.message) } } }
            }
        }
        form.webhook-form method="post" action=(action) novalidate {
            (csrf::field(session))
            (text("name", "name", "Name", &v.name, Some("Optional. Defaults to the URL's host."), html! {}))
            div.field {
                label for="url" { "URL" }
                input #url name="url" type="url" value=(v.url) required inputmode="url" spellcheck="false"
                    placeholder="https://example.com/hooks" aria-invalid=[err(errs, "url").map(|_| "true")]
                    aria-describedby=(described(errs, "url", "url", Some("url-help")));
                p.help #url-help { "Must start with " code { "https://" } ". Plain HTTP is not allowed." }
                (err_line(errs, "url", "url"))
            }
            div.field {
                label for="format" { "Format" }
                select #format name="format" data-event-formats aria-describedby=(described(errs, "format", "format", None)) {
                    @for f in Format::ALL {
                        option value=(f.as_str()) selected[f == current] { (f.as_str()) " — " (format_help(f)) }
                    }
                }
                (err_line(errs, "format", "format"))
            }
            fieldset.field #event-types aria-describedby=(described(errs, "eventTypes", "event-types", Some("et-help"))) {
                legend { "Event types" }
                p.help #et-help { "Only the event types the chosen format can carry are offered." }
                div.checks {
                    @for t in EventType::ALL.iter().filter(|t| **t != EventType::WEBHOOK_PING) {
                        @let fmts: Vec<&str> = Format::ALL.iter().filter(|f| f.supports(*t)).map(|f| f.as_str()).collect();
                        @let on = current.supports(*t);
                        @let id = format!("et-{}", t.to_string().replace(':', "-"));
                        div.check data-formats=(fmts.join(" ")) hidden[!on] {
                            input id=(id) type="checkbox" name="event_types" value=(t.to_string())
                                checked[v.event_types.iter().any(|s| *s == t.to_string())] disabled[!on];
                            label for=(id) { (t.to_string()) }
                        }
                    }
                }
                noscript { p.help { "Changed the format? Save once to see its event types." } }
                (err_line(errs, "eventTypes", "event-types"))
            }
            (text("projectIds", "project_ids", "Projects", &v.project_ids,
                Some("Project ids separated by commas. Empty: events of every project."), html! {}))
            fieldset.field {
                legend { "Custom headers" }
                p.help { "Up to 5. Secured values are encrypted at rest and never shown again. "
                    "Herald's own headers (Content-Type, User-Agent, webhook-*, Herald-*) cannot be set." }
                (err_line(errs, "headers", "headers"))
                (header_rows(v, errs))
            }
            div.field.check {
                input #enabled type="checkbox" name="enabled" checked[v.enabled];
                label for="enabled" { "Enabled (send deliveries)" }
            }
            details.advanced {
                summary { "Advanced" }
                div.field {
                    label for="http_verb" { "HTTP method" }
                    select #http_verb name="http_verb" {
                        @for m in ["POST", "PUT", "PATCH"] { option selected[v.http_verb == m] { (m) } }
                    }
                    (err_line(errs, "httpVerb", "http_verb"))
                }
                div.field {
                    label for="ordering" { "Ordering" }
                    select #ordering name="ordering" {
                        option value="none" selected[v.ordering == "none"] { "none — fastest" }
                        option value="per-entity" selected[v.ordering == "per-entity"] { "per-entity — strictly in order per entity" }
                    }
                    (err_line(errs, "ordering", "ordering"))
                }
                div.field {
                    label for="description" { "Description" }
                    textarea #description name="description" rows="3" { (v.description) }
                    (err_line(errs, "description", "description"))
                }
            }
            div.actions {
                button.primary type="submit" { (submit) }
                a.button.secondary href="/admin/webhooks" { "Cancel" }
            }
        }
    }
}

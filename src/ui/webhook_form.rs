//! The create/edit webhook form's rendering, with every server-side error next to the
//! field it is about (values and parsing: [`super::webhook_values`]).
//!
//! Secured header values are never written into the page: a stored one shows as "set"
//! (leave the box empty to keep it, type to replace it), and a value typed into a form that
//! comes back with errors must be typed again.

use maud::{html, Markup};

use super::csrf;
use super::session::Session;
pub use super::webhook_values::{form_errors, parse, FormValues, Submission};
use crate::domain::event_type::EventType;
use crate::domain::webhook::FieldError;
use crate::formats::Format;

fn err<'a>(errs: &'a [FieldError], key: &str) -> Option<&'a str> {
    errs.iter().find(|e| e.field == key).map(|e| e.message.as_str())
}

/// An error line under a field, and the attributes that tie it to the input.
fn err_line(errs: &[FieldError], key: &str, id: &str) -> Markup {
    html! { @if let Some(m) = err(errs, key) { p.error id={ (id) "-error" } { (nice(m)) } } }
}

/// The API's messages start with the JSON field name (`url must…`); pages say "URL".
fn nice(m: &str) -> String {
    let m = m
        .strip_prefix("url ")
        .map_or_else(|| m.to_owned(), |rest| format!("URL {rest}"));
    let mut c = m.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The input an error key is about, for the error summary's links.
fn input_id(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("headers[") {
        let (i, tail) = rest.split_once(']').unwrap_or(("0", ""));
        return format!("{}{i}", if tail == ".value" { "hv" } else { "hn" });
    }
    match key {
        "eventTypes" => "event-types".into(),
        "projectIds" => "project_ids".into(),
        "httpVerb" => "http_verb".into(),
        "headers" => "hn0".into(),
        other => other.into(),
    }
}

fn described(errs: &[FieldError], key: &str, id: &str, help: Option<&str>) -> Option<String> {
    let mut ids: Vec<String> = help.map(|h| vec![h.to_owned()]).unwrap_or_default();
    if err(errs, key).is_some() {
        ids.push(format!("{id}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
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
                        aria-describedby=[described(errs, &nk, &format!("hn{i}"), None)];
                    (err_line(errs, &nk, &format!("hn{i}")))
                }
                div.field {
                    label for={ "hv" (i) } { "Value " span.sr-only { "of header " (i + 1) } }
                    @let help = format!("hv{i}-help");
                    input id={ "hv" (i) } name={ "header_value_" (i) } value=(h.value) autocomplete="off"
                        spellcheck="false" type=(if h.secured { "password" } else { "text" })
                        placeholder=[h.is_set.then_some("Set (hidden): leave empty to keep")]
                        aria-invalid=[err(errs, &vk).map(|_| "true")]
                        aria-describedby=[described(errs, &vk, &format!("hv{i}"), h.is_set.then_some(help.as_str()))];
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
                    aria-describedby=[described(errs, key, id, help.map(|_| help_id.as_str()))];
                @if let Some(h) = help { p.help id=(help_id) { (h) } }
                (err_line(errs, key, id))
            }
        }
    };
    html! {
        @if !errs.is_empty() {
            div.notice.notice-error role="alert" #form-errors {
                p { strong { "The webhook was not saved:" } }
                ul { @for e in errs { li {
                    @if e.field == "form" { (nice(&e.message)) }
                    @else { a href={ "#" (input_id(&e.field)) } { (nice(&e.message)) } }
                } } }
            }
        }
        form.webhook-form method="post" action=(action) novalidate {
            (csrf::field(session))
            (text("name", "name", "Name", &v.name, Some("Optional. Defaults to the URL's host."), html! {}))
            div.field {
                label for="url" { "URL" }
                input #url name="url" type="url" value=(v.url) required inputmode="url" spellcheck="false"
                    placeholder="https://example.com/hooks" aria-invalid=[err(errs, "url").map(|_| "true")]
                    aria-describedby=[described(errs, "url", "url", Some("url-help"))];
                p.help #url-help { "Must start with " code { "https://" } ". Plain HTTP is not allowed." }
                (err_line(errs, "url", "url"))
            }
            div.field {
                label for="format" { "Format" }
                select #format name="format" data-event-formats aria-describedby=[described(errs, "format", "format", None)] {
                    @for f in Format::ALL {
                        option value=(f.as_str()) selected[f == current] { (f.as_str()) " — " (format_help(f)) }
                    }
                }
                (err_line(errs, "format", "format"))
            }
            fieldset.field #event-types aria-describedby=[described(errs, "eventTypes", "event-types", Some("et-help"))] {
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
                // Editing returns to the webhook's page; creating to the list.
                a.button.secondary href=(action.strip_suffix("/edit").unwrap_or("/admin/webhooks")) { "Cancel" }
            }
        }
    }
}

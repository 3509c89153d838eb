//! The page shell and small shared components. Every page is rendered through [`page`]
//! (signed in) or [`bare`] (sign-in and error pages), so the skip link, landmarks,
//! navigation and asset links are the same everywhere.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::assets;
use super::csrf;
use super::session::Session;
use crate::store::LastExecution;
use crate::timefmt::{from_ms, rfc3339_ms};

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The webhooks pages.
    Webhooks,
    /// The projects pages.
    Projects,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light";
            title { (title) " · Herald" }
            link rel="icon" href=(assets::url("favicon.svg")) type="image/svg+xml";
            link rel="stylesheet" href=(assets::url("app.css"));
            script src=(assets::url("app.js")) defer {}
        }
    }
}

/// A page for a signed-in person.
pub fn page(title: &str, session: &Session, nav: Nav, content: Markup) -> Markup {
    let c = &session.caller;
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.topbar {
                    a.brand href="/admin/webhooks" { (PreEscaped(assets::LOGO)) span { "Herald" } }
                    nav aria-label="Main" {
                        ul {
                            (item(Nav::Webhooks, "/admin/webhooks", "Webhooks"))
                            (item(Nav::Projects, "/admin/projects", "Projects"))
                        }
                    }
                    div.who {
                        span.muted { "Tenant " strong { (c.tenant) } " · " (c.user.account_id) }
                        form method="post" action="/admin/sign-out" {
                            (csrf::field(session))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (content) }
                footer.foot { "Herald " (env!("CARGO_PKG_VERSION")) " · " a href="/docs" { "API docs" } }
                div #live.sr-only role="status" aria-live="polite" {}
            }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main.card.narrow {
                    p.brand { (PreEscaped(assets::LOGO)) span { "Herald" } }
                    (content)
                }
            }
        }
    }
}

/// The no-JavaScript confirmation step of a destructive form: the same form again, now
/// saying `confirmed=yes` (with JavaScript, a native dialog adds that field instead).
pub fn confirm(
    session: &Session,
    nav: Nav,
    (title, question): (&str, &str),
    action: &str,
    button: &str,
    cancel: &str,
) -> Markup {
    page(
        title,
        session,
        nav,
        html! {
            h1 { (title) }
            p { (question) }
            form method="post" action=(action) {
                (super::csrf::field(session))
                input type="hidden" name="confirmed" value="yes";
                div.actions {
                    button.danger type="submit" { (button) }
                    a.button.secondary href=(cancel) { "Cancel" }
                }
            }
        },
    )
}

/// A one-line message at the top of a page, announced to screen readers.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class={ "notice notice-" (kind) } role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

/// The Projectrak status lozenge: green `OK` for 2xx, red `ERROR` otherwise, neutral
/// before the first attempt. The code or error is in the tooltip and, for screen readers
/// and touch screens, in text (colour is never the only signal).
pub fn status_badge(last: Option<&LastExecution>) -> Markup {
    let (class, label, detail) = status_parts(last);
    html! {
        span class={ "badge badge-" (class) } title=(detail) data-status=(class) {
            (label) span.sr-only { " (" (detail) ")" }
        }
    }
}

/// `(css class, label, detail)` of a status; shared with the JSON the list polls.
pub fn status_parts(last: Option<&LastExecution>) -> (&'static str, &'static str, String) {
    match last {
        None => ("never", "NOT RUN", "no delivery attempted yet".to_owned()),
        Some(l) => {
            let detail = match (l.status_code, l.error.as_deref()) {
                (Some(c), Some(e)) => format!("HTTP {c}: {e}"),
                (Some(c), None) => format!("HTTP {c}"),
                (None, Some(e)) => e.to_owned(),
                (None, None) => "no response".to_owned(),
            };
            if l.ok() {
                ("ok", "OK", detail)
            } else {
                ("error", "ERROR", detail)
            }
        }
    }
}

/// A time shown as "5 minutes ago" with the exact UTC time beside it.
pub fn when(ms: i64, now: i64) -> Markup {
    html! {
        time datetime=(rfc3339_ms(ms)) title=(exact(ms)) data-ms=(ms) { (relative(ms, now)) }
        br;
        small.muted { (exact(ms)) }
    }
}

/// `2026-11-22 10:00:00 UTC`.
pub fn exact(ms: i64) -> String {
    let t = from_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// "just now", "3 minutes ago", "in 2 hours"…
pub fn relative(ms: i64, now: i64) -> String {
    let secs = (now - ms) / 1000;
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    if n < 45 {
        return "just now".into();
    }
    let (v, unit) = match n {
        0..=89 => (1, "minute"),
        90..=3_599 => ((n + 30) / 60, "minute"),
        3_600..=86_399 => ((n + 1_800) / 3_600, "hour"),
        _ => ((n + 43_200) / 86_400, "day"),
    };
    let s = if v == 1 { "" } else { "s" };
    if future {
        format!("in {v} {unit}{s}")
    } else {
        format!("{v} {unit}{s} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_000_000_000_000;
        assert_eq!(relative(now - 10_000, now), "just now");
        assert_eq!(relative(now - 60_000, now), "1 minute ago");
        assert_eq!(relative(now - 5 * 60_000, now), "5 minutes ago");
        assert_eq!(relative(now - 2 * 3_600_000, now), "2 hours ago");
        assert_eq!(relative(now - 3 * 86_400_000, now), "3 days ago");
        assert_eq!(relative(now + 3_600_000, now), "in 1 hour");
        assert_eq!(exact(1_675_182_117_615), "2023-01-31 16:21:57 UTC");
    }

    #[test]
    fn status_words_follow_projectrak() {
        let l = |code, error: Option<&str>| LastExecution {
            at: 0,
            status_code: code,
            error: error.map(str::to_owned),
        };
        assert_eq!(status_parts(Some(&l(Some(204), None))).1, "OK");
        assert_eq!(status_parts(Some(&l(Some(500), None))).2, "HTTP 500");
        assert_eq!(status_parts(Some(&l(None, Some("timeout")))).1, "ERROR");
        assert_eq!(status_parts(None).0, "never");
    }
}

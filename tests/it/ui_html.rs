//! The admin UI at the HTML level: authentication, CSRF, escaping and secrecy, through
//! real HTTP against the real server (no browser). Every test runs on SQLite and PostgreSQL.

mod auth;
mod deliveries;
mod projects;
mod webhooks;

use serde_json::json;

use crate::support::app::Resp;
use crate::support::TestApp;

/// A signed-in browser stand-in: keeps the session cookie and the page's CSRF token.
struct Ui<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: String,
    csrf: String,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of cookie `name` in the response's `Set-Cookie` headers.
fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The value of the first hidden `csrf` input in a page.
fn csrf_in(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("page has a CSRF field");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn location(r: &Resp) -> &str {
    r.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// GET /admin/sign-in then POST the token; returns the POST's response and the session cookie.
async fn try_sign_in(app: &TestApp, token: &str) -> (Resp, Option<String>) {
    let client = no_redirects();
    let page = Resp::from(client.get(app.url("/admin/sign-in")).send().await.unwrap()).await;
    assert_eq!(page.status, 200);
    let pre = set_cookie(&page, "herald_signin").expect("sign-in cookie");
    let form = [
        ("csrf", csrf_in(&page.text)),
        ("token", token.to_owned()),
        ("next", String::new()),
    ];
    let r = client
        .post(app.url("/admin/sign-in"))
        .header("cookie", pre)
        .form(&form)
        .send()
        .await
        .unwrap();
    let r = Resp::from(r).await;
    let session = set_cookie(&r, "herald_session").filter(|c| c != "herald_session=");
    (r, session)
}

impl<'a> Ui<'a> {
    async fn sign_in(app: &'a TestApp, token: &str) -> Ui<'a> {
        let (r, cookie) = try_sign_in(app, token).await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(location(&r), "/admin/webhooks");
        let mut ui = Ui {
            app,
            client: no_redirects(),
            cookie: cookie.expect("session cookie"),
            csrf: String::new(),
        };
        let list = ui.get("/admin/webhooks").await;
        assert_eq!(list.status, 200, "{}", list.text);
        ui.csrf = csrf_in(&list.text);
        ui
    }

    async fn get(&self, path: &str) -> Resp {
        let r = self
            .client
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        Resp::from(r).await
    }

    /// POSTs `pairs` as a form, with the session's CSRF token unless `pairs` has one.
    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let mut form: Vec<(&str, &str)> = pairs.to_vec();
        if !pairs.iter().any(|(k, _)| *k == "csrf") {
            form.push(("csrf", self.csrf.as_str()));
        }
        let r = self
            .client
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        Resp::from(r).await
    }
}

/// Creates a webhook through the JSON API; returns its id.
async fn api_webhook(app: &TestApp, body: serde_json::Value) -> String {
    let r = app.call("POST", "/@default/v1/Webhooks", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["data"]["id"].as_str().unwrap().to_owned()
}

fn hook(name: &str) -> serde_json::Value {
    json!({"name": name, "url": "https://example.com/hook", "eventTypes": ["Project:Updated"],
           "headers": [{"name": "Authorization", "value": "Bearer api-secured-7731", "secured": true}]})
}

fn webhook_form<'a>(url: &'a str, secured_value: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "Ops"),
        ("url", url),
        ("format", "ppm"),
        ("event_types", "Project:Created"),
        ("event_types", "Project:Updated"),
        ("project_ids", ""),
        ("header_name_0", "Authorization"),
        ("header_value_0", secured_value),
        ("header_secured_0", "on"),
        ("header_name_1", "X-Team"),
        ("header_value_1", "ops"),
        ("enabled", "on"),
        ("http_verb", "POST"),
        ("ordering", "none"),
    ]
}

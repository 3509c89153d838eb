//! Signing in and out, sessions, scopes and CSRF.

use super::{api_webhook, hook, location, no_redirects, set_cookie, try_sign_in, webhook_form, Ui};
use crate::both;
use crate::support::app::Resp;
use crate::support::TestApp;

both!(
    pages_redirect_to_sign_in_without_a_session,
    |app: TestApp| async move {
        let id = api_webhook(&app, hook("a")).await;
        let client = no_redirects();
        let paths = [
            "/admin".to_owned(),
            "/admin/webhooks".to_owned(),
            "/admin/webhooks/new".to_owned(),
            format!("/admin/webhooks/{id}"),
            format!("/admin/webhooks/{id}/edit"),
        ];
        for cookie in ["", "herald_session=forged-session-id"] {
            for p in &paths {
                let r = Resp::from(
                    client
                        .get(app.url(p))
                        .header("cookie", cookie)
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                assert_eq!(r.status, 303, "{p}: {}", r.text);
                let to = location(&r);
                assert!(
                    to.starts_with("/admin/sign-in") || to == "/admin/webhooks",
                    "{p} → {to}"
                );
                if p != "/admin" {
                    assert!(to.starts_with("/admin/sign-in?next="), "{p} → {to}");
                }
            }
            let r = Resp::from(
                client
                    .get(app.url("/admin/webhooks/status.json"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 401);
            let r = Resp::from(
                client
                    .post(app.url("/admin/webhooks/delete-all"))
                    .header("cookie", cookie)
                    .form(&[("csrf", "x"), ("confirmed", "yes")])
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 303);
            assert_eq!(location(&r), "/admin/sign-in");
        }
        let r = app
            .call("GET", &format!("/@default/v1/Webhooks/{id}"), None)
            .await;
        assert_eq!(r.status, 200, "nothing was deleted");
    }
);

both!(
    only_tokens_with_webhook_scopes_sign_in,
    |app: TestApp| async move {
        let entities = app.token("default", "bob", "entities:write").await;
        let (r, cookie) = try_sign_in(&app, &entities).await;
        assert_eq!(r.status, 403);
        assert!(r.text.contains("cannot manage webhooks"), "{}", r.text);
        assert!(cookie.is_none());
        let (r, cookie) = try_sign_in(&app, "hrld_notatoken_xxxxxxxx").await;
        assert_eq!(r.status, 401);
        assert!(cookie.is_none());
        // A NUL in the id (PostgreSQL refuses it in text) is a bad token, not a 500.
        let (r, cookie) = try_sign_in(&app, "hrld_notatoken\0xy_xxxxxxxx").await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(cookie.is_none());

        // A read-only token signs in, sees the list, and cannot create.
        let reader = app.token("default", "carol", "webhooks:read").await;
        let ui = Ui::sign_in(&app, &reader).await;
        assert!(!ui
            .get("/admin/webhooks")
            .await
            .text
            .contains("/admin/webhooks/new"));
        assert_eq!(ui.get("/admin/webhooks/new").await.status, 403);
        assert_eq!(
            ui.post("/admin/webhooks/new", &webhook_form("https://example.com/x", "v"))
                .await
                .status,
            403
        );

        // Signing out ends the session on the server: the old cookie no longer works.
        let r = ui.post("/admin/sign-out", &[]).await;
        assert_eq!(r.status, 303);
        assert_eq!(
            set_cookie(&r, "herald_session").as_deref(),
            Some("herald_session=")
        );
        assert_eq!(ui.get("/admin/webhooks").await.status, 303);

        // Revoking the token ends its sessions.
        let writer_token = app.token("default", "dave", "webhooks:write").await;
        let ui = Ui::sign_in(&app, &writer_token).await;
        let token_id = writer_token.split('_').nth(1).unwrap();
        assert!(app
            .store
            .revoke_token(token_id, herald::timefmt::now_ms())
            .await
            .unwrap());
        assert_eq!(ui.get("/admin/webhooks").await.status, 303);
    }
);

both!(
    session_cookie_is_http_only_strict_and_scoped,
    |app: TestApp| async move {
        let (r, _) = try_sign_in(&app, &app.token.clone()).await;
        let raw: Vec<&str> = r
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let session = raw.iter().find(|c| c.starts_with("herald_session=")).unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
            assert!(session.contains(part), "{session}");
        }
        assert!(
            !session.contains("Secure"),
            "plain-HTTP test server: no Secure flag"
        );
        let ui = Ui::sign_in(&app, &app.token).await;
        let page = ui.get("/admin/webhooks").await;
        let csp = page
            .headers
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(page.headers.get("x-content-type-options").unwrap(), "nosniff");
    }
);

both!(
    forms_without_the_right_csrf_token_are_refused,
    |app: TestApp| async move {
        let ui = Ui::sign_in(&app, &app.token).await;
        let id = api_webhook(&app, hook("keep me")).await;
        let mut form = webhook_form("https://example.com/new", "v");
        let missing = ui
            .client
            .post(app.url("/admin/webhooks/new"))
            .header("cookie", &ui.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 403);
        form.push(("csrf", "wrong-token-of-the-right-length-0123456789a"));
        assert_eq!(ui.post("/admin/webhooks/new", &form).await.status, 403);
        for (path, pairs) in [
            (
                "/admin/webhooks/delete-all".to_owned(),
                vec![("confirmed", "yes"), ("csrf", "nope")],
            ),
            (
                format!("/admin/webhooks/{id}/delete"),
                vec![("confirmed", "yes"), ("csrf", "")],
            ),
            (format!("/admin/webhooks/{id}/rotate"), vec![("csrf", "nope")]),
            (
                format!("/admin/webhooks/{id}/enabled"),
                vec![("enabled", "false"), ("csrf", "nope")],
            ),
            ("/admin/sign-out".to_owned(), vec![("csrf", "nope")]),
        ] {
            let r = ui.post(&path, &pairs).await;
            assert_eq!(r.status, 403, "{path}");
            assert!(r.text.contains("Form expired"), "{path}: {}", r.text);
        }
        // Nothing changed: one webhook, still enabled, still signed in.
        let list = app.call("GET", "/@default/v1/Webhooks", None).await;
        assert_eq!(list.json["data"].as_array().unwrap().len(), 1);
        assert_eq!(list.json["data"][0]["enabled"], true);
        assert_eq!(ui.get("/admin/webhooks").await.status, 200);
        // A sign-in POST without the matching sign-in cookie is refused too (login CSRF).
        let r = no_redirects()
            .post(app.url("/admin/sign-in"))
            .form(&[("csrf", "x"), ("token", app.token.as_str())])
            .send()
            .await
            .unwrap();
        let r = Resp::from(r).await;
        assert_eq!(r.status, 403);
        assert!(set_cookie(&r, "herald_session").is_none());
        // The right token works.
        let ok = ui
            .post(
                "/admin/webhooks/new",
                &webhook_form("https://example.com/new", "v"),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text);
    }
);

/// Behind a TLS-terminating proxy (`public_base_url` is https) the cookie is `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_secure_when_herald_is_reached_over_https() {
    let env = [("HERALD_PUBLIC_BASE_URL", "https://herald.example.test")];
    let app = TestApp::spawn_with(crate::support::Backend::Sqlite, &env)
        .await
        .unwrap();
    let (r, _) = try_sign_in(&app, &app.token.clone()).await;
    let session = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("herald_session="))
        .expect("session cookie")
        .to_owned();
    assert!(session.contains("; Secure"), "{session}");
}

//! Signing in with an API token and signing out. A person pastes a token that grants
//! `admin`, `webhooks:read` or `webhooks:write`; the UI then acts with exactly that token's
//! tenant and scopes, so it can never do more than the same token could through the API.

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use super::csrf::{self, SessionForm, SIGNIN_COOKIE};
use super::error::UiResult;
use super::form::{read_body, FormData};
use super::layout;
use super::session::{self, cookie, may_sign_in, safe_next};
use crate::api::auth::verify_token;
use crate::api::AppState;

/// `/admin/sign-in` and `/admin/sign-out`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/sign-in", get(show).post(submit))
        .route("/admin/sign-out", post(sign_out))
}

#[derive(Debug, Deserialize)]
struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// The sign-in form with a fresh double-submit token (set as a cookie by the caller).
fn form_page(token: &str, next: &str, message: Option<(&str, &str)>) -> Markup {
    layout::bare(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some((kind, text)) = message { (layout::notice(kind, text)) }
            form method="post" action="/admin/sign-in" {
                input type="hidden" name=(csrf::FIELD) value=(token);
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="token" { "API token" }
                    input #token type="password" name="token" required autocomplete="off"
                        spellcheck="false" autofocus aria-describedby="token-help";
                    p #token-help.help {
                        "A token with the " code { "admin" } ", " code { "webhooks:read" } " or "
                        code { "webhooks:write" } " scope. Create one with "
                        code { "herald token create" } "."
                    }
                }
                button.primary type="submit" { "Sign in" }
            }
        },
    )
}

fn render(state: &AppState, status: StatusCode, next: &str, message: Option<(&str, &str)>) -> Response {
    let token = session::random_token();
    let cookie = session::set_cookie(state, SIGNIN_COOKIE, &token, 3600);
    (
        status,
        [(header::SET_COOKIE, cookie)],
        form_page(&token, next, message),
    )
        .into_response()
}

async fn show(
    State(state): State<AppState>,
    Query(q): Query<SignInQuery>,
    req: Request,
) -> UiResult<Response> {
    let next = safe_next(q.next.as_deref());
    if session::load(req.headers(), &state).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let msg = q.signed_out.is_some().then_some(("ok", "You are signed out."));
    Ok(render(&state, StatusCode::OK, &next, msg))
}

async fn submit(State(state): State<AppState>, req: Request) -> UiResult<Response> {
    let (parts, body) = req.into_parts();
    let form = FormData::parse(&read_body(body).await?);
    let next = safe_next(form.get("next"));
    let expected = cookie(&parts.headers, SIGNIN_COOKIE).unwrap_or_default();
    if !csrf::matches(form.get(csrf::FIELD).unwrap_or_default(), expected) {
        let msg = (
            "error",
            "The sign-in form expired. Please paste your token again.",
        );
        return Ok(render(&state, StatusCode::FORBIDDEN, &next, Some(msg)));
    }
    let caller = match verify_token(form.text("token").as_str(), &state).await {
        Ok(c) => c,
        Err(crate::api::problem::ApiError::Unauthorized) => {
            let msg = ("error", "That token is not valid, or it was revoked.");
            return Ok(render(&state, StatusCode::UNAUTHORIZED, &next, Some(msg)));
        }
        Err(e) => return Err(e.into()),
    };
    if !may_sign_in(&caller.scopes) {
        tracing::info!(tenant = %caller.tenant, token_id = %caller.token_id, "admin UI sign-in refused: no webhook scope");
        let msg = (
            "error",
            "This token cannot manage webhooks: it needs the admin, webhooks:read or webhooks:write scope.",
        );
        return Ok(render(&state, StatusCode::FORBIDDEN, &next, Some(msg)));
    }
    let set = session::start(&state, &caller).await?;
    tracing::info!(tenant = %caller.tenant, token_id = %caller.token_id, "admin UI sign-in");
    let clear = session::set_cookie(&state, SIGNIN_COOKIE, "", 0);
    let mut resp = Redirect::to(&next).into_response();
    for c in [set, clear] {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

async fn sign_out(
    State(state): State<AppState>,
    SessionForm { session, .. }: SessionForm,
) -> UiResult<Response> {
    let clear = session::end(&state, &session).await?;
    tracing::info!(tenant = %session.caller.tenant, "admin UI sign-out");
    Ok((
        [(header::SET_COOKIE, clear)],
        Redirect::to("/admin/sign-in?signed_out=1"),
    )
        .into_response())
}

//! A webhook's recent deliveries and their attempt logs. Filled in once the delivery
//! engine (deliveries, attempts, redeliver, test ping) is available.

use maud::{html, Markup};

use super::error::UiResult;
use super::session::Session;
use crate::api::AppState;
use crate::store::WebhookRecord;

/// The deliveries section of the webhook page.
pub async fn section(_state: &AppState, _session: &Session, _w: &WebhookRecord) -> UiResult<Markup> {
    Ok(html! {})
}

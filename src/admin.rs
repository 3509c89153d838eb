//! Operations shared by the CLI and first start: issuing tokens and bootstrapping the
//! `default` tenant. Kept out of the API so an operator can always mint a token locally.

use crate::crypto::new_token;
use crate::domain::scope::Scopes;
use crate::domain::tenant::TenantSlug;
use crate::store::{NewTokenRecord, Store, StoreResult};
use crate::timefmt::now_ms;

/// A token just issued: `token` is shown once and never stored.
#[derive(Debug)]
pub struct IssuedToken {
    /// Public id (for `token list` / `token revoke`).
    pub id: String,
    /// The bearer token.
    pub token: String,
}

/// Issues a token for `account_id` in `tenant`, creating tenant and user when missing.
pub async fn issue_token(
    store: &dyn Store,
    tenant: &TenantSlug,
    account_id: &str,
    scopes: &Scopes,
    name: &str,
) -> StoreResult<IssuedToken> {
    let now = now_ms();
    let (t, _) = store.ensure_tenant(tenant.as_str(), now).await?;
    let user = store.ensure_user(t.id, account_id, now).await?;
    let minted = new_token();
    store
        .insert_token(&NewTokenRecord {
            id: minted.id.clone(),
            tenant_id: t.id,
            user_id: user.id,
            name: name.to_owned(),
            scopes: scopes.to_string(),
            secret_hash: minted.hash,
            created_at: now,
        })
        .await?;
    Ok(IssuedToken {
        id: minted.id,
        token: minted.token,
    })
}

/// On the very first start (no tenant at all), creates tenant `default` with user `admin`
/// and an `admin` token, and returns the token so `serve` can print it once.
pub async fn bootstrap(store: &dyn Store) -> StoreResult<Option<IssuedToken>> {
    if store.tenant_count().await? > 0 {
        return Ok(None);
    }
    let slug = TenantSlug::parse("default").map_err(crate::store::StoreError::Corrupt)?;
    let scopes = Scopes::parse("admin").map_err(crate::store::StoreError::Corrupt)?;
    issue_token(store, &slug, "admin", &scopes, "bootstrap admin token")
        .await
        .map(Some)
}

//! Records the store reads and writes. They hold already-checked domain values; secrets
//! appear only in sealed form (see [`crate::crypto`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::event_type::EventType;
use crate::domain::webhook::{HttpVerb, Ordering};
use crate::formats::Format;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Internal id.
    pub id: i64,
    /// Slug used in paths.
    pub slug: String,
    /// Creation time, epoch ms.
    pub created_at: i64,
}

/// A user of a tenant: the author of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Numeric id (Tracker `person.id`).
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// UUID (PPM `UserId`).
    pub uuid: Uuid,
    /// Account id (Projectrak `user`).
    pub account_id: String,
    /// Display name.
    pub name: String,
    /// Initials.
    pub initials: String,
    /// E-mail.
    pub email: String,
}

/// A token to store (its secret is already hashed).
#[derive(Debug, Clone)]
pub struct NewTokenRecord {
    /// Public id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The user it acts as.
    pub user_id: i64,
    /// Label for humans.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// SHA-256 hex of the secret part.
    pub secret_hash: String,
    /// Creation time, epoch ms.
    pub created_at: i64,
}

/// A stored token with what authorisation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Tenant slug.
    pub tenant_slug: String,
    /// The user it acts as, whole: the API attributes changes to it without reading it
    /// again.
    pub user: crate::domain::event::UserRef,
    /// The tenant's `fields_version` as this read saw it: field definitions cached under
    /// this version are current (see `tracker::FieldCache`).
    pub fields_version: i64,
    /// The tenant's `webhooks_version` as this read saw it: a node's cached webhooks of
    /// this version or newer are current (see `store/subscriber_cache.rs`).
    pub webhooks_version: i64,
    /// Label for humans.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// SHA-256 hex of the secret part.
    pub secret_hash: String,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// A custom header as stored: plaintext for ordinary values, sealed for secured ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHeader {
    /// Header name.
    pub name: String,
    /// Whether the value is secret.
    pub secured: bool,
    /// Plaintext value (unsecured headers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Sealed value (secured headers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// The admin-controlled part of a webhook.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// HTTPS target.
    pub url: String,
    /// HTTP method.
    pub http_verb: HttpVerb,
    /// Wire format.
    pub format: Format,
    /// Subscribed event types.
    pub event_types: Vec<EventType>,
    /// Project filter (empty = all).
    pub project_ids: Vec<i64>,
    /// Custom headers.
    pub headers: Vec<StoredHeader>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Ordering guarantee.
    pub ordering: Ordering,
}

/// A webhook to insert.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// New id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Configuration.
    pub config: WebhookConfig,
    /// Sealed signing secret.
    pub secret_sealed: String,
    /// Creation time, epoch ms.
    pub now: i64,
}

/// The outcome of the most recent delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastExecution {
    /// When it happened, epoch ms.
    pub at: i64,
    /// HTTP status, if a response arrived.
    pub status_code: Option<i64>,
    /// Network-level error text, if no usable response arrived.
    pub error: Option<String>,
}

impl LastExecution {
    /// `OK` for 2xx, else `ERROR` (Projectrak's lozenge rule).
    pub fn ok(&self) -> bool {
        matches!(self.status_code, Some(200..=299))
    }
}

/// A stored webhook.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    /// Id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Configuration.
    pub config: WebhookConfig,
    /// Sealed signing secret.
    pub secret_sealed: String,
    /// Sealed previous secret during a rotation.
    pub previous_secret_sealed: Option<String>,
    /// Until when the previous secret still signs, epoch ms.
    pub previous_secret_until: Option<i64>,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last configuration change, epoch ms.
    pub updated_at: i64,
    /// Most recent attempt outcome.
    pub last_execution: Option<LastExecution>,
    /// Why Herald disabled it automatically, if it did.
    pub disabled_reason: Option<String>,
}

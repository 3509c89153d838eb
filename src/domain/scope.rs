//! Token scopes. A token carries a set of them; each route requires one. `admin`
//! implies every other scope, so an operator's token can do everything in its tenant.

use std::fmt;

/// One permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read webhooks, deliveries and the event log.
    WebhooksRead,
    /// Create, change and delete webhooks.
    WebhooksWrite,
    /// Create, change and delete tracker data (projects, stories, …).
    EntitiesWrite,
    /// Publish events through the ingest API and act for other users.
    EventsWrite,
    /// Redeliver and send test pings.
    DeliveriesWrite,
    /// Everything in the tenant.
    Admin,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 6] = [
        Self::WebhooksRead,
        Self::WebhooksWrite,
        Self::EntitiesWrite,
        Self::EventsWrite,
        Self::DeliveriesWrite,
        Self::Admin,
    ];

    /// Wire spelling, e.g. `webhooks:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhooksRead => "webhooks:read",
            Self::WebhooksWrite => "webhooks:write",
            Self::EntitiesWrite => "entities:write",
            Self::EventsWrite => "events:write",
            Self::DeliveriesWrite => "deliveries:write",
            Self::Admin => "admin",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty set of scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses a comma- or space-separated list such as `webhooks:read,webhooks:write`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut v = Vec::new();
        for part in list.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
            let s = Scope::parse(part).ok_or_else(|| {
                let all: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope `{part}` (known: {})", all.join(", "))
            })?;
            if !v.contains(&s) {
                v.push(s);
            }
        }
        if v.is_empty() {
            return Err("at least one scope is required".into());
        }
        v.sort();
        Ok(Self(v))
    }

    /// Whether these scopes grant `needed` (`admin` grants everything).
    pub fn grants(&self, needed: Scope) -> bool {
        self.0.iter().any(|s| *s == needed || *s == Scope::Admin)
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<_> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_grant() {
        let s = Scopes::parse("webhooks:read, webhooks:read webhooks:write").unwrap();
        assert_eq!(s.to_string(), "webhooks:read webhooks:write");
        assert!(s.grants(Scope::WebhooksWrite));
        assert!(!s.grants(Scope::Admin));
        assert!(Scopes::parse("admin").unwrap().grants(Scope::EventsWrite));
        assert!(Scopes::parse("webhooks:delete")
            .unwrap_err()
            .contains("webhooks:delete"));
        assert!(Scopes::parse(" , ").is_err());
    }
}

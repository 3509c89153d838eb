//! The small piece of process state the store needs for fan-out: the public base URL
//! (for links in bodies) and, while a delivery engine runs in this process, where to hand
//! freshly committed deliveries.
//!
//! Why the store holds it: every path that writes an event (API, ingest, CLI, tests calling
//! the store directly) fans out in the same transaction, and every one of them should hand
//! the new deliveries to local workers after commit — so the handoff lives next to the
//! commit instead of in each caller. Deliveries created while no engine is attached are
//! written unleased and found by a claim (on this node's next poll, or on another node woken
//! by `NOTIFY`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use uuid::Uuid;

use super::delivery_model::{DeliveryJob, Lease};

/// Receives deliveries this node just created and leased to itself.
pub trait FreshSink: Send + Sync {
    /// Called after the creating transaction committed.
    fn hand_off(&self, jobs: Vec<DeliveryJob>);
    /// Claimable (unleased) work was committed: look for it now.
    fn wake(&self);
    /// Those of `webhooks` whose lane is full (at its own bound, typically an endpoint
    /// that stopped answering, or holding its share while the node holds its bound of
    /// waiting jobs), or whose endpoint is silent (its lane starts one
    /// attempt per request timeout, so fresh jobs would wait there until their leases ran
    /// short). Their new rows are written unleased instead of leased and handed over only
    /// to be given back — one more write per delivery, a tenth of all writes in the
    /// `slow-endpoint` bench — and a claim takes them once there is room. Asked once per
    /// event, about that event's webhooks only.
    fn full(&self, webhooks: &mut dyn Iterator<Item = Uuid>) -> Vec<Uuid>;
}

/// The lease for rows created now, and the webhooks whose rows go without one.
#[derive(Debug, Clone)]
pub struct FreshLease {
    lease: Lease,
    full: Vec<Uuid>,
}

impl FreshLease {
    /// The lease for a new row of `webhook`, unless its queue is full.
    pub fn for_webhook(&self, webhook: Uuid) -> Option<&Lease> {
        (!self.full.contains(&webhook)).then_some(&self.lease)
    }
}

struct Attached {
    sink: Arc<dyn FreshSink>,
    lease_ms: i64,
}

/// See the module docs. One per store; cheap to consult on every write.
pub struct DeliveryHub {
    public_base_url: RwLock<String>,
    attached: RwLock<Option<Attached>>,
    /// Leases of jobs handed over after the engine left (see [`DeliveryHub::take_orphans`]).
    orphans: Mutex<Vec<(Uuid, String)>>,
    node: String,
    counter: AtomicU64,
}

impl fmt::Debug for DeliveryHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryHub")
            .field("node", &self.node)
            .field("attached", &self.is_attached())
            .finish()
    }
}

impl Default for DeliveryHub {
    fn default() -> Self {
        Self {
            public_base_url: RwLock::new("http://localhost".into()),
            attached: RwLock::new(None),
            orphans: Mutex::default(),
            node: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            counter: AtomicU64::new(0),
        }
    }
}

impl DeliveryHub {
    /// Sets Herald's public base URL (no trailing slash), used by formats for links.
    pub fn set_public_base_url(&self, url: &str) {
        if let Ok(mut u) = self.public_base_url.write() {
            *u = url.trim_end_matches('/').to_owned();
        }
    }

    /// The public base URL.
    pub fn public_base_url(&self) -> String {
        self.public_base_url.read().map(|u| u.clone()).unwrap_or_default()
    }

    /// Routes fresh deliveries to `sink`, leased for `lease_ms`.
    pub fn attach(&self, sink: Arc<dyn FreshSink>, lease_ms: i64) {
        if let Ok(mut a) = self.attached.write() {
            *a = Some(Attached { sink, lease_ms });
        }
    }

    /// Stops routing fresh deliveries (they are written unleased from now on).
    pub fn detach(&self) {
        if let Ok(mut a) = self.attached.write() {
            *a = None;
        }
    }

    /// Whether an engine is attached.
    pub fn is_attached(&self) -> bool {
        self.attached.read().map(|a| a.is_some()).unwrap_or(false)
    }

    /// This process's node id (a prefix of every lease token it issues).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A new lease token, unique to this node and call.
    pub fn new_token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.node)
    }

    /// A lease for rows created now, if an engine is attached to take them; `webhooks` are
    /// the ones whose lanes may be asked to turn their rows away ([`FreshSink::full`]).
    pub fn fresh_lease(&self, now: i64, webhooks: &mut dyn Iterator<Item = Uuid>) -> Option<FreshLease> {
        let (lease_ms, full) = {
            let attached = self.attached.read().ok()?;
            let a = attached.as_ref()?;
            (a.lease_ms, a.sink.full(webhooks))
        };
        Some(FreshLease {
            lease: Lease {
                token: self.new_token(),
                until: now.saturating_add(lease_ms),
            },
            full,
        })
    }

    /// Hands committed, leased deliveries to the attached engine, and wakes it when the
    /// transaction also created claimable rows (per-entity ordered deliveries are never
    /// handed over directly). If the engine detached in between, leased rows simply wait
    /// for their lease to expire and are claimed then.
    pub fn hand_off(&self, jobs: Vec<DeliveryJob>, claimable: bool) {
        if jobs.is_empty() && !claimable {
            return;
        }
        let sink = self
            .attached
            .read()
            .ok()
            .and_then(|a| a.as_ref().map(|a| Arc::clone(&a.sink)));
        match sink {
            Some(sink) => {
                if !jobs.is_empty() {
                    sink.hand_off(jobs);
                }
                if claimable {
                    sink.wake();
                }
            }
            None => {
                let mut orphans = self
                    .orphans
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                orphans.extend(jobs.into_iter().map(|j| (j.id, j.lease.token)));
            }
        }
    }

    /// The leases of jobs handed over after the engine was detached, for the stopping
    /// engine to give back with its own (each is returned once).
    ///
    /// Why: a change leases its deliveries to this node when it fans out and hands them
    /// over after its commit; an engine that stops in between never sees them, and
    /// without this their rows would wait for the lease to expire (minutes) before another
    /// node, or this one restarted, could send them.
    pub fn take_orphans(&self) -> Vec<(Uuid, String)> {
        std::mem::take(
            &mut *self
                .orphans
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TargetRow;

    fn job(token: &str) -> DeliveryJob {
        DeliveryJob {
            id: Uuid::new_v4(),
            tenant_id: 1,
            event_type: "Project:Updated".into(),
            body: bytes::Bytes::from_static(b"{}"),
            format_headers: Arc::from(Vec::new()),
            attempts: 0,
            tries: 0,
            lease: Lease {
                token: token.into(),
                until: 1,
            },
            target: Arc::new(TargetRow::example()),
        }
    }

    /// Jobs handed over while no engine is attached keep their leases for the stopping
    /// engine to give back, once.
    #[test]
    fn jobs_handed_over_after_the_engine_left_are_kept_to_be_given_back() {
        let hub = DeliveryHub::default();
        let (a, b) = (job("n.1"), job("n.2"));
        let want = vec![(a.id, "n.1".to_owned()), (b.id, "n.2".to_owned())];
        hub.hand_off(vec![a], false);
        hub.hand_off(vec![b], true);
        assert_eq!(hub.take_orphans(), want);
        assert!(hub.take_orphans().is_empty(), "each lease is returned once");
    }
}

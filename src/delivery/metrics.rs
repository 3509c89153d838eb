//! Delivery metrics in Prometheus text format. The recorder is local to the engine (not the
//! `metrics` crate's global one), so several engines in one process — tests — keep separate
//! figures, and no HTTP server comes with the exporter: `/metrics` renders the handle.

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use uuid::Uuid;

use crate::store::QueueStats;

const ATTEMPTS: &str = "herald_delivery_attempts_total";
const DELIVERIES: &str = "herald_deliveries_total";
const LATENCY: &str = "herald_delivery_attempt_duration_seconds";
const WEBHOOK_FAILURES: &str = "herald_webhook_failures_total";
const DISABLED: &str = "herald_webhooks_auto_disabled_total";
const QUEUE_PENDING: &str = "herald_delivery_queue_pending";
const QUEUE_DUE: &str = "herald_delivery_queue_due";
const OLDEST_DUE: &str = "herald_delivery_oldest_due_age_seconds";
const IN_FLIGHT: &str = "herald_delivery_in_flight";
const SILENT: &str = "herald_delivery_webhooks_not_answering";
const QUEUE_STATS_UP: &str = "herald_delivery_queue_stats_up";
const RECORD_FAILURES: &str = "herald_recorder_write_failures_total";

/// This node's lanes, as `/metrics` reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeLanes {
    /// Attempts running plus jobs queued.
    pub in_flight: usize,
    /// Webhooks attempted one at a time because their endpoint stopped answering.
    pub not_answering: usize,
}

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// The engine's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Handles for the series every attempt touches, registered once: looking a series up
    /// by name and labels hashes and compares the key, and three look-ups per attempt were
    /// ~1 % of Herald's CPU in the fan-out bench. Per-webhook failure counters stay looked
    /// up (their labels are unbounded, and they are only touched on failures).
    hot: Hot,
}

/// Pre-registered handles: attempts by result, settled deliveries by outcome, latency.
struct Hot {
    attempts: [(&'static str, metrics::Counter); 5],
    succeeded: metrics::Counter,
    failed: metrics::Counter,
    latency: metrics::Histogram,
}

/// Every result [`Metrics::attempt`] is called with (`outcome::label`).
const RESULTS: [&str; 5] = ["succeeded", "retry", "failed", "gone", "refused"];

impl Default for Metrics {
    fn default() -> Self {
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
        ];
        let builder = PrometheusBuilder::new();
        // Setting buckets only fails for an empty list.
        let builder = match builder.set_buckets_for_metric(Matcher::Full(LATENCY.into()), &buckets) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let counter = |name: &'static str, label: &'static str, value: &'static str| {
            recorder.register_counter(&Self::key(name, vec![Label::new(label, value)]), &META)
        };
        let hot = Hot {
            attempts: RESULTS.map(|r| (r, counter(ATTEMPTS, "result", r))),
            succeeded: counter(DELIVERIES, "outcome", "succeeded"),
            failed: counter(DELIVERIES, "outcome", "failed"),
            latency: recorder.register_histogram(&Self::key(LATENCY, Vec::new()), &META),
        };
        let m = Self {
            recorder,
            handle,
            hot,
        };
        m.describe();
        m
    }
}

impl Metrics {
    fn describe(&self) {
        use metrics::Unit;
        let d = |name: &'static str, unit: Option<Unit>, help: &'static str| match name {
            LATENCY => self.recorder.describe_histogram(name.into(), unit, help.into()),
            QUEUE_PENDING | QUEUE_DUE | OLDEST_DUE | IN_FLIGHT | SILENT => {
                self.recorder.describe_gauge(name.into(), unit, help.into())
            }
            _ => self.recorder.describe_counter(name.into(), unit, help.into()),
        };
        d(
            ATTEMPTS,
            None,
            "Delivery attempts by result (succeeded, retry, failed, gone, refused).",
        );
        d(
            DELIVERIES,
            None,
            "Deliveries settled by this node, by final outcome (succeeded, failed).",
        );
        d(
            LATENCY,
            Some(Unit::Seconds),
            "Duration of one delivery attempt, request to last body byte.",
        );
        d(WEBHOOK_FAILURES, None, "Failed attempts per webhook.");
        d(
            DISABLED,
            None,
            "Webhooks disabled by this node (410 Gone or the failure streak).",
        );
        d(
            QUEUE_PENDING,
            None,
            "Deliveries waiting for a first or next attempt (all nodes).",
        );
        d(QUEUE_DUE, None, "Pending deliveries already due (all nodes).");
        d(
            OLDEST_DUE,
            Some(Unit::Seconds),
            "How long the oldest due delivery has been waiting.",
        );
        d(IN_FLIGHT, None, "Attempts in flight or queued on this node.");
        d(
            SILENT,
            None,
            "Webhooks whose endpoint gave no answer to its last attempt on this node (timeout, \
             refused or reset connection, TLS failure): attempted one at a time until it answers.",
        );
        d(
            RECORD_FAILURES,
            None,
            "Batches of finished attempts the database refused, by what followed (retried, \
             given_up: their attempts are missing from the log and their deliveries are sent \
             again once their leases expire).",
        );
        // Shown at 0 from the start, so an alert can watch it before the first failure.
        for then in ["retried", "given_up"] {
            self.record_failure_counter(then).increment(0);
        }
    }

    fn record_failure_counter(&self, then: &'static str) -> metrics::Counter {
        self.recorder
            .register_counter(&Self::key(RECORD_FAILURES, vec![Label::new("then", then)]), &META)
    }

    /// Writing a batch of finished attempts failed; `given_up` when it will not be retried.
    pub fn record_failed(&self, given_up: bool) {
        self.record_failure_counter(if given_up { "given_up" } else { "retried" })
            .increment(1);
    }

    fn key(name: &'static str, labels: Vec<Label>) -> Key {
        Key::from_parts(name, labels)
    }

    /// One finished attempt.
    pub fn attempt(&self, tenant_id: i64, webhook_id: Uuid, result: &'static str, ok: bool, seconds: f64) {
        match self.hot.attempts.iter().find(|(r, _)| *r == result) {
            Some((_, counter)) => counter.increment(1),
            // A result added to `outcome::label` but not to `RESULTS` is still counted.
            None => self
                .recorder
                .register_counter(&Self::key(ATTEMPTS, vec![Label::new("result", result)]), &META)
                .increment(1),
        }
        self.hot.latency.record(seconds);
        match result {
            "succeeded" => self.hot.succeeded.increment(1),
            "failed" | "gone" | "refused" => self.hot.failed.increment(1),
            _ => {}
        }
        if !ok {
            let labels = vec![
                Label::new("tenant_id", tenant_id.to_string()),
                Label::new("webhook_id", webhook_id.to_string()),
            ];
            self.recorder
                .register_counter(&Self::key(WEBHOOK_FAILURES, labels), &META)
                .increment(1);
        }
    }

    /// A webhook was disabled.
    pub fn disabled(&self, n: usize) {
        self.recorder
            .register_counter(&Self::key(DISABLED, Vec::new()), &META)
            .increment(n as u64);
    }

    /// Renders everything, after refreshing the queue gauges from `stats` and this node's
    /// lanes.
    pub fn render(&self, stats: Option<&QueueStats>, lanes: NodeLanes, now: i64) -> String {
        let gauge = |name: &'static str, v: f64| {
            self.recorder
                .register_gauge(&Self::key(name, Vec::new()), &META)
                .set(v);
        };
        // Without the queue's figures (the database did not answer) the page still carries
        // this node's counters — the recorder's write failures above all, which rise while
        // the database fails — and says the queue gauges are stale.
        gauge(QUEUE_STATS_UP, if stats.is_some() { 1.0 } else { 0.0 });
        if let Some(stats) = stats {
            gauge(QUEUE_PENDING, stats.pending as f64);
            gauge(QUEUE_DUE, stats.due as f64);
            gauge(
                OLDEST_DUE,
                stats
                    .oldest_due_at
                    .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
            );
        }
        gauge(IN_FLIGHT, lanes.in_flight as f64);
        gauge(SILENT, lanes.not_answering as f64);
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_every_family() {
        let m = Metrics::default();
        let w = Uuid::new_v4();
        m.attempt(1, w, "retry", false, 0.2);
        m.attempt(1, w, "succeeded", true, 0.01);
        let text = m.render(
            Some(&QueueStats {
                pending: 3,
                due: 2,
                oldest_due_at: Some(0),
            }),
            NodeLanes {
                in_flight: 1,
                not_answering: 2,
            },
            5_000,
        );
        for needle in [
            "herald_delivery_queue_stats_up 1",
            "herald_delivery_attempts_total{result=\"retry\"} 1",
            "herald_deliveries_total{outcome=\"succeeded\"} 1",
            "herald_delivery_attempt_duration_seconds_bucket",
            &format!("herald_webhook_failures_total{{tenant_id=\"1\",webhook_id=\"{w}\"}} 1"),
            "herald_delivery_queue_pending 3",
            "herald_delivery_oldest_due_age_seconds 5",
            "herald_delivery_webhooks_not_answering 2",
            "herald_recorder_write_failures_total{then=\"given_up\"} 0",
            // Pre-registered series start at 0 rather than appearing on first use.
            "herald_delivery_attempts_total{result=\"gone\"} 0",
            "herald_deliveries_total{outcome=\"failed\"} 0",
            "herald_delivery_attempt_duration_seconds_count 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
    }

    #[test]
    fn without_the_queue_figures_the_counters_still_render() {
        let m = Metrics::default();
        m.attempt(1, Uuid::new_v4(), "succeeded", true, 0.01);
        let lanes = || NodeLanes {
            in_flight: 0,
            not_answering: 0,
        };
        let stats = QueueStats {
            pending: 7,
            due: 1,
            oldest_due_at: None,
        };
        m.render(Some(&stats), lanes(), 0);
        let text = m.render(None, lanes(), 0);
        assert!(text.contains("herald_delivery_queue_stats_up 0"), "{text}");
        assert!(
            text.contains("herald_deliveries_total{outcome=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(text.contains("herald_recorder_write_failures_total"), "{text}");
    }

    #[test]
    fn pre_registered_and_looked_up_results_add_up() {
        let m = Metrics::default();
        let w = Uuid::new_v4();
        for _ in 0..3 {
            m.attempt(1, w, "succeeded", true, 0.01);
        }
        m.attempt(1, w, "refused", false, 0.0);
        m.attempt(1, w, "not-in-results", false, 0.0);
        let stats = QueueStats {
            pending: 0,
            due: 0,
            oldest_due_at: None,
        };
        let text = m.render(Some(&stats), NodeLanes::default(), 0);
        for needle in [
            "herald_delivery_attempts_total{result=\"succeeded\"} 3",
            "herald_delivery_attempts_total{result=\"refused\"} 1",
            "herald_delivery_attempts_total{result=\"not-in-results\"} 1",
            "herald_deliveries_total{outcome=\"succeeded\"} 3",
            "herald_deliveries_total{outcome=\"failed\"} 1",
            "herald_webhook_failures_total{tenant_id=\"1\"",
        ] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
    }
}

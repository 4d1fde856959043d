//! Prometheus metrics, by tenant and outcome, and the `/metrics` endpoint.

use std::sync::LazyLock;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::{
    Encoder, Histogram, HistogramVec, IntCounterVec, TextEncoder, register_histogram_vec,
    register_int_counter_vec,
};

use crate::runtime::tiny_http::{Answer, serve};

/// Requests by tenant and outcome (`allowed`, `denied`, or the refusal's error code).
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_requests_total",
        "Requests by tenant and outcome.",
        &["tenant", "outcome"]
    )
    .expect("the metric registers once")
});

/// Decisions by tenant and effect.
pub static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_decisions_total",
        "Decisions by tenant and effect.",
        &["tenant", "decision"]
    )
    .expect("the metric registers once")
});

/// Lists and searches that could not use a compiled filter and decided item by item, by
/// adapter.
pub static FILTER_FALLBACKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_filter_fallbacks_total",
        "Lists and searches decided item by item because no filter could express the policies.",
        &["tenant", "adapter"]
    )
    .expect("the metric registers once")
});

/// Items a compiled filter let through that the decision point denied (withheld).
pub static FILTER_MISMATCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_filter_mismatches_total",
        "Items a compiled filter let through but the decision point denied (withheld, audited).",
        &["tenant"]
    )
    .expect("the metric registers once")
});

const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// Decision latency (entity loading included), by tenant.
pub static DECISION_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "gatehouse_decision_seconds",
        "Decision latency.",
        &["tenant"],
        LATENCY_BUCKETS.to_vec()
    )
    .expect("the metric registers once")
});

/// Upstream latency (request sent to response header received), by tenant.
pub static UPSTREAM_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "gatehouse_upstream_seconds",
        "Upstream latency to the response header.",
        &["tenant"],
        LATENCY_BUCKETS.to_vec()
    )
    .expect("the metric registers once")
});

/// Time spent in each phase of a proxied request, gateway-wide: what the gateway itself
/// costs, phase by phase (`bench/gateway/run.sh` reads it). No tenant label: one series
/// per phase, resolved once ([`phase`]).
pub static PHASE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "gatehouse_phase_seconds",
        "Time spent in each phase of a proxied request.",
        &["phase"],
        vec![
            0.000_001,
            0.000_002_5,
            0.000_005,
            0.000_01,
            0.000_025,
            0.000_05,
            0.000_1,
            0.000_25,
            0.000_5,
            0.001,
            0.002_5,
            0.01,
            0.1,
        ]
    )
    .expect("the metric registers once")
});

/// The phases of a proxied request, as [`PHASE_SECONDS`] names them.
pub mod phase {
    use std::sync::LazyLock;

    use prometheus::Histogram;

    use super::PHASE_SECONDS;

    macro_rules! phases {
        ($($(#[$doc:meta])* $name:ident = $label:literal;)*) => {$(
            $(#[$doc])*
            pub static $name: LazyLock<Histogram> =
                LazyLock::new(|| PHASE_SECONDS.with_label_values(&[$label]));
        )*};
    }

    phases! {
        /// Credential, tenant and admission.
        IDENTIFY = "identify";
        /// Finding the route.
        ROUTE = "route";
        /// The decision point: entities and Cedar.
        DECIDE = "decide";
        /// Building the audit record and queueing it.
        AUDIT_RECORD = "audit_record";
        /// Waiting for the record to be durable (where a request waits at all).
        AUDIT_DURABLE = "audit_durable";
        /// Signing the forwarded context.
        SIGN = "sign";
    }
}

/// Observes the time since `started` in `phase`.
pub fn observe_since(phase: &Histogram, started: std::time::Instant) {
    phase.observe(started.elapsed().as_secs_f64());
}

/// The text exposition of every metric.
pub fn render() -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Serves `GET /metrics`, and `GET /readyz` with the serving bundle's name, version and
/// hash, on its own address, apart from the proxied traffic (whose `/readyz` says only
/// whether it is ready).
pub struct MetricsEndpoint {
    /// Where it listens.
    pub address: String,
    /// The decision point, for its serving bundle.
    pub pdp: std::sync::Arc<gatehouse_pdp::Pdp>,
}

#[async_trait]
impl BackgroundService for MetricsEndpoint {
    async fn start(&self, shutdown: ShutdownWatch) {
        let pdp = self.pdp.clone();
        serve(&self.address, shutdown, move |head| {
            if head.starts_with("GET /metrics") {
                Answer {
                    status: "200 OK",
                    content_type: "text/plain; version=0.0.4",
                    body: render(),
                }
            } else if head.starts_with("GET /readyz") {
                let bundle = pdp.bundle().snapshot();
                let id = bundle.id();
                let body = serde_json::json!({
                    "bundle": { "name": &*id.name, "version": &*id.version, "hash": &*id.hash },
                });
                Answer {
                    status: "200 OK",
                    content_type: "application/json",
                    body: body.to_string(),
                }
            } else {
                Answer {
                    status: "404 Not Found",
                    content_type: "text/plain",
                    body: "only /metrics and /readyz here\n".into(),
                }
            }
        })
        .await;
    }
}

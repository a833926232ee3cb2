//! Live counters for Prometheus: with `[metrics] listen`, `GET /metrics` on that address answers
//! in the OpenMetrics text format when asked for it (Prometheus does), else in the Prometheus text
//! format 0.0.4 (prometheus-client's encoders for both), with every counter the run report
//! has: per port (driver counters, the driver's extended statistics, link state), per worker (packets, flow cache, simulation, every
//! drop reason and parse error, zeros included, so that `rate()` works from the first scrape), the
//! topology feed, and the process (version, uptime).
//!
//! The main lcore's loop collects the report (`run::Report`) once a second and hands it over here;
//! a scrape encodes the last one. So a scrape never touches DPDK or the workers (the port counters
//! come from `rte_eth_stats_get`, read on the main lcore as `--stats-interval` reads them), and
//! figures are at most a second old, well under any scrape interval. Off by default: the address is
//! the operator's choice (the REST API's listener needs a token; this one answers anyone who can
//! reach it, so bind it to a management address).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::run::Report;
use midogw::flowtable::sim::DropReason;
use midogw::flowtable::wire::ParseError;

/// How often the main lcore's loop refreshes the report a scrape shows.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The OpenMetrics text format's media type (what Prometheus asks for first).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The two text formats a scrape may get: OpenMetrics when its `Accept` names it (Prometheus
/// does), else the Prometheus text format 0.0.4 (curl, promtool, older collectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The last report and the process's start, shared by the main loop and the metrics listener.
#[derive(Debug)]
pub struct Metrics {
    latest: Mutex<Option<Report>>,
    started: Instant,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics { latest: Mutex::new(None), started: Instant::now() })
    }

    /// Hands over a fresh report: the next scrape shows it.
    pub fn update(&self, report: Report) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }

    /// The exposition: the last report's counters, in `format`.
    pub fn render(self: &Arc<Self>, format: Format) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(self)));
        let mut text = String::new();
        let encoded = match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry),
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::encode(&mut text, &registry),
        };
        // Writing into a String cannot fail; an encoder error would be a bug in the labels.
        if let Err(e) = encoded {
            tracing::error!("cannot encode the metrics: {e}");
        }
        text
    }
}

/// `GET /metrics`.
pub async fn serve(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    ([(header::CONTENT_TYPE, format.content_type())], metrics.render(format))
}

/// The `/metrics` app for the metrics listener.
pub fn app(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(serve)).with_state(metrics)
}

/// One metric family: a name, a help text, and its samples by label set.
struct Family {
    name: &'static str,
    help: &'static str,
    gauge: bool,
    /// A gauge's samples are divided by this (microseconds shown in Prometheus's base unit, seconds).
    divisor: u32,
    samples: Vec<(Vec<(&'static str, String)>, u64)>,
}

impl Family {
    fn counter(name: &'static str, help: &'static str) -> Family {
        Family { name, help, gauge: false, divisor: 1, samples: Vec::new() }
    }

    /// A gauge in seconds of samples given in microseconds.
    fn seconds_from_us(name: &'static str, help: &'static str) -> Family {
        Family { divisor: 1_000_000, ..Family::gauge(name, help) }
    }

    fn gauge(name: &'static str, help: &'static str) -> Family {
        Family { gauge: true, ..Family::counter(name, help) }
    }

    fn sample(mut self, labels: Vec<(&'static str, String)>, value: u64) -> Family {
        self.samples.push((labels, value));
        self
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let kind = if self.gauge { ConstGauge::new(0f64).metric_type() } else { ConstCounter::new(0u64).metric_type() };
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, kind)?;
        for (labels, value) in &self.samples {
            let sample = metric.encode_family(labels)?;
            if self.gauge && self.divisor != 1 {
                ConstGauge::new(*value as f64 / f64::from(self.divisor)).encode(sample)?;
            } else if self.gauge {
                ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(sample)?;
            } else {
                ConstCounter::new(*value).encode(sample)?;
            }
        }
        Ok(())
    }
}

/// The families a report gives, in a fixed order.
fn families(report: Option<&Report>, uptime_s: u64) -> Vec<Family> {
    let mut out = vec![
        Family::gauge("midogw_info", "The appliance's version")
            .sample(vec![("version", env!("CARGO_PKG_VERSION").into())], 1),
        Family::gauge("midogw_uptime_seconds", "Seconds since the appliance started").sample(vec![], uptime_s),
    ];
    let Some(report) = report else { return out };

    let port = |name: &str| vec![("port", name.to_string())];
    type PortField = fn(&crate::run::PortReport) -> u64;
    let port_counters: [(&'static str, &'static str, PortField); 8] = [
        ("midogw_port_rx_packets", "Packets the port received", |p| p.stats.rx_packets),
        ("midogw_port_rx_bytes", "Bytes the port received", |p| p.stats.rx_bytes),
        ("midogw_port_tx_packets", "Packets the port sent", |p| p.stats.tx_packets),
        ("midogw_port_tx_bytes", "Bytes the port sent", |p| p.stats.tx_bytes),
        ("midogw_port_rx_missed", "Packets the NIC dropped because its RX queues were full", |p| p.stats.rx_missed),
        ("midogw_port_rx_errors", "Erroneous packets received", |p| p.stats.rx_errors),
        ("midogw_port_tx_errors", "Failed transmissions", |p| p.stats.tx_errors),
        ("midogw_port_rx_nombuf", "RX mbuf allocation failures", |p| p.stats.rx_nombuf),
    ];
    for (name, help, field) in port_counters {
        let mut f = Family::counter(name, help);
        for p in &report.ports {
            f = f.sample(port(&p.name), field(p));
        }
        out.push(f);
    }
    // The driver's extended statistics, as it names them (per queue, per error class; an 82599
    // has about 150): cumulative counters, one family with the driver's name as a label.
    let mut xstats =
        Family::counter("midogw_port_xstats", "The driver's extended statistics (rte_eth_xstats), by name");
    for p in &report.ports {
        for (name, value) in &p.xstats {
            xstats = xstats.sample(vec![("port", p.name.clone()), ("name", name.clone())], *value);
        }
    }
    out.push(xstats);
    let mut link = Family::gauge("midogw_port_link_up", "1 when the port's link is up");
    for p in &report.ports {
        link = link.sample(port(&p.name), u64::from(p.link_up));
    }
    out.push(link);

    let worker = |w: usize| vec![("worker", w.to_string())];
    type WorkerField = fn(&crate::run::PipelineReport) -> u64;
    let worker_counters: [(&'static str, &'static str, WorkerField); 22] = [
        ("midogw_worker_rx_packets", "Frames the worker received", |w| w.rx_packets),
        ("midogw_worker_tx_packets", "Frames the worker sent", |w| w.tx_packets),
        ("midogw_worker_tx_full_drops", "Frames dropped because a TX queue was full", |w| w.tx_full_drops),
        ("midogw_worker_cache_hits", "Flow cache hits", |w| w.cache_hits),
        ("midogw_worker_cache_misses", "Flow cache misses (simulated)", |w| w.cache_misses),
        ("midogw_worker_cache_evictions", "Flows evicted from a full flow cache", |w| w.cache_evictions),
        ("midogw_worker_cache_invalidated", "Flows invalidated by topology changes", |w| w.cache_invalidated),
        ("midogw_worker_cache_expired", "Flows expired (idle or hard timeout)", |w| w.cache_expired),
        ("midogw_worker_simulated", "Frames run through the topology simulation", |w| w.simulated),
        ("midogw_worker_generated", "Frames the worker made (ARP, NDP, ICMP answers)", |w| w.generated),
        ("midogw_worker_icmp_errors_limited", "ICMP errors over the worker's rate, not sent", |w| {
            w.icmp_errors_limited
        }),
        ("midogw_worker_neighbour_polls", "Unicast ARP requests / solicitations to stale neighbours in use", |w| {
            w.neighbour_polls
        }),
        ("midogw_worker_alloc_failures", "Mbuf allocation failures", |w| w.alloc_failures),
        ("midogw_worker_unknown_egress", "Frames for a port the worker has no TX queue on", |w| w.unknown_egress),
        ("midogw_worker_snapshots_taken", "Topology snapshots the worker took", |w| w.snapshots_taken),
        ("midogw_worker_rx_ipv4_checksum_offloaded", "Frames whose IPv4 header checksum the NIC verified", |w| {
            w.rx_ipv4_checksum_offloaded
        }),
        ("midogw_worker_learning_sent", "Neighbour and MAC entries handed to the other workers", |w| w.learning_sent),
        ("midogw_worker_learning_applied", "Neighbour and MAC entries applied from the other workers", |w| {
            w.learning_applied
        }),
        ("midogw_worker_learning_lost", "Entries for the other workers lost to a full queue", |w| w.learning_lost),
        ("midogw_worker_handed_off", "Decapsulated frames handed to the worker owning their connection", |w| {
            w.handed_off
        }),
        ("midogw_worker_handoffs_received", "Decapsulated frames another worker handed to this one", |w| {
            w.handoffs_received
        }),
        ("midogw_worker_handoff_full", "Frames for another worker dropped because its queue was full", |w| {
            w.handoff_full
        }),
    ];
    for (name, help, field) in worker_counters {
        let mut f = Family::counter(name, help);
        for w in &report.pipelines {
            f = f.sample(worker(w.worker), field(w));
        }
        out.push(f);
    }
    type WorkerGauge = (&'static str, &'static str, WorkerField);
    let worker_gauges: [WorkerGauge; 2] = [
        ("midogw_worker_cache_flows", "Flows in the worker's flow cache", |w| w.cache_flows),
        ("midogw_worker_snapshot_generation", "Topology generation the worker runs", |w| w.snapshot_generation),
    ];
    for (name, help, field) in worker_gauges {
        let mut f = Family::gauge(name, help);
        for w in &report.pipelines {
            f = f.sample(worker(w.worker), field(w));
        }
        out.push(f);
    }
    let mut drops = Family::counter("midogw_worker_drops", "Frames dropped, by reason (`midogw` docs list them)");
    let mut parse = Family::counter("midogw_worker_parse_errors", "Why `malformed` frames did not parse");
    for w in &report.pipelines {
        for reason in DropReason::ALL {
            let n = w.drops.get(reason.name()).copied().unwrap_or(0);
            drops = drops.sample(vec![("worker", w.worker.to_string()), ("reason", reason.name().into())], n);
        }
        for error in ParseError::ALL {
            let n = w.parse_errors.get(error.name()).copied().unwrap_or(0);
            parse = parse.sample(vec![("worker", w.worker.to_string()), ("error", error.name().into())], n);
        }
    }
    out.extend([drops, parse]);

    if let Some(feed) = &report.topology_feed {
        out.extend([
            Family::counter("midogw_topology_compiles", "Topology compiles the feed ran").sample(vec![], feed.compiles),
            Family::counter("midogw_topology_compile_errors", "Compiles that failed (the cores kept their topology)")
                .sample(vec![], feed.compile_errors),
            Family::counter("midogw_topology_published", "Topology snapshots published to the workers")
                .sample(vec![], feed.published),
            Family::gauge("midogw_topology_generation", "Topology generation published")
                .sample(vec![], feed.generation),
            Family::seconds_from_us(
                "midogw_topology_change_to_cores_seconds",
                "Last change, from seen to every worker running it",
            )
            .sample(vec![], feed.last_change_to_cores_us),
            Family::gauge("midogw_topology_store_unreachable", "1 while the store cannot be read")
                .sample(vec![], u64::from(feed.store_unreachable)),
        ]);
    }
    out
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        for family in families(latest.as_ref(), self.started.elapsed().as_secs()) {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{PipelineReport, PortReport};
    use midogw::PortStats;

    fn report() -> Report {
        let stats = PortStats { rx_packets: 5, rx_bytes: 320, tx_packets: 4, tx_bytes: 256, ..PortStats::default() };
        let port = |name: &str, up| PortReport {
            name: name.into(),
            id: 0,
            mac: "02:00:00:00:00:01".into(),
            link_up: up,
            stats,
            xstats: [("rx_q0_packets".to_string(), 5), ("rx_good_packets".to_string(), 5)].into(),
        };
        let mut pipeline = PipelineReport { rx_packets: 9, cache_hits: 7, cache_flows: 2, ..PipelineReport::default() };
        pipeline.drops.insert(DropReason::NoRoute.name(), 3);
        pipeline.parse_errors.insert(ParseError::ALL[0].name(), 1);
        Report {
            seconds: 1.0,
            ports: vec![port("uplink0", true), port("down\"1", false)],
            links: Vec::new(),
            pipelines: vec![pipeline],
            topology_feed: None,
        }
    }

    /// Every counter of the report is exposed with its labels, every drop reason with a value
    /// (zeros too), in OpenMetrics text: counters end in `_total`, the exposition in `# EOF`.
    #[test]
    fn a_report_is_exposed_as_openmetrics() {
        let metrics = Metrics::new();
        let before = metrics.render(Format::OpenMetrics);
        assert!(before.contains("midogw_info{version=\"") && before.contains("midogw_uptime_seconds "), "{before}");
        assert!(!before.contains("midogw_port_"), "no data path yet:\n{before}");
        metrics.update(report());
        let text = metrics.render(Format::OpenMetrics);
        for line in [
            "# TYPE midogw_port_rx_packets counter",
            "midogw_port_rx_packets_total{port=\"uplink0\"} 5",
            "midogw_port_tx_bytes_total{port=\"uplink0\"} 256",
            "midogw_port_link_up{port=\"uplink0\"} 1",
            "# TYPE midogw_port_xstats counter",
            "midogw_port_xstats_total{port=\"uplink0\",name=\"rx_q0_packets\"} 5",
            "midogw_port_xstats_total{port=\"down\\\"1\",name=\"rx_good_packets\"} 5",
            "midogw_port_link_up{port=\"down\\\"1\"} 0",
            "midogw_worker_rx_packets_total{worker=\"0\"} 9",
            "midogw_worker_cache_hits_total{worker=\"0\"} 7",
            "midogw_worker_cache_flows{worker=\"0\"} 2",
            "midogw_worker_drops_total{worker=\"0\",reason=\"no_route\"} 3",
            "midogw_worker_drops_total{worker=\"0\",reason=\"vlan_at_router_port\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        let reasons = text.lines().filter(|l| l.starts_with("midogw_worker_drops_total{")).count();
        assert_eq!(reasons, DropReason::ALL.len());
        let errors = text.lines().filter(|l| l.starts_with("midogw_worker_parse_errors_total{")).count();
        assert_eq!(errors, ParseError::ALL.len());
        assert_eq!(text.lines().last(), Some("# EOF"));

        // The Prometheus text format: the same samples, `_total` in the family name, no EOF.
        let plain = metrics.render(Format::PrometheusText);
        for line in [
            "# TYPE midogw_port_rx_packets_total counter",
            "midogw_port_rx_packets_total{port=\"uplink0\"} 5",
            "midogw_worker_drops_total{worker=\"0\",reason=\"no_route\"} 3",
        ] {
            assert!(plain.lines().any(|l| l == line), "{line} missing from:\n{plain}");
        }
        assert!(!plain.contains("# EOF"), "{plain}");
    }

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_the_text_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
    }
}

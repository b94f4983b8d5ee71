//! Prometheus metrics in the text exposition format: requests and latency by route and
//! status, and per database its records, WAL size, bytes written and fsync latency.

use crate::registry::Registry;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use valori_engine::wal::FSYNC_BUCKETS;

/// Upper bounds (seconds) of the request latency buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A per-database metric: name, type, help, and how to read it from the stats.
type Gauge = (
    &'static str,
    &'static str,
    &'static str,
    fn(&valori_engine::Stats) -> f64,
);

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    /// Non-cumulative counts per bucket, the last above every bound.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
}

/// Request counters, keyed by (method, route, status).
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    /// Counts one request of `route` (the route template, e.g. `/v1/databases/{db}/search`).
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let s = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(c) = s.buckets.get_mut(i) {
            *c += 1;
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP valori_http_requests_total HTTP requests answered, by method, route and status.\n# TYPE valori_http_requests_total counter"
        );
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route, status), s) in map.iter() {
            let _ = writeln!(
                out,
                "valori_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP valori_http_request_duration_seconds Time to answer, by method, route and status.\n# TYPE valori_http_request_duration_seconds histogram"
        );
        for ((method, route, status), s) in map.iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            histogram(
                &mut out,
                "valori_http_request_duration_seconds",
                &labels,
                &LATENCY_BUCKETS,
                &s.buckets,
                s.sum,
                s.count,
            );
        }
        drop(map);

        let dbs = registry.all();
        let stats: Vec<_> = dbs
            .iter()
            .filter_map(|(name, db)| db.stats().ok().map(|s| (name, s)))
            .collect();
        let gauges: [Gauge; 5] = [
            ("valori_records", "gauge", "Records stored.", |s| {
                s.records as f64
            }),
            (
                "valori_sequence",
                "gauge",
                "Sequence number of the last command applied.",
                |s| s.seq as f64,
            ),
            (
                "valori_wal_bytes",
                "gauge",
                "Bytes of the WAL since the newest snapshot.",
                |s| s.wal_bytes as f64,
            ),
            (
                "valori_wal_written_bytes_total",
                "counter",
                "Bytes appended to the WAL since the server started.",
                |s| s.log.bytes_written as f64,
            ),
            (
                "valori_wal_fsyncs_total",
                "counter",
                "WAL fsyncs since the server started.",
                |s| s.log.fsyncs as f64,
            ),
        ];
        for (name, kind, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (db, s) in &stats {
                let _ = writeln!(out, "{name}{{database=\"{}\"}} {}", escape(db), get(s));
            }
        }
        let _ = writeln!(
            out,
            "# HELP valori_wal_fsync_seconds WAL fsync latency.\n# TYPE valori_wal_fsync_seconds histogram"
        );
        for (db, s) in &stats {
            histogram(
                &mut out,
                "valori_wal_fsync_seconds",
                &format!("database=\"{}\"", escape(db)),
                &FSYNC_BUCKETS,
                &s.log.fsync_buckets,
                s.log.fsync_seconds,
                s.log.fsyncs,
            );
        }
        out
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
    count: u64,
) {
    let mut cumulative = 0;
    for (bound, c) in bounds.iter().zip(counts) {
        cumulative += c;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

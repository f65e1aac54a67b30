//! A small Prometheus registry: request counts by route and status, an
//! in-flight gauge, open connections, a latency histogram, the database
//! pool and build info. Written here rather
//! than pulled in, because it is a few atomics and one map.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::VERSION;
use crate::storage::{PoolStats, Storage};

/// Upper bounds, in seconds, of the latency histogram's buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of requests that matched no route: one label for all of
/// them, so that scanners probing random paths cannot grow the registry.
const UNMATCHED: &str = "unmatched";

#[derive(Default)]
pub struct Metrics {
    in_flight: AtomicU64,
    connections_open: AtomicU64,
    routes: Mutex<BTreeMap<String, RouteSeries>>,
}

#[derive(Default)]
struct RouteSeries {
    /// Keyed by method and status code.
    responses: BTreeMap<(&'static str, u16), u64>,
    latency: Histogram,
}

#[derive(Default)]
struct Histogram {
    /// Per bucket, not cumulative; summed when rendered.
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[bucket] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

/// Counts one request (or connection) as in flight for as long as it
/// lives, so one whose client goes away mid-way is still taken off the gauge.
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Requests that have started and not yet been answered.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one connection as open for as long as the guard lives.
    pub fn open_connection(&self) -> InFlight<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.connections_open)
    }

    /// A request head hyper refused before any route saw it.
    pub fn record_refused_head(&self, status: StatusCode) {
        self.record(UNMATCHED, "OTHER", status, Duration::ZERO);
    }

    fn start_request(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    fn record(&self, route: &str, method: &'static str, status: StatusCode, elapsed: Duration) {
        // A panic elsewhere while holding the lock leaves the counters usable.
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let series = if let Some(series) = routes.get_mut(route) {
            series
        } else {
            routes.entry(route.to_owned()).or_default()
        };
        *series
            .responses
            .entry((method, status.as_u16()))
            .or_default() += 1;
        series.latency.observe(elapsed.as_secs_f64());
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);

        out.push_str(
            "# HELP http_requests_total Requests answered, by route template, method and status.\n",
        );
        out.push_str("# TYPE http_requests_total counter\n");
        for (route, series) in routes.iter() {
            for ((method, status), count) in &series.responses {
                let _ = writeln!(
                    out,
                    "http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                    escape(route)
                );
            }
        }

        out.push_str("# HELP http_requests_in_flight Requests started and not yet answered.\n");
        out.push_str("# TYPE http_requests_in_flight gauge\n");
        let _ = writeln!(out, "http_requests_in_flight {}", self.in_flight());

        out.push_str("# HELP http_connections_open Client connections open now.\n");
        out.push_str("# TYPE http_connections_open gauge\n");
        let _ = writeln!(
            out,
            "http_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );

        out.push_str("# HELP http_request_duration_seconds Time from request to response head, by route template.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (route, series) in routes.iter() {
            let route = escape(route);
            let histogram = &series.latency;
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum_seconds
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }

        out.push_str("# HELP server_build_info Build information; the value is always 1.\n");
        out.push_str("# TYPE server_build_info gauge\n");
        let _ = writeln!(out, "server_build_info{{version=\"{VERSION}\"}} 1");
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Standard methods by name; anything else shares one label, which keeps the
/// number of series bounded whatever clients send.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Outermost middleware: sees every request, including those no route
/// matched and those refused before reaching a handler.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let _in_flight = metrics.start_request();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(
        route_of(&response),
        method,
        response.status(),
        started.elapsed(),
    );
    response
}

/// The route template that answered, as [`tag_route`] left it on the
/// response, or one label for requests no route matched.
pub fn route_of(response: &Response) -> &str {
    response
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
}

/// Route-level middleware: the matched path template is known only after
/// routing, so it is handed back out to [`track`] on the response.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

pub async fn render(
    State(metrics): State<Arc<Metrics>>,
    State(storage): State<Storage>,
) -> Response {
    let mut text = metrics.render();
    text.push_str(&pool_text(storage.pool_stats()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The database pool: an operator sees it run dry (waiting above zero,
/// idle at zero) before requests start failing with 503.
fn pool_text(pool: PoolStats) -> String {
    let mut out = String::new();
    let gauges = [
        (
            "db_pool_max_connections",
            "Connections the pool may open (DB_POOL_SIZE).",
            u64::from(pool.max),
        ),
        (
            "db_pool_connections",
            "Connections the pool has open.",
            u64::from(pool.open),
        ),
        (
            "db_pool_idle_connections",
            "Open connections not in use.",
            pool.idle as u64,
        ),
        (
            "db_pool_waiting",
            "Operations waiting for a connection.",
            pool.waiting,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let metrics = Metrics::default();
        let ms = Duration::from_millis(1);
        metrics.record("/api/v1/notes/{id}", "GET", StatusCode::OK, ms);
        metrics.record("/api/v1/notes/{id}", "GET", StatusCode::OK, ms);
        metrics.record("/api/v1/notes/{id}", "GET", StatusCode::NOT_FOUND, ms);
        let text = metrics.render();
        assert!(text.contains(
            "http_requests_total{route=\"/api/v1/notes/{id}\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "http_requests_total{route=\"/api/v1/notes/{id}\",method=\"GET\",status=\"404\"} 1\n"
        ));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.record("/health", "GET", StatusCode::OK, Duration::from_millis(3));
        metrics.record("/health", "GET", StatusCode::OK, Duration::from_millis(300));
        metrics.record("/health", "GET", StatusCode::OK, Duration::from_mins(1));
        let text = metrics.render();
        for (le, count) in [
            ("0.005", 1),
            ("0.25", 1),
            ("0.5", 2),
            ("10", 2),
            ("+Inf", 3),
        ] {
            let line = format!(
                "http_request_duration_seconds_bucket{{route=\"/health\",le=\"{le}\"}} {count}\n"
            );
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("http_request_duration_seconds_count{route=\"/health\"} 3\n"));
    }

    #[test]
    fn in_flight_gauge_follows_request_lifetimes() {
        let metrics = Metrics::default();
        let first = metrics.start_request();
        let second = metrics.start_request();
        assert_eq!(metrics.in_flight(), 2);
        drop(first);
        assert_eq!(metrics.in_flight(), 1);
        drop(second);
        assert!(metrics.render().contains("http_requests_in_flight 0\n"));
    }

    #[test]
    fn build_info_carries_the_version() {
        let text = Metrics::default().render();
        assert!(text.contains(&format!("server_build_info{{version=\"{VERSION}\"}} 1\n")));
    }

    #[test]
    fn pool_gauges_are_rendered() {
        let text = pool_text(PoolStats {
            open: 3,
            idle: 1,
            max: 5,
            waiting: 7,
        });
        for line in [
            "db_pool_max_connections 5\n",
            "db_pool_connections 3\n",
            "db_pool_idle_connections 1\n",
            "db_pool_waiting 7\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn unusual_methods_share_one_label() {
        let method = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&method), "OTHER");
    }
}

//! One log line per request: method, matched route, status, duration,
//! response bytes and a request id. The id is the client's `x-request-id`
//! when it is a plain token, otherwise one generated here, and is echoed in
//! the response. Nothing a client sends reaches the line unchecked: the
//! route is the matched template, the method one of a fixed set, and an id
//! with anything but letters, digits and `-_.:` is replaced, so request data
//! cannot forge or split a log line in either format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Body as _;

use crate::metrics;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;

pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = metrics::method_label(request.method());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_plain_token(id))
        .map_or_else(generate_id, str::to_owned);
    let mut response = next.run(request).await;
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .or_else(|| response.body().size_hint().exact());
    tracing::info!(
        method,
        route = metrics::route_of(&response),
        status = response.status().as_u16(),
        duration_ms = crate::logging::tenths_of_millis(started.elapsed()),
        bytes,
        request_id,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn is_plain_token(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
}

/// Unique within the process, and across restarts by the start time.
fn generate_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let started = *STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
            })
    });
    format!("{started:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_are_kept_and_anything_else_is_not() {
        assert!(is_plain_token("3f2c-11ee.b:9_x"));
        for forged in ["", "a b", "a\"b", "a\nb", "ü", &"x".repeat(129)] {
            assert!(!is_plain_token(forged), "{forged:?}");
        }
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate_id(), generate_id());
        assert!(is_plain_token(&generate_id()));
    }
}

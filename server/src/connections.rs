//! The accept loop and each connection's life, with every wait bounded.
//!
//! 1. At most `MAX_CONNECTIONS` are open; the next one waits in the
//!    kernel's backlog until one closes, and the open ones keep being served.
//! 2. A connection that has no request in flight gets `HEADER_READ_TIMEOUT`
//!    for a request head (counted from its first byte, or from the accept),
//!    and `IDLE_TIMEOUT` between requests; then it is closed.
//! 3. A request body gets `BODY_READ_TIMEOUT` between two reads
//!    ([`crate::body_timeout`]).
//! 4. Out of file descriptors, the loop says so once, keeps serving the
//!    connections it has and retries until accepting works again.
//! 5. On drain, an idle connection is closed, and one mid-head at once;
//!    one with a request finishes it and closes.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::body_timeout::TimedBody;
use crate::config::Limits;
use crate::metrics::Metrics;

/// How long the accept loop waits before trying again after running out
/// of file descriptors (or kernel memory): long enough not to spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves until `drain` turns true, then returns once every connection has
/// closed. The listener is closed as the drain begins.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut drain: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut starved = false;
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = drain.wait_for(|draining| *draining) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = drain.wait_for(|draining| *draining) => break,
        };
        match accepted {
            Ok((stream, _)) => {
                if std::mem::take(&mut starved) {
                    tracing::info!("accepting connections again");
                }
                let connection = Connection {
                    app: app.clone(),
                    limits,
                    metrics: Arc::clone(&metrics),
                    activity: Arc::default(),
                };
                let drain = drain.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    connection.run(stream, drain).await;
                });
            }
            Err(error) if is_resource_exhaustion(&error) => {
                if !std::mem::replace(&mut starved, true) {
                    tracing::error!(
                        %error,
                        open_connections = limits.max_connections as usize - slots.available_permits() - 1,
                        "out of file descriptors: serving the open connections, retrying the accept"
                    );
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
            // A connection that failed between SYN and accept: its own problem.
            Err(error) => tracing::debug!(%error, "accept failed"),
        }
    }
    drop(listener);
    // Every connection holds a slot until it closes.
    let _ = slots.acquire_many(limits.max_connections).await;
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)
    )
}

struct Connection {
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut drain: watch::Receiver<bool>) {
        let _open = self.metrics.open_connection();
        let activity = Arc::clone(&self.activity);
        let io = TokioIo::new(Tracked {
            stream,
            activity: Arc::clone(&activity),
        });
        let service = RequestService {
            app: self.app.clone(),
            activity: Arc::clone(&activity),
            body_read_timeout: self.limits.body_read_timeout,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .max_header_size(self.limits.max_header_bytes)
            .header_read_timeout(None);
        let mut connection = pin!(builder.serve_connection(
            io,
            hyper::service::service_fn(move |request| service.clone().call(request))
        ));
        // False even if the drain has begun: the branch below then runs at once.
        let mut draining = false;
        loop {
            let changed = activity.changed.notified();
            let deadline = activity.deadline(&self.limits);
            tokio::select! {
                outcome = connection.as_mut() => {
                    if let Err(error) = outcome {
                        self.record_refusal(&error);
                    }
                    return;
                }
                () = changed => {}
                () = sleep_until(deadline) => {
                    if activity.deadline(&self.limits).is_some_and(|at| at <= Instant::now()) {
                        tracing::debug!("closing a connection that sent no request in time");
                        return;
                    }
                }
                _ = drain.wait_for(|draining| *draining), if !draining => {
                    draining = true;
                    // hyper closes an idle connection once its last answer
                    // is flushed, and one with a request after answering
                    // it; but it waits for a head it has begun to read,
                    // and nothing is owed to that.
                    connection.as_mut().graceful_shutdown();
                    if activity.is_mid_head() {
                        return;
                    }
                }
            }
        }
    }

    /// hyper answers a head it cannot parse itself (400, 414, 431): count
    /// it like any other answer.
    fn record_refusal(&self, error: &hyper::Error) {
        let status = if error.is_parse_too_large() {
            if error.to_string().to_ascii_lowercase().contains("uri") {
                axum::http::StatusCode::URI_TOO_LONG
            } else {
                axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
        } else if error.is_parse() {
            axum::http::StatusCode::BAD_REQUEST
        } else {
            tracing::debug!(%error, "connection ended with an error");
            return;
        };
        self.metrics.record_refused_head(status);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, shared by its stream, its requests and
/// its watchdog.
struct Activity {
    state: Mutex<ActivityState>,
    /// Woken when a request starts or ends: the deadline changes.
    changed: Notify,
}

struct ActivityState {
    requests_in_flight: usize,
    requests_served: u64,
    /// The first byte of the next request head, once it arrived.
    head_started: Option<Instant>,
    /// Since when the connection has had nothing to do.
    idle_since: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                requests_in_flight: 0,
                requests_served: 0,
                head_started: None,
                idle_since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }
}

impl Activity {
    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Part of a request head has arrived, and no request is in flight.
    fn is_mid_head(&self) -> bool {
        let state = self.state();
        state.requests_in_flight == 0 && state.head_started.is_some()
    }

    fn bytes_arrived(&self) {
        let mut state = self.state();
        if state.requests_in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
        }
    }

    fn request_started(&self) {
        let mut state = self.state();
        state.requests_in_flight += 1;
        state.head_started = None;
        drop(state);
        self.changed.notify_one();
    }

    fn request_ended(&self) {
        let mut state = self.state();
        state.requests_in_flight -= 1;
        state.requests_served += 1;
        state.idle_since = Instant::now();
        drop(state);
        self.changed.notify_one();
    }

    /// When the connection must be closed unless a request starts; none
    /// while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let state = self.state();
        if state.requests_in_flight > 0 {
            return None;
        }
        Some(match state.head_started {
            Some(started) => started + limits.header_read_timeout,
            // A new connection owes its first request within the header
            // timeout, as in nginx and Go; a kept-alive one may idle longer.
            None if state.requests_served == 0 => state.idle_since + limits.header_read_timeout,
            None => state.idle_since + limits.idle_timeout,
        })
    }
}

/// The socket, telling the connection's activity when bytes arrive.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Runs one request through the app, counted as in flight on its
/// connection until its response is ready.
#[derive(Clone)]
struct RequestService {
    app: Router,
    activity: Arc<Activity>,
    body_read_timeout: Duration,
}

/// Ends the request on its connection however the handler finishes.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl RequestService {
    fn call(
        self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send {
        self.activity.request_started();
        let in_flight = InFlight(Arc::clone(&self.activity));
        let timeout = self.body_read_timeout;
        let request: Request = request.map(|body| Body::new(TimedBody::new(body, timeout)));
        async move {
            let _in_flight = in_flight;
            self.app.oneshot(request).await
        }
    }
}

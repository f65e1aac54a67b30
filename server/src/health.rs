//! Liveness and readiness, with `application/health+json` bodies in the
//! shape of the IETF "Health Check Response Format for HTTP APIs" draft.
//!
//! Liveness never touches the database: a database outage must make the
//! service unready (taken out of rotation), not dead (restarted in a loop).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::VERSION;
use crate::state::Draining;
use crate::storage::Storage;

/// How long readiness waits for the database before calling it down.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn live() -> Response {
    health_response(true, &json!({ "status": "pass", "version": VERSION }))
}

pub async fn ready(State(storage): State<Storage>, State(draining): State<Draining>) -> Response {
    let draining = draining.is_draining();
    let database = if draining {
        // Going away anyway: no point in a round trip to the database.
        None
    } else {
        Some(check_database(&storage).await)
    };
    readiness(draining, database.as_ref())
}

/// The outcome of one database round trip.
struct DatabaseCheck {
    kind: &'static str,
    elapsed: Duration,
    failure: Option<String>,
}

async fn check_database(storage: &Storage) -> DatabaseCheck {
    let started = Instant::now();
    let failure = match tokio::time::timeout(DATABASE_TIMEOUT, can_serve(storage)).await {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(_) => Some(format!(
            "no answer within {} ms",
            DATABASE_TIMEOUT.as_millis()
        )),
    };
    DatabaseCheck {
        kind: storage.kind(),
        elapsed: started.elapsed(),
        failure,
    }
}

/// The database answers, and, after a write failed for a fault of the
/// database, can write again. The write is tried only then, so that a
/// healthy server's probes stay read-only.
async fn can_serve(storage: &Storage) -> Result<(), String> {
    storage.ping().await.map_err(|error| error.to_string())?;
    if storage.has_write_fault() {
        storage
            .probe_write()
            .await
            .map_err(|error| format!("cannot write: {error}"))?;
    }
    Ok(())
}

fn readiness(draining: bool, database: Option<&DatabaseCheck>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut output = Vec::new();
    checks.insert(
        "server:draining".to_owned(),
        json!([{
            "componentType": "system",
            "observedValue": draining,
            "status": pass_or_fail(!draining),
        }]),
    );
    if draining {
        output.push("server is shutting down".to_owned());
    }
    if let Some(database) = database {
        let mut check = json!({
            "componentId": database.kind,
            "componentType": "datastore",
            "observedValue": (database.elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            "observedUnit": "ms",
            "status": pass_or_fail(database.failure.is_none()),
        });
        if let Some(failure) = &database.failure {
            check["output"] = Value::from(failure.as_str());
            output.push(format!("database: {failure}"));
        }
        checks.insert("database:responseTime".to_owned(), json!([check]));
    }
    let ready = output.is_empty();
    let mut body = json!({
        "status": pass_or_fail(ready),
        "version": VERSION,
        "checks": checks,
    });
    if !ready {
        body["output"] = Value::from(output.join("; "));
    }
    health_response(ready, &body)
}

fn pass_or_fail(ok: bool) -> &'static str {
    if ok { "pass" } else { "fail" }
}

fn health_response(ok: bool, body: &Value) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/health+json"),
            ),
            // A cached "pass" would hide an outage.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDb;

    async fn body_of(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn ready_passes_when_the_database_answers() {
        let temp = TempDb::new("ready-pass");
        let storage = Storage::connect(&temp.database(), 1).await.unwrap();
        let response = ready(State(storage.clone()), State(Draining::default())).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/health+json"
        );
        let body = body_of(response).await;
        assert_eq!(body["status"], "pass");
        assert_eq!(body["checks"]["database:responseTime"][0]["status"], "pass");
        storage.close().await;
    }

    #[tokio::test]
    async fn ready_fails_at_once_while_draining() {
        let temp = TempDb::new("ready-draining");
        let storage = Storage::connect(&temp.database(), 1).await.unwrap();
        let draining = Draining::default();
        draining.start();
        let response = ready(State(storage.clone()), State(draining)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_of(response).await;
        assert_eq!(body["status"], "fail");
        assert_eq!(body["checks"]["server:draining"][0]["observedValue"], true);
        storage.close().await;
    }

    #[tokio::test]
    async fn ready_fails_when_the_database_is_closed() {
        let temp = TempDb::new("ready-closed");
        let storage = Storage::connect(&temp.database(), 1).await.unwrap();
        storage.close().await;
        let response = ready(State(storage), State(Draining::default())).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_of(response).await;
        assert_eq!(body["checks"]["database:responseTime"][0]["status"], "fail");
    }

    #[tokio::test]
    async fn live_passes_without_a_database() {
        let response = live().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_of(response).await["status"], "pass");
    }
}

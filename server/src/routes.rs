//! The HTTP surface: notes under `/api/v1/notes`, plus health, readiness
//! and metrics.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{Note, Storage};
use crate::{health, metrics};

/// Larger pages are refused (400) rather than silently clamped, so a client
/// never mistakes a short page for the end of the list.
pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;

pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route("/api/v1/notes", get(list_notes).post(create_note))
        .route("/api/v1/notes/{id}", get(get_note).delete(delete_note))
        .route("/health", get(health::live))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route_layer(middleware::from_fn(metrics::tag_route))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

#[derive(Deserialize)]
struct NewNote {
    title: String,
    body: String,
}

async fn create_note(
    State(storage): State<Storage>,
    payload: Result<Json<NewNote>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(new) = payload?;
    if new.title.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "title must not be empty",
        ));
    }
    let note = storage.create(&new.title, &new.body).await?;
    let location = format!("/api/v1/notes/{}", note.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(note),
    )
        .into_response())
}

async fn get_note(
    State(storage): State<Storage>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Note>, ApiError> {
    let Path(id) = id?;
    storage
        .get(id)
        .await?
        .map(Json)
        .ok_or_else(|| note_not_found(id))
}

async fn delete_note(
    State(storage): State<Storage>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    if storage.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(note_not_found(id))
    }
}

fn note_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("no note with id {id}"))
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Serialize)]
struct NotePage {
    notes: Vec<Note>,
    limit: i64,
    offset: i64,
    /// Where the next page starts; `null` on the last page.
    next_offset: Option<i64>,
}

async fn list_notes(
    State(storage): State<Storage>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<NotePage>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request(format!(
            "offset must not be negative, got {offset}"
        )));
    }
    let notes = storage.list(limit, offset).await?;
    let full_page = i64::try_from(notes.len()).is_ok_and(|len| len == limit);
    let next_offset = if full_page {
        offset.checked_add(limit)
    } else {
        None
    };
    Ok(Json(NotePage {
        notes,
        limit,
        offset,
        next_offset,
    }))
}

async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

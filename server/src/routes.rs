//! The HTTP surface: notes under `/api/v1/notes`, plus health, readiness
//! and metrics.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::Deserialize;

use crate::error::ApiError;
use crate::page::{self, Page};
use crate::state::{AppState, ResponseLimit};
use crate::storage::{Note, Storage};
use crate::upload::{self, BodyLimit};
use crate::{access_log, health, metrics};

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
        // Inside `tag_route`, so that a refusal is counted under its route.
        .route_layer(middleware::from_fn_with_state(
            BodyLimit(body_limit),
            upload::refuse_declared_oversize,
        ))
        .route_layer(middleware::from_fn(metrics::tag_route))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(access_log::log))
        .with_state(state)
}

#[derive(Deserialize)]
struct NewNote {
    title: String,
    body: String,
}

/// Characters that show nothing: a title made only of them is blank.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
        )
}

async fn create_note(
    State(storage): State<Storage>,
    State(ResponseLimit(response_limit)): State<ResponseLimit>,
    payload: Result<Json<NewNote>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(new) = payload?;
    if new.title.chars().all(is_invisible) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "title must not be empty",
        ));
    }
    // PostgreSQL cannot store NUL in text, SQLite can: refused on both, so
    // that the same note gets the same answer whatever the database.
    if new.title.contains('\0') || new.body.contains('\0') {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "title and body must not contain NUL (U+0000)",
        ));
    }
    let note_bytes = page::note_bytes(&new.title, &new.body);
    if note_bytes > page::room(response_limit) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the note would take {note_bytes} bytes in a page, over the {} a page holds",
                page::room(response_limit)
            ),
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

async fn list_notes(
    State(storage): State<Storage>,
    State(ResponseLimit(response_limit)): State<ResponseLimit>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
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
    let mut page = Page::new(response_limit);
    let mut more = false;
    // One note past the page tells whether there is a next page, so that a
    // last page that is exactly full still ends the list.
    storage
        .visit_notes(limit + 1, offset, page.room(), |note| {
            more = page.len() == limit || !page.push(&note);
            !more
        })
        .await?;
    if more && page.is_empty() {
        // Written before RESPONSE_LIMIT was lowered: no page can hold it.
        tracing::error!(
            offset,
            response_limit,
            "a note is larger than RESPONSE_LIMIT"
        );
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a note here is larger than the server's page limit",
        ));
    }
    let next_offset = if more {
        offset.checked_add(page.len())
    } else {
        None
    };
    Ok(page.into_response(limit, offset, next_offset))
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

//! Uploads over `BODY_LIMIT` are refused on their declared length, before a
//! byte of the body is read. hyper sends `100 Continue` only when a handler
//! starts reading the body, so a client that asked for it is told `413`
//! instead, and a client that declared a huge length and sends nothing is
//! not waited for. Bodies without a length (chunked) are cut at the limit
//! by `DefaultBodyLimit` as they arrive.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

pub async fn refuse_declared_oversize(
    State(BodyLimit(limit)): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body of {length} bytes is over the limit of {limit}"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

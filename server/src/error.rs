//! Every error a client sees is JSON, `{"error": "..."}`, with the status
//! that says whose fault it is: 4xx for the request, 5xx only for us.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::body_timeout::BodyReadTimedOut;
use crate::db_fault::DbFault;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response()
    }
}

// axum's rejections already carry the right status (400 bad syntax, 413 too
// large, 415 wrong content type, 422 wrong shape); only the body changes.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> Self {
                Self::new(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

from_rejection!(PathRejection, QueryRejection);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(error) = cause {
            if let Some(timed_out) = error.downcast_ref::<BodyReadTimedOut>() {
                return Self::new(StatusCode::REQUEST_TIMEOUT, timed_out.to_string());
            }
            cause = error.source();
        }
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match DbFault::of(&error) {
            DbFault::Full => {
                tracing::error!(error = %error, "database full: write refused");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "no room to store the note",
                )
            }
            // The database is away or saturated: worth a retry, not a bug.
            DbFault::Unavailable => {
                tracing::warn!(error = %error, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
            }
            DbFault::Internal => {
                tracing::error!(error = %error, "database error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

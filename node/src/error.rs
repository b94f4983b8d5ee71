//! The one error shape of every non-2xx answer: `{"code": "DIMENSION", "message": "..."}`.
//!
//! `code` is a row of the error table (`valori_kernel::ErrorCode`) spelled as C spells it
//! without the `VALORI_` prefix (`DIMENSION` is C's `VALORI_DIMENSION` and Python's
//! `DimensionError`), or one of two HTTP-only codes: `UNAUTHORIZED` (401, no or unknown API
//! key) and `FORBIDDEN` (403, a read-only key on a write).

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use valori_engine::valori_kernel::{self, ErrorCode};

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error class: a code of the error table in C's spelling without `VALORI_`
    /// (`INVALID_INPUT`, `DIMENSION`, `FULL`, `NOT_FOUND`, `EXISTS`, `CORRUPT`, `BUSY`, `IO`,
    /// `POISONED`, `MISUSE`, `INTERNAL`, ...), or `UNAUTHORIZED` / `FORBIDDEN`.
    #[schema(example = "DIMENSION")]
    pub code: String,
    /// What was wrong and what to do.
    pub message: String,
}

/// An error answer: a status and the body.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

/// `InvalidInput` -> `INVALID_INPUT`: the C constant's name without `VALORI_`.
pub fn code_name(code: ErrorCode) -> String {
    let mut out = String::new();
    for (i, c) in code.name().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The HTTP status of an error class. Bad input is always a 4xx.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput | ErrorCode::InsufficientSize => StatusCode::BAD_REQUEST,
        ErrorCode::Dimension => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Exists | ErrorCode::Full | ErrorCode::Misuse => StatusCode::CONFLICT,
        ErrorCode::Busy | ErrorCode::Poisoned => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error of a table class, with its usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::with_status(status_of(code), code, message)
    }

    /// An error of a table class with a specific status (413 for a body over the limit).
    pub fn with_status(
        status: StatusCode,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code_name(code),
                message: message.into(),
            },
        }
    }

    /// Invalid input (400).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidInput, message)
    }

    /// 401: no API key, or one the server does not know.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            body: ErrorBody {
                code: "UNAUTHORIZED".into(),
                message: "this server requires an API key: send `Authorization: Bearer <key>`"
                    .into(),
            },
        }
    }

    /// 403: a read-only key on a call that writes.
    pub fn forbidden() -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            body: ErrorBody {
                code: "FORBIDDEN".into(),
                message: "this API key is read-only; writes need a read-write key".into(),
            },
        }
    }

    /// An internal error (a bug: a task panicked).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }
}

impl From<valori_engine::Error> for ApiError {
    fn from(e: valori_engine::Error) -> ApiError {
        let status = match &e {
            // A command over one log record's limit: the body was too large.
            valori_engine::Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => status_of(e.code()),
        };
        ApiError::with_status(status, e.code(), e.detail())
    }
}

impl From<valori_kernel::Error> for ApiError {
    fn from(e: valori_kernel::Error) -> ApiError {
        ApiError::new(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// A rejected request body, path or query: its status (400, 413, 415, 422) with our shape.
fn rejected(status: StatusCode, text: String) -> ApiError {
    let code = if status.is_client_error() {
        ErrorCode::InvalidInput
    } else {
        ErrorCode::Internal
    };
    // 422 from axum means "JSON of the wrong shape": bad input, reported as 400 like the rest
    // (422 is kept for a wrong dimension).
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::with_status(status, code, text)
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        rejected(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        rejected(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        rejected(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        rejected(r.status(), r.body_text())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_in_c() {
        assert_eq!(code_name(ErrorCode::InvalidInput), "INVALID_INPUT");
        assert_eq!(code_name(ErrorCode::Dimension), "DIMENSION");
        assert_eq!(code_name(ErrorCode::InsufficientSize), "INSUFFICIENT_SIZE");
        assert_eq!(code_name(ErrorCode::Io), "IO");
        // Every row is distinct and only bad input (never a server fault) is 4xx.
        let names: std::collections::BTreeSet<String> =
            ErrorCode::ALL.iter().map(|c| code_name(*c)).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for c in ErrorCode::ALL {
            let server_side = matches!(c, ErrorCode::Internal | ErrorCode::Corrupt | ErrorCode::Io);
            assert_eq!(
                status_of(*c).is_server_error(),
                server_side || matches!(c, ErrorCode::Busy | ErrorCode::Poisoned),
                "{c:?}"
            );
        }
    }
}

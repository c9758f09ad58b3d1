//! API errors: each carries a stable `extensions.code`, the offending input path, and a message that says how to
//! fix it. Store details are logged, never sent.

use crate::store::{Rejection, StoreError};
use async_graphql::ErrorExtensions;

/// An error a resolver returns. Deliberately not `Display`: it converts into a GraphQL error only through the
/// `From` impl below, which keeps its code and field (async-graphql's blanket impl for `Display` types would drop them).
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The input is wrong; `field` is its path, e.g. `input.trust`.
    BadInput {
        /// Path of the offending input.
        field: String,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// The input clashes with the current state (a duplicate key, an archived stakeholder).
    Conflict {
        /// Path of the offending input.
        field: String,
        /// What clashed and how to resolve it.
        message: String,
    },
    /// An argument exceeds a configured limit.
    LimitExceeded {
        /// The limit (`limits.max_page_size`, …), sent as `extensions.limit`.
        limit: &'static str,
        /// Path of the offending input.
        field: String,
        /// The limit and how to stay within it.
        message: String,
    },
    /// A request refused for what it would cost or for the load it would add, before or while it ran.
    Refused {
        /// The configured limit that refused it (`limits.max_cost`, …), sent as `extensions.limit`.
        limit: &'static str,
        /// What was over the limit and how to stay within it.
        message: String,
        /// Seconds after which the same request may succeed (overload and rate limits), sent as
        /// `extensions.retryAfter` (and as HTTP `Retry-After` with status 429).
        retry_after: Option<u64>,
    },
    /// A subscriber fell too far behind the change log; it resumes after `resume_after`.
    Lagging {
        /// The cursor of the last event the subscriber was sent.
        resume_after: String,
        /// How far behind it was, the limit, and how to resume.
        message: String,
    },
    /// No valid API key.
    Unauthenticated(String),
    /// A valid key whose role may not do this.
    Forbidden(String),
    /// The store cannot be reached.
    Unavailable,
    /// Something failed on our side; details are in the server log.
    Internal,
}

impl ApiError {
    /// A bad value at `field`.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadInput { field: field.into(), message: message.into() }
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadInput { .. } => "BAD_USER_INPUT",
            ApiError::Conflict { .. } => "CONFLICT",
            ApiError::LimitExceeded { .. } | ApiError::Refused { .. } | ApiError::Lagging { .. } => "LIMIT_EXCEEDED",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::Unavailable => "UNAVAILABLE",
            ApiError::Internal => "INTERNAL",
        }
    }

    /// What was wrong and how to fix it.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadInput { field, message }
            | ApiError::Conflict { field, message }
            | ApiError::LimitExceeded { field, message, .. }
                if !field.is_empty() =>
            {
                format!("{field}: {message}")
            }
            ApiError::BadInput { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::LimitExceeded { message, .. } => message.clone(),
            ApiError::Unauthenticated(message) | ApiError::Forbidden(message) => message.clone(),
            ApiError::Lagging { message, .. } | ApiError::Refused { message, .. } => message.clone(),
            ApiError::Unavailable => "the graph store is unavailable; retry shortly".into(),
            ApiError::Internal => "internal error; the server log has the details".into(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadInput { field, .. }
            | ApiError::Conflict { field, .. }
            | ApiError::LimitExceeded { field, .. } => Some(field.as_str()).filter(|field| !field.is_empty()),
            _ => None,
        }
    }

    /// Maps a store error; `path_of` turns a refused command's index into the input path it came from.
    pub fn from_store(error: StoreError, path_of: impl Fn(usize) -> String) -> Self {
        match error {
            StoreError::Rejected { command, field, reason, message } => {
                let base = path_of(command);
                let field = match (base.is_empty(), field.is_empty()) {
                    (_, true) => base,
                    (true, false) => field,
                    (false, false) => format!("{base}.{field}"),
                };
                match reason {
                    Rejection::Invalid | Rejection::NotFound => ApiError::BadInput { field, message },
                    Rejection::Conflict => ApiError::Conflict { field, message },
                }
            }
            StoreError::InvalidCursor(message) => ApiError::bad_input("after", message),
            StoreError::Unavailable(details) => {
                tracing::warn!(%details, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::Internal(details) => {
                tracing::error!(%details, "store failure");
                ApiError::Internal
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::from_store(error, |_| String::new())
    }
}

impl From<std::sync::Arc<StoreError>> for ApiError {
    fn from(error: std::sync::Arc<StoreError>) -> Self {
        StoreError::clone(&error).into()
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        let field = error.field().map(str::to_owned);
        async_graphql::Error::new(error.message()).extend_with(|_, extensions| {
            extensions.set("code", code);
            if let Some(field) = field {
                extensions.set("field", field);
            }
            match &error {
                ApiError::Lagging { resume_after, .. } => extensions.set("resumeAfter", resume_after.as_str()),
                ApiError::LimitExceeded { limit, .. } => extensions.set("limit", *limit),
                ApiError::Refused { limit, retry_after, .. } => {
                    extensions.set("limit", *limit);
                    if let Some(seconds) = retry_after {
                        extensions.set("retryAfter", *seconds);
                    }
                }
                _ => {}
            }
        })
    }
}

impl ApiError {
    /// This error as a response-level error (raised before any field ran).
    pub fn into_server_error(self) -> async_graphql::ServerError {
        let error = async_graphql::Error::from(self);
        let mut server = async_graphql::ServerError::new(error.message, None);
        server.extensions = error.extensions;
        server
    }
}

/// Result of a resolver.
pub type ApiResult<T> = Result<T, ApiError>;

/// Turns a domain validation failure into a bad-input error at `field`.
pub fn at<T>(field: impl Into<String>, result: Result<T, crate::domain::InvalidValue>) -> ApiResult<T> {
    result.map_err(|error| ApiError::bad_input(field, error.0))
}

//! Lambda's service errors on the wire, in the shape the AWS SDKs decode: the emulator
//! answers with them, and so does the gateway's Lambda-compatible ingress.
//!
//! The SDKs take the error code from the `X-Amzn-ErrorType` header first; without it
//! aws-sdk-lambda cannot type the error. The body's message field is `message` for most
//! errors but `Message` for ResourceNotFound and ServiceException, as Lambda sends them.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The synchronous invocation payload limit: 6 MB.
pub const SYNC_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// The asynchronous (Event) payload limit: 1 MB since October 2025 (256 KB before).
pub const ASYNC_PAYLOAD_LIMIT: usize = 1024 * 1024;

/// A Lambda API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `Message` rather than `message` in the body.
    capitalised: bool,
    reason: Option<&'static str>,
    retry_after_s: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            capitalised: false,
            reason: None,
            retry_after_s: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            capitalised: true,
            ..Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
        }
    }

    pub fn throttled(reason: &'static str) -> Self {
        Self {
            reason: Some(reason),
            retry_after_s: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Rate Exceeded.",
            )
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    pub fn invalid_content(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaTypeException",
            message,
        )
    }

    pub fn provisioned_config_not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ProvisionedConcurrencyConfigNotFoundException",
            message,
        )
    }

    pub fn service(message: impl Into<String>) -> Self {
        Self {
            capitalised: true,
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                message,
            )
        }
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// An error with any code, for passing on one the gateway received.
    pub fn other(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message)
    }

    /// Sets the throttle's reason and Retry-After.
    pub fn with_retry(mut self, reason: Option<&'static str>, retry_after_s: Option<u32>) -> Self {
        self.reason = reason;
        self.retry_after_s = retry_after_s;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "Type": "User" });
        let key = if self.capitalised {
            "Message"
        } else {
            "message"
        };
        body[key] = self.message.into();
        if self.status.is_server_error() {
            body["Type"] = "Service".into();
        }
        if let Some(reason) = self.reason {
            body["Reason"] = reason.into();
        }
        if let Some(after) = self.retry_after_s {
            body["retryAfterSeconds"] = after.to_string().into();
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        if let Some(after) = self.retry_after_s {
            headers.insert("retry-after", HeaderValue::from(after));
        }
        response
    }
}

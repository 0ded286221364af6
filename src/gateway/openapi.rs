//! The public contract as an OpenAPI 3.1 document, generated from the handlers' annotations
//! (utoipa) and served at `GET /v1/openapi.json`, so that client teams can generate their
//! clients. The error body is a real type here, and the tests read the gateway's error
//! answers into it, so the document cannot drift from what is sent.

use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every `/v1` error: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `unauthenticated`, `forbidden`, `rate_limited`,
    /// `unknown_function`, `unknown_target`, `invalid_json`, `invalid_request`, `body_timeout`,
    /// `payload_too_large`, `method_not_allowed`, `no_route`, `throttled`, `function_error`,
    /// `upstream_error`, `timeout`, `not_ready`, `overloaded`, `internal`.
    pub code: String,
    /// For people: names what was wrong.
    pub message: String,
    /// Lambda's throttle Reason, on `throttled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On `function_error`: Lambda's `X-Amz-Function-Error` (`Unhandled`, `Handled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_error: Option<String>,
    /// On `function_error`: what the function answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok`, `ready` or `not_ready`.
    pub status: String,
    /// Why not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "warmgate",
        description = "Serve AI inference from AWS Lambda without cold starts."
    ),
    paths(
        super::routes::invoke_v1,
        super::routes::invoke_lambda_api,
        super::ends::environment_ended,
        super::calls::call_reported,
        super::routes::healthz,
        super::routes::readyz,
    ),
    components(schemas(ErrorBody, ErrorDetail, Status, super::ends::EnvironmentEnded, super::calls::CallReport)),
    modifiers(&Credentials),
    tags(
        (name = "invoke", description = "Invoke a configured function"),
        (name = "extension", description = "For warmgate's Lambda extension"),
        (name = "health", description = "For the load balancer"),
    )
)]
struct ApiDoc;

/// The two ways a caller proves who it is (see README, "Access").
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                super::access::API_KEY_HEADER,
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("an API key, or a JWT")
                    .build(),
            ),
        );
    }
}

/// The document, with this build's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

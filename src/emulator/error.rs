//! The platform's refusals as Lambda API errors.

pub use crate::lambda::wire::{ApiError, ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT};
use crate::platform::{ControlError, Rejection};

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::NotFound { message } => Self::not_found(message),
            Rejection::Throttled { reason } => Self::throttled(reason.as_str()),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::NotFound(m) => Self::not_found(m),
            ControlError::ProvisionedConfigNotFound(m) => Self::provisioned_config_not_found(m),
            ControlError::InvalidParameter(m) => Self::invalid_parameter(m),
            ControlError::Throttled => Self::throttled("CallerRateLimitExceeded"),
        }
    }
}

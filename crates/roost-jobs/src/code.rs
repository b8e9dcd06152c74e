//! The error codes of the device jobs API, and what each becomes on the
//! HTTP APIs.

/// A `code` of a `/rejected` reply (the reference's section 5.2), as the
/// device SDKs' error enums know them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidTopic,
    InvalidJson,
    InvalidRequest,
    InvalidStateTransition,
    ResourceNotFound,
    VersionMismatch,
    InternalError,
    RequestThrottled,
    TerminalStateReached,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidTopic => "InvalidTopic",
            ErrorCode::InvalidJson => "InvalidJson",
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::InvalidStateTransition => "InvalidStateTransition",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::VersionMismatch => "VersionMismatch",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::RequestThrottled => "RequestThrottled",
            ErrorCode::TerminalStateReached => "TerminalStateReached",
        }
    }

    /// The exception (`x-amzn-ErrorType`) and HTTP status the same refusal
    /// gets from `iot-jobs-data` and the control plane. An expected
    /// version that does not match is a `VersionConflictException` there.
    pub fn http(self) -> (&'static str, u16) {
        match self {
            ErrorCode::InvalidTopic | ErrorCode::InvalidJson | ErrorCode::InvalidRequest => {
                ("InvalidRequestException", 400)
            }
            ErrorCode::InvalidStateTransition => ("InvalidStateTransitionException", 409),
            ErrorCode::ResourceNotFound => ("ResourceNotFoundException", 404),
            ErrorCode::VersionMismatch => ("VersionConflictException", 409),
            ErrorCode::InternalError => ("ServiceUnavailableException", 503),
            ErrorCode::RequestThrottled => ("ThrottlingException", 429),
            ErrorCode::TerminalStateReached => ("TerminalStateException", 410),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

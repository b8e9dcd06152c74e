//! Registry errors, split by cause. Each variant is one AWS error code, so the
//! control plane turns a `RegistryError` into its HTTP answer in one place and
//! never has to guess from a message.

/// What went wrong with a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    AlreadyExists {
        message: String,
        resource_id: Option<String>,
        resource_arn: Option<String>,
    },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    VersionConflict(String),
    #[error("{0}")]
    DeleteConflict(String),
    /// A job or job execution cannot make the change from where it stands.
    #[error("{0}")]
    InvalidStateTransition(String),
    #[error("{0}")]
    CertificateState(String),
    #[error("{0}")]
    CertificateValidation(String),
    #[error("{0}")]
    CertificateConflict(String),
    #[error("{0}")]
    MalformedPolicy(String),
    #[error("{0}")]
    VersionsLimitExceeded(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    RegistrationCodeValidation(String),
    /// A topic rule's SQL does not parse (the message carries the position).
    #[error("{0}")]
    SqlParse(String),
    /// A fault of ours (storage, I/O). The message is logged, never sent.
    #[error("internal failure: {0}")]
    Internal(String),
}

impl RegistryError {
    /// The AWS error code (`x-amzn-ErrorType`) this error is reported as.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "ResourceNotFoundException",
            Self::AlreadyExists { .. } => "ResourceAlreadyExistsException",
            Self::InvalidRequest(_) => "InvalidRequestException",
            Self::VersionConflict(_) => "VersionConflictException",
            Self::DeleteConflict(_) => "DeleteConflictException",
            Self::InvalidStateTransition(_) => "InvalidStateTransitionException",
            Self::CertificateState(_) => "CertificateStateException",
            Self::CertificateValidation(_) => "CertificateValidationException",
            Self::CertificateConflict(_) => "CertificateConflictException",
            Self::MalformedPolicy(_) => "MalformedPolicyException",
            Self::VersionsLimitExceeded(_) => "VersionsLimitExceededException",
            Self::LimitExceeded(_) => "LimitExceededException",
            Self::RegistrationCodeValidation(_) => "RegistrationCodeValidationException",
            Self::SqlParse(_) => "SqlParseException",
            Self::Internal(_) => "InternalFailureException",
        }
    }

    /// The HTTP status AWS's model gives that error code.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::AlreadyExists { .. } => 409,
            Self::InvalidRequest(_) => 400,
            Self::VersionConflict(_) => 409,
            Self::DeleteConflict(_) => 409,
            Self::InvalidStateTransition(_) => 409,
            Self::CertificateState(_) => 406,
            Self::CertificateValidation(_) => 400,
            Self::CertificateConflict(_) => 409,
            Self::MalformedPolicy(_) => 400,
            Self::VersionsLimitExceeded(_) => 409,
            Self::LimitExceeded(_) => 410,
            Self::RegistrationCodeValidation(_) => 400,
            Self::SqlParse(_) => 400,
            Self::Internal(_) => 500,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
}

impl From<roost_jobs::job::JobError> for RegistryError {
    fn from(e: roost_jobs::job::JobError) -> Self {
        match e {
            roost_jobs::job::JobError::InvalidRequest(m) => Self::InvalidRequest(m),
            roost_jobs::job::JobError::InvalidStateTransition(m) => Self::InvalidStateTransition(m),
        }
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(format!("storage: {e}"))
    }
}

impl From<sqlx::migrate::MigrateError> for RegistryError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Internal(format!("storage migration: {e}"))
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(format!("i/o: {e}"))
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

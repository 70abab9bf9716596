//! The one error type of hallpass.
//!
//! Core modules return `Result<T, Error>`; nothing in the core knows HTTP.
//! `status()` and `code()` below are the only place an error becomes an HTTP
//! status; each dialect in `api/` only chooses the envelope it is written in.
//! Variants are named by what the client learns. `Internal` carries text for
//! the log only: it is never sent to a client.

use std::fmt;

/// Everything that can go wrong while serving a request or running a command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Wrong username or password, or an unknown user: the same answer for all.
    InvalidCredentials,
    /// Unknown client, or a wrong (or unexpected) client secret.
    ClientInvalid,
    /// An auth code that is unknown, used, expired or bound to another client.
    CodeExpired,
    /// A token that has expired.
    TokenExpired,
    /// A token that is malformed, forged or of the wrong kind.
    TokenInvalid,
    /// A token whose session was revoked (logout, reuse detection).
    TokenRevoked,
    /// No credentials were presented where they are required.
    Unauthenticated,
    /// The old password given to change-password is wrong.
    IncorrectPassword,
    /// The right password, but the account is disabled.
    UserInactive,
    /// A second factor is owed before this sign-in can complete.
    MfaRequired,
    /// A wrong, used or expired one-time code (TOTP, recovery, emailed).
    OtpInvalid,
    /// Authenticated, but not allowed to do this.
    Forbidden(String),
    /// The thing named does not exist (only said to callers entitled to know).
    NotFound(String),
    /// The request conflicts with what exists (duplicate, already enabled).
    Conflict(String),
    /// A field is missing, of the wrong type or refused by a rule.
    Validation {
        /// The JSON field at fault, without a leading slash.
        field: String,
        /// A stable machine code: `required`, `type`, `invalid`, `too_short`…
        code: &'static str,
        /// A sentence for a person.
        message: String,
    },
    /// The request itself is unreadable (malformed JSON, bad query).
    BadRequest(String),
    /// The request body is over the 64 KiB limit.
    PayloadTooLarge,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// No route has this path.
    RouteNotFound,
    /// The path exists, but not for this method; carries the allowed ones.
    MethodNotAllowed(Vec<&'static str>),
    /// Too many attempts; try again after this many seconds.
    RateLimited {
        /// Seconds until a retry may succeed (the Retry-After header).
        retry_after: u64,
    },
    /// A route of an API hallpass speaks that it does not serve (SAML
    /// sign-in); the text says what, for the client.
    NotImplemented(String),
    /// A server-side failure; the text is logged, never sent.
    Internal(String),
}

impl Error {
    /// The HTTP status for this error: the one mapping in the crate.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::InvalidCredentials
            | Error::ClientInvalid
            | Error::CodeExpired
            | Error::TokenExpired
            | Error::TokenInvalid
            | Error::TokenRevoked
            | Error::Unauthenticated
            | Error::IncorrectPassword
            | Error::MfaRequired
            | Error::OtpInvalid => 401,
            Error::UserInactive | Error::Forbidden(_) => 403,
            Error::NotFound(_) | Error::RouteNotFound => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::RequestTimeout => 408,
            Error::PayloadTooLarge => 413,
            Error::Validation { .. } => 422,
            Error::RateLimited { .. } => 429,
            Error::Internal(_) => 500,
            Error::NotImplemented(_) => 501,
        }
    }

    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidCredentials => "invalid_credentials",
            Error::ClientInvalid => "client_invalid",
            Error::CodeExpired => "code_expired",
            Error::TokenExpired => "token_expired",
            Error::TokenInvalid => "token_invalid",
            Error::TokenRevoked => "token_revoked",
            Error::Unauthenticated => "unauthenticated",
            Error::IncorrectPassword => "incorrect_password",
            Error::UserInactive => "user_inactive",
            Error::MfaRequired => "mfa_required",
            Error::OtpInvalid => "otp_invalid",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::RouteNotFound => "route_not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::Conflict(_) => "conflict",
            Error::Validation { .. } => "VALIDATION_FAILED",
            Error::BadRequest(_) => "bad_request",
            Error::PayloadTooLarge => "payload_too_large",
            Error::RequestTimeout => "request_timeout",
            Error::RateLimited { .. } => "rate_limited",
            Error::Internal(_) => "internal",
            Error::NotImplemented(_) => "not_implemented",
        }
    }

    /// The message a client may see. Never contains internal detail.
    pub fn public_message(&self) -> String {
        match self {
            Error::Forbidden(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::BadRequest(m)
            | Error::NotImplemented(m) => m.clone(),
            Error::Validation { message, .. } => message.clone(),
            Error::Internal(_) => "Internal Server Error".into(),
            other => other.to_string(),
        }
    }

    /// A validation error for `field`.
    pub fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Error {
        Error::Validation {
            field: field.to_string(),
            code,
            message: message.into(),
        }
    }

    /// The error for a required field that is absent or empty.
    pub fn required(field: &str) -> Error {
        Error::invalid(field, "required", format!("{field} is required"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidCredentials => f.write_str("Invalid Credentials"),
            Error::ClientInvalid => f.write_str("Client Invalid"),
            Error::CodeExpired => f.write_str("Code Expired"),
            Error::TokenExpired => f.write_str("Token Expired"),
            Error::TokenInvalid => f.write_str("Token Invalid"),
            Error::TokenRevoked => f.write_str("TokenRevoked"),
            Error::Unauthenticated => f.write_str("Authorization header is missing or malformed"),
            Error::IncorrectPassword => f.write_str("Incorrect Password"),
            Error::UserInactive => f.write_str("UserInactive"),
            Error::MfaRequired => f.write_str("User Verification Failed"),
            Error::OtpInvalid => f.write_str("Otp Invalid"),
            Error::Forbidden(m) => write!(f, "forbidden: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::Validation { field, message, .. } => write!(f, "{field}: {message}"),
            Error::BadRequest(m) => write!(f, "bad request: {m}"),
            Error::PayloadTooLarge => f.write_str("Request body is larger than 64 KiB"),
            Error::RequestTimeout => f.write_str("The request body did not arrive in time"),
            Error::RouteNotFound => f.write_str("No such endpoint"),
            Error::MethodNotAllowed(_) => f.write_str("Method not allowed on this endpoint"),
            Error::RateLimited { retry_after } => {
                write!(f, "Too many attempts; retry after {retry_after} s")
            }
            Error::Internal(m) => write!(f, "internal: {m}"),
            Error::NotImplemented(m) => write!(f, "not implemented: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Internal(format!("sqlite: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Internal(format!("io: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Internal(format!("json: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_auth_failure_is_a_401_and_internal_text_is_never_public() {
        assert_eq!(Error::InvalidCredentials.status(), 401);
        assert_eq!(Error::CodeExpired.public_message(), "Code Expired");
        let e = Error::Internal("sqlite: disk I/O error at /secret/path".into());
        assert_eq!(e.status(), 500);
        assert!(!e.public_message().contains("secret"));
        assert_eq!(Error::RateLimited { retry_after: 3 }.status(), 429);
        assert_eq!(Error::required("password").status(), 422);
        let saml = Error::NotImplemented("SAML sign-in is not supported by hallpass".into());
        assert_eq!((saml.status(), saml.code()), (501, "not_implemented"));
        assert_eq!(
            saml.public_message(),
            "SAML sign-in is not supported by hallpass"
        );
    }
}

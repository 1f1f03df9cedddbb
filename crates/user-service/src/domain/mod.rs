//! Account rules, free of I/O and of protobuf: a value of these types is valid.

mod names;
mod password;
mod profile;
mod session;

pub use names::{DisplayName, Email, Login, Username};
pub use password::{NewPassword, Password};
pub use profile::{AvatarUrl, Bio};
pub use session::{PresentedToken, RotationDecision, SessionRules, decide_rotation};

/// A user, as the verified caller of a use case or the subject of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub uuid::Uuid);

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub use platform::InvalidField;

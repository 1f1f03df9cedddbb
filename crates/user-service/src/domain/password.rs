use super::InvalidField;

/// A few of the most common passwords, refused outright (the length rule already refuses
/// most of the well-known lists).
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789012",
    "0987654321",
    "qwertyuiop",
    "qwerty1234",
    "qwerty123456",
    "qwertyuiopas",
    "password12",
    "password123",
    "password1234",
    "passwordpassword",
    "iloveyou12",
    "iloveyou1234",
    "letmein123",
    "letmein12345",
    "welcome123",
    "welcome12345",
    "administrator",
    "1234567890ab",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "abcdefghij",
    "abc1234567",
    "football12",
    "baseball12",
];

/// A password acceptable for a new account: 10 to 128 characters (NIST SP 800-63B lengths),
/// not a common one, not one character repeated, not containing the username.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([REDACTED])")
    }
}

impl NewPassword {
    pub fn parse(raw: &str, username: &str) -> Result<Self, InvalidField> {
        let invalid = |reason: &str| InvalidField::new("password", reason);
        let length = raw.chars().count();
        if length < 10 {
            return Err(invalid("must be at least 10 characters"));
        }
        if length > 128 {
            return Err(invalid("must be at most 128 characters"));
        }
        let lower = raw.to_lowercase();
        if COMMON.contains(&lower.as_str()) {
            return Err(invalid("is too common"));
        }
        let mut chars = raw.chars();
        if let Some(first) = chars.next()
            && chars.all(|c| c == first)
        {
            return Err(invalid("must not be one character repeated"));
        }
        if username.len() >= 3 && lower.contains(&username.to_lowercase()) {
            return Err(invalid("must not contain the username"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A password presented at login: present, and at most
/// [`platform::MAX_LOGIN_PASSWORD_BYTES`] (nothing longer is worth hashing).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

impl Password {
    pub fn parse(raw: String) -> Result<Self, InvalidField> {
        if raw.is_empty() {
            return Err(InvalidField::new("password", "is required"));
        }
        if raw.len() > platform::MAX_LOGIN_PASSWORD_BYTES {
            return Err(InvalidField::new(
                "password",
                format!(
                    "must be at most {} bytes",
                    platform::MAX_LOGIN_PASSWORD_BYTES
                ),
            ));
        }
        Ok(Self(raw))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_naming_the_field() {
        for weak in [
            "short",
            "password1234",
            "aaaaaaaaaaaa",
            "ann_lee_rocks_2024",
            &"x".repeat(129),
        ] {
            let err = NewPassword::parse(weak, "ann_lee").expect_err(weak);
            assert_eq!(err.field, "password");
        }
        assert!(NewPassword::parse("correct horse battery staple", "ann_lee").is_ok());
    }

    #[test]
    fn a_login_password_is_required_and_bounded() {
        assert!(Password::parse(String::new()).is_err());
        assert!(Password::parse("x".repeat(1025)).is_err());
        let p = Password::parse("hunter2 but longer".into()).expect("valid");
        assert!(!format!("{p:?}").contains("hunter"));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let p = NewPassword::parse("correct horse battery staple", "ann").expect("valid");
        assert!(!format!("{p:?}").contains("horse"));
    }
}

use super::InvalidField;

/// An email address: trimmed, at most 254 characters, one `@`, a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let invalid = |reason: &str| InvalidField::new("email", reason);
        let email = raw.trim();
        if email.is_empty() {
            return Err(invalid("is required"));
        }
        if email.chars().count() > 254 {
            return Err(invalid("must be at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("must look like name@example.com"));
        };
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(invalid("must look like name@example.com"));
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a login names an account by, an email or a username: trimmed, at most 254 bytes
/// (no email or username is longer, and the bound keeps what reaches Redis keys small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let login = raw.trim();
        if login.is_empty() {
            return Err(InvalidField::new("login", "is required"));
        }
        if login.len() > platform::MAX_LOGIN_BYTES {
            return Err(InvalidField::new(
                "login",
                format!("must be at most {} bytes", platform::MAX_LOGIN_BYTES),
            ));
        }
        Ok(Self(login.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A username: 3 to 30 ASCII letters, digits or underscores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let name = raw.trim();
        if !(3..=30).contains(&name.len()) {
            return Err(InvalidField::new("username", "must be 3 to 30 characters"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(InvalidField::new(
                "username",
                "may contain only letters, digits and underscores",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name shown to others: 1 to 64 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let name = raw.trim();
        let length = name.chars().count();
        if length == 0 {
            return Err(InvalidField::new("display_name", "is required"));
        }
        if length > 64 {
            return Err(InvalidField::new(
                "display_name",
                "must be at most 64 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidField::new(
                "display_name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_trimmed_required_and_at_most_254_bytes() {
        assert_eq!(Login::parse("  ann  ").expect("valid").as_str(), "ann");
        assert_eq!(Login::parse("   ").expect_err("blank").field, "login");
        assert!(Login::parse(&"a".repeat(254)).is_ok());
        let err = Login::parse(&"a".repeat(255)).expect_err("too long");
        assert_eq!(err.to_string(), "login: must be at most 254 bytes");
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        assert!(Login::parse(&"é".repeat(128)).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("  Ann@Example.com ").map(|e| e.0),
            Ok("Ann@Example.com".to_owned())
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.io",
            "ann@x",
            "a b@x.io",
            "ann@@x.io",
            "ann@x..io",
            "ann@.x.io",
        ] {
            let err = Email::parse(bad).expect_err(bad);
            assert_eq!(err.field, "email");
        }
    }

    #[test]
    fn usernames() {
        assert!(Username::parse("ann_99").is_ok());
        for bad in ["an", "ann-99", "ann 99", &"a".repeat(31), "änn"] {
            assert_eq!(Username::parse(bad).expect_err(bad).field, "username");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(
            DisplayName::parse(" Ann Lee ").map(|d| d.0),
            Ok("Ann Lee".to_owned())
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
    }
}

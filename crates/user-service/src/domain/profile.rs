use super::InvalidField;

/// A short self-description: at most 500 characters, no control characters but newlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bio(String);

impl Bio {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let bio = raw.trim();
        if bio.chars().count() > 500 {
            return Err(InvalidField::new("bio", "must be at most 500 characters"));
        }
        if bio.chars().any(|c| c.is_control() && c != '\n') {
            return Err(InvalidField::new(
                "bio",
                "must not contain control characters",
            ));
        }
        Ok(Self(bio.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An avatar picture address: an https URL of at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let url = raw.trim();
        let invalid = |reason: &str| InvalidField::new("avatar_url", reason);
        if url.len() > 2048 {
            return Err(invalid("must be at most 2048 characters"));
        }
        let Some(rest) = url.strip_prefix("https://") else {
            return Err(invalid("must be an https:// URL"));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must be an https:// URL"));
        }
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_and_avatars() {
        assert!(Bio::parse("Films, food,\nand trains.").is_ok());
        assert!(Bio::parse(&"x".repeat(501)).is_err());
        assert!(AvatarUrl::parse("https://cdn.example.com/a.png").is_ok());
        for bad in [
            "http://x.io/a.png",
            "https://",
            "javascript:alert(1)",
            "https://a b",
        ] {
            assert_eq!(AvatarUrl::parse(bad).expect_err(bad).field, "avatar_url");
        }
    }
}

//! Video rules, free of I/O and of protobuf.

/// Where a video is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStatus {
    Processing,
    Published,
    Failed,
}

impl VideoStatus {
    /// The status stored as `text` (the schema's CHECK constraint allows no other).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "processing" => Some(Self::Processing),
            "published" => Some(Self::Published),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_statuses_parse_and_nothing_else_does() {
        assert_eq!(
            VideoStatus::parse("published"),
            Some(VideoStatus::Published)
        );
        assert_eq!(
            VideoStatus::parse("processing"),
            Some(VideoStatus::Processing)
        );
        assert_eq!(VideoStatus::parse("failed"), Some(VideoStatus::Failed));
        assert_eq!(VideoStatus::parse("Published"), None);
    }
}

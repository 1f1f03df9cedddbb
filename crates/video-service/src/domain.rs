//! Video rules, free of I/O and of protobuf.

use uuid::Uuid;

/// Where a video is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStatus {
    /// The object is complete; processing is queued.
    Uploaded,
    Processing,
    Ready,
    Failed,
}

impl VideoStatus {
    /// The status stored as `text` (the schema's CHECK constraint allows no other).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "uploaded" => Some(Self::Uploaded),
            "processing" => Some(Self::Processing),
            "ready" => Some(Self::Ready),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Who may see a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Anyone, and it is listed.
    #[default]
    Public,
    /// Anyone with its id; never listed to others.
    Unlisted,
    /// Its owner only.
    Private,
}

impl Visibility {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "public" => Some(Self::Public),
            "unlisted" => Some(Self::Unlisted),
            "private" => Some(Self::Private),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unlisted => "unlisted",
            Self::Private => "private",
        }
    }
}

/// Whether `caller` may see a video of `owner` with `visibility`. A private video is
/// invisible, not forbidden, to others: they get NOT_FOUND, as for one that does not exist.
pub fn may_see(visibility: Visibility, owner: Uuid, caller: Option<Uuid>) -> bool {
    visibility != Visibility::Private || caller == Some(owner)
}

pub use platform::InvalidField;

/// A title: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let title = raw.trim();
        if title.is_empty() {
            return Err(InvalidField::new("title", "is required"));
        }
        if title.chars().count() > 200 {
            return Err(InvalidField::new("title", "must be at most 200 characters"));
        }
        if title.chars().any(char::is_control) {
            return Err(InvalidField::new(
                "title",
                "must not contain control characters",
            ));
        }
        Ok(Self(title.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A description: trimmed, at most 5000 characters, line breaks allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let text = raw.trim();
        if text.chars().count() > 5000 {
            return Err(InvalidField::new(
                "description",
                "must be at most 5000 characters",
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(InvalidField::new(
                "description",
                "must not contain control characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The containers accepted, recognised by their bytes' signature (never by the client's
/// name or header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    QuickTime,
    WebM,
    Matroska,
}

impl Container {
    /// The container the first bytes of a file announce, if it is one we take.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match infer::get(head)?.mime_type() {
            "video/mp4" => Some(Self::Mp4),
            "video/quicktime" => Some(Self::QuickTime),
            "video/webm" => Some(Self::WebM),
            "video/x-matroska" => Some(Self::Matroska),
            _ => None,
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Mp4 => "video/mp4",
            Self::QuickTime => "video/quicktime",
            Self::WebM => "video/webm",
            Self::Matroska => "video/x-matroska",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::QuickTime => "mov",
            Self::WebM => "webm",
            Self::Matroska => "mkv",
        }
    }
}

/// How many bytes [`Container::sniff`] needs to decide (Matroska and WebM name their
/// doctype within the first 256).
pub const SNIFF_BYTES: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_statuses_and_visibilities_parse_and_nothing_else_does() {
        for (text, s) in [
            ("uploaded", VideoStatus::Uploaded),
            ("processing", VideoStatus::Processing),
            ("ready", VideoStatus::Ready),
            ("failed", VideoStatus::Failed),
        ] {
            assert_eq!(VideoStatus::parse(text), Some(s));
        }
        assert_eq!(VideoStatus::parse("published"), None);
        for v in [
            Visibility::Public,
            Visibility::Unlisted,
            Visibility::Private,
        ] {
            assert_eq!(Visibility::parse(v.as_str()), Some(v));
        }
        assert_eq!(Visibility::parse("Public"), None);
    }

    #[test]
    fn a_private_video_is_seen_by_its_owner_only() {
        let owner = Uuid::new_v4();
        assert!(may_see(Visibility::Private, owner, Some(owner)));
        assert!(!may_see(Visibility::Private, owner, Some(Uuid::new_v4())));
        assert!(!may_see(Visibility::Private, owner, None));
        assert!(may_see(Visibility::Unlisted, owner, None));
        assert!(may_see(Visibility::Public, owner, None));
    }

    #[test]
    fn titles_and_descriptions_are_bounded() {
        assert_eq!(
            Title::parse("  Sunset  ").expect("valid").as_str(),
            "Sunset"
        );
        assert!(Title::parse(" ").is_err());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(Title::parse("a\u{0}b").is_err());
        assert!(Description::parse("two\nlines").is_ok());
        assert!(Description::parse(&"x".repeat(5001)).is_err());
    }

    #[test]
    fn containers_are_recognised_by_their_bytes_only() {
        // An ISO BMFF `ftyp` box: MP4.
        let mut mp4 = vec![0, 0, 0, 0x18];
        mp4.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
        assert_eq!(Container::sniff(&mp4), Some(Container::Mp4));
        // EBML header with the `webm` doctype.
        let mut webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm".to_vec();
        webm.resize(SNIFF_BYTES, 0);
        assert_eq!(Container::sniff(&webm), Some(Container::WebM));
        assert_eq!(Container::sniff(b"just some text, renamed to .mp4"), None);
        assert_eq!(Container::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), None);
    }
}

//! Engagement's rules, free of I/O: what a like targets, what text a comment or post may
//! hold, when a view counts, how trending and performance are scored.

use uuid::Uuid;

pub use platform::InvalidField;

/// What a like is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Video,
    Post,
    Comment,
}

impl Target {
    /// The name in `engagement.likes.target_type`, metric labels and event lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Post => "post",
            Self::Comment => "comment",
        }
    }
}

/// Text of a comment or post: trimmed, 1 to `max` characters, no control characters
/// other than line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

/// Characters a comment may hold.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// Characters a post may hold.
pub const MAX_POST_CHARS: usize = 5000;

impl Text {
    pub fn parse(field: &'static str, raw: &str, max: usize) -> Result<Self, InvalidField> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(InvalidField::new(field, "must not be empty"));
        }
        let chars = text.chars().count();
        if chars > max {
            return Err(InvalidField::new(
                field,
                format!("must be at most {max} characters, got {chars}"),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(InvalidField::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// When a view counts: after `min_watch` seconds, or half of a shorter video (a video of
/// unknown length, 0, needs the full `min_watch`).
pub fn watched_enough(watch_seconds: f64, duration_seconds: u32, min_watch: f64) -> bool {
    let duration = f64::from(duration_seconds);
    let needed = if duration > 0.0 && duration < min_watch {
        duration / 2.0
    } else {
        min_watch
    };
    watch_seconds >= needed
}

/// A reported watch time, as the counters take it: finite, not negative, and no longer
/// than the video (a day when its length is unknown), so one report cannot inflate watch
/// time.
pub fn clamp_watch(watch_seconds: f64, duration_seconds: u32) -> Result<f64, InvalidField> {
    if !watch_seconds.is_finite() || watch_seconds < 0.0 {
        return Err(InvalidField::new(
            "watch_seconds",
            "must be a number of seconds, 0 or more",
        ));
    }
    let cap = if duration_seconds > 0 {
        f64::from(duration_seconds)
    } else {
        86_400.0
    };
    Ok(watch_seconds.min(cap))
}

/// The trending weight of one hour's bucket `age_hours` old: `2^(-age / half_life)`.
///
/// A video's trending score is `Σ_h weight(h) · (views_h + like_weight · likes_h)` over
/// the hourly buckets of the window: recent activity dominates, and a video nobody watches
/// any more sinks by half every half-life.
pub fn hour_weight(age_hours: u32, half_life_secs: u64) -> f64 {
    let half_life_hours = (half_life_secs.max(1) as f64) / 3600.0;
    (-(f64::from(age_hours)) / half_life_hours).exp2()
}

/// A video's performance score (`content_performance_score{content_type="video"}`):
///
/// `ln(1 + views) + 2·ln(1 + likes) + 3·ln(1 + comments) + 5·watch_through`
///
/// where `watch_through = watch_seconds / (views · duration)`, clamped to [0, 1] (0 when
/// the length is unknown). Logarithms keep one viral video from flattening the histogram;
/// interaction weighs more than passive views; watch-through rewards videos people finish.
pub fn video_score(
    views: u64,
    likes: u64,
    comments: u64,
    watch_seconds: f64,
    duration: u32,
) -> f64 {
    let ln1p = |n: u64| (n as f64).ln_1p();
    let watch_through = if views > 0 && duration > 0 {
        (watch_seconds / (views as f64 * f64::from(duration))).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ln1p(views) + 2.0 * ln1p(likes) + 3.0 * ln1p(comments) + 5.0 * watch_through
}

/// A post's performance score (`content_type="post"`): `2·ln(1 + likes)`, the video
/// formula's like term (posts have no views or watch time).
pub fn post_score(likes: u64) -> f64 {
    2.0 * (likes as f64).ln_1p()
}

/// Who is watching, as the counters know them: never stored or logged as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    User(Uuid),
    /// A signed viewer cookie's id, and the client address it came from.
    Cookie {
        id: String,
        address: String,
    },
    /// No cookie: the client address.
    Address(String),
}

impl Viewer {
    /// The gateway's key: `user:<uuid>`, `cookie:<id>@<address>` or `address:<address>`.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let invalid = || InvalidField::new("viewer_key", "is not a viewer key");
        if raw.is_empty() || raw.len() > 200 {
            return Err(invalid());
        }
        if let Some(id) = raw.strip_prefix("user:") {
            return Uuid::parse_str(id).map(Self::User).map_err(|_| invalid());
        }
        if let Some(rest) = raw.strip_prefix("cookie:") {
            let (id, address) = rest.split_once('@').ok_or_else(invalid)?;
            if id.is_empty() || address.is_empty() {
                return Err(invalid());
            }
            return Ok(Self::Cookie {
                id: id.to_owned(),
                address: address.to_owned(),
            });
        }
        if let Some(address) = raw.strip_prefix("address:")
            && !address.is_empty()
        {
            return Ok(Self::Address(address.to_owned()));
        }
        Err(invalid())
    }

    /// Is this a signed-in user.
    pub fn is_user(&self) -> bool {
        matches!(self, Self::User(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_counts_after_the_minimum_or_half_a_short_video() {
        assert!(!watched_enough(1.0, 600, 3.0));
        assert!(watched_enough(3.0, 600, 3.0));
        assert!(watched_enough(1.0, 2, 3.0), "half of a 2 s video");
        assert!(!watched_enough(0.9, 2, 3.0));
        assert!(
            !watched_enough(2.0, 0, 3.0),
            "unknown length needs the minimum"
        );
    }

    #[test]
    fn watch_time_is_bounded_by_the_video() {
        assert_eq!(clamp_watch(1e9, 60), Ok(60.0));
        assert_eq!(clamp_watch(1e9, 0), Ok(86_400.0));
        assert!(clamp_watch(f64::NAN, 60).is_err());
        assert!(clamp_watch(-1.0, 60).is_err());
        assert!(clamp_watch(f64::INFINITY, 60).is_err());
    }

    #[test]
    fn hour_weights_halve_every_half_life() {
        assert!((hour_weight(0, 21_600) - 1.0).abs() < 1e-12);
        assert!((hour_weight(6, 21_600) - 0.5).abs() < 1e-12);
        assert!((hour_weight(12, 21_600) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn scores_grow_with_engagement_and_stay_finite() {
        assert_eq!(video_score(0, 0, 0, 0.0, 0), 0.0);
        let watched = video_score(10, 0, 0, 600.0, 60);
        let unwatched = video_score(10, 0, 0, 0.0, 60);
        assert!(
            (watched - unwatched - 5.0).abs() < 1e-9,
            "full watch-through adds 5"
        );
        assert!(video_score(10, 5, 0, 0.0, 60) > unwatched);
        assert!(video_score(u64::MAX, u64::MAX, u64::MAX, f64::MAX, 1).is_finite());
        assert!(post_score(3) > post_score(2));
    }

    #[test]
    fn text_is_trimmed_bounded_and_printable() {
        assert_eq!(
            Text::parse("text", "  hi  ", 10).map(|t| t.as_str().to_owned()),
            Ok("hi".into())
        );
        assert!(Text::parse("text", "   ", 10).is_err());
        assert!(Text::parse("text", &"é".repeat(11), 10).is_err());
        assert!(Text::parse("text", "a\u{0}b", 10).is_err());
        assert!(Text::parse("text", "line\nline", 10).is_ok());
    }

    #[test]
    fn viewer_keys_parse_strictly() {
        let id = Uuid::new_v4();
        assert_eq!(Viewer::parse(&format!("user:{id}")), Ok(Viewer::User(id)));
        assert_eq!(
            Viewer::parse("cookie:abc@10.0.0.1"),
            Ok(Viewer::Cookie {
                id: "abc".into(),
                address: "10.0.0.1".into()
            })
        );
        assert_eq!(
            Viewer::parse("address:10.0.0.1"),
            Ok(Viewer::Address("10.0.0.1".into()))
        );
        for bad in [
            "",
            "user:nope",
            "cookie:@x",
            "cookie:abc",
            "address:",
            "who",
        ] {
            assert!(Viewer::parse(bad).is_err(), "{bad}");
        }
        assert!(Viewer::parse(&"a".repeat(500)).is_err());
    }
}

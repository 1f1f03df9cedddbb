//! Business events as log lines, next to the metrics: the design document's user, content,
//! system and security events. Each is one JSON line with `event_category` and
//! `event_type`; the ids it concerns are fields of the line, never metric labels.

/// The design document's event categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// What a user did to their account: registered, logged in, changed their profile...
    User,
    /// Content created, changed or removed: videos, posts, comments.
    Content,
    /// What users did with content: views, likes, comments, posts.
    Engagement,
    /// Money: subscriptions, charges, declines, ad revenue, payouts (never card data).
    Payments,
    /// The platform's own doings: jobs, payouts, renewals.
    System,
    /// Security-relevant events (also counted in `security_events_total`).
    Security,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Content => "content",
            Self::Engagement => "engagement",
            Self::Payments => "payments",
            Self::System => "system",
            Self::Security => "security",
        }
    }
}

/// Logs one business event: `business_event!(Category::User, "user_registered", user_id = %id)`.
/// A macro, so the line's `target` is the code that emitted it; any fields may follow.
#[macro_export]
macro_rules! business_event {
    ($category:expr, $event_type:expr $(, $($fields:tt)+)?) => {
        $crate::__tracing::info!(
            event_category = $crate::events::Category::as_str($category),
            event_type = $event_type,
            $($($fields)+,)?
            "business event"
        )
    };
}

/// Logs one security event at `warn`, with its severity:
/// `security_event!("account_locked", "medium", user_id = %id)`.
#[macro_export]
macro_rules! security_event {
    ($event_type:expr, $severity:expr $(, $($fields:tt)+)?) => {
        $crate::__tracing::warn!(
            event_category = $crate::events::Category::Security.as_str(),
            event_type = $event_type,
            severity = $severity,
            $($($fields)+,)?
            "security event"
        )
    };
}

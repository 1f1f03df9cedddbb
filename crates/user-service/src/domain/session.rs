//! Sessions: a login starts a family of refresh tokens, each rotation replaces the live one.
//! The rules deciding what presenting a refresh token does, free of storage.

use chrono::{DateTime, Duration, Utc};

/// How long sessions and their refresh tokens live.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    /// A session ends this long after its login, however often it was rotated.
    pub max_lifetime: Duration,
    /// How long after a rotation the previous token may be presented again (a client
    /// retrying after a lost answer).
    pub reuse_grace: Duration,
}

/// What is known about a presented refresh token.
#[derive(Debug, Clone, Copy)]
pub struct PresentedToken {
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
    pub session_started_at: DateTime<Utc>,
    /// When it was rotated, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// Whether the token that replaced it is still untouched (neither used nor revoked).
    pub successor_untouched: bool,
}

/// What presenting a refresh token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationDecision {
    /// Valid: replace it by a new token.
    Rotate,
    /// The predecessor of the live token, again, within the grace: the client never got
    /// the live token. Revoke that one and replace this one again.
    RotateAgain,
    /// A rotated token replayed: someone else may hold the session. Revoke it all.
    Replay,
    /// Expired, revoked, or past the session's lifetime.
    Refuse,
}

pub fn decide_rotation(
    token: &PresentedToken,
    now: DateTime<Utc>,
    rules: &SessionRules,
) -> RotationDecision {
    if token.revoked
        || token.expires_at <= now
        || token.session_started_at + rules.max_lifetime <= now
    {
        return RotationDecision::Refuse;
    }
    match token.used_at {
        None => RotationDecision::Rotate,
        Some(used) if now - used <= rules.reuse_grace && token.successor_untouched => {
            RotationDecision::RotateAgain
        }
        Some(_) => RotationDecision::Replay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SessionRules = SessionRules {
        max_lifetime: Duration::days(90),
        reuse_grace: Duration::seconds(30),
    };

    fn token(now: DateTime<Utc>) -> PresentedToken {
        PresentedToken {
            expires_at: now + Duration::days(30),
            revoked: false,
            session_started_at: now - Duration::days(1),
            used_at: None,
            successor_untouched: false,
        }
    }

    #[test]
    fn an_unused_live_token_rotates_until_it_expires_or_the_session_ends() {
        let now = Utc::now();
        assert_eq!(
            decide_rotation(&token(now), now, &RULES),
            RotationDecision::Rotate
        );
        let expired = PresentedToken {
            expires_at: now,
            ..token(now)
        };
        assert_eq!(
            decide_rotation(&expired, now, &RULES),
            RotationDecision::Refuse
        );
        let old_session = PresentedToken {
            session_started_at: now - Duration::days(90),
            ..token(now)
        };
        assert_eq!(
            decide_rotation(&old_session, now, &RULES),
            RotationDecision::Refuse
        );
        let revoked = PresentedToken {
            revoked: true,
            ..token(now)
        };
        assert_eq!(
            decide_rotation(&revoked, now, &RULES),
            RotationDecision::Refuse
        );
    }

    #[test]
    fn a_retry_within_the_grace_rotates_again_only_while_its_successor_is_untouched() {
        let now = Utc::now();
        let retried = PresentedToken {
            used_at: Some(now - Duration::seconds(5)),
            successor_untouched: true,
            ..token(now)
        };
        assert_eq!(
            decide_rotation(&retried, now, &RULES),
            RotationDecision::RotateAgain
        );
        let successor_used = PresentedToken {
            successor_untouched: false,
            ..retried
        };
        assert_eq!(
            decide_rotation(&successor_used, now, &RULES),
            RotationDecision::Replay
        );
        let too_late = PresentedToken {
            used_at: Some(now - Duration::seconds(31)),
            ..retried
        };
        assert_eq!(
            decide_rotation(&too_late, now, &RULES),
            RotationDecision::Replay
        );
    }
}

//! Payments' rules, free of I/O: money, idempotency keys, cards, and how a period's
//! revenue is shared among creators.

use serde::{Deserialize, Serialize};

pub use platform::InvalidField;

/// An ISO 4217 currency this ledger takes (one with a minor unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Currency(#[serde(with = "code")] iso_currency::Currency);

mod code {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &iso_currency::Currency, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<iso_currency::Currency, D::Error> {
        let raw = String::deserialize(d)?;
        iso_currency::Currency::from_code(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown currency {raw}")))
    }
}

impl Currency {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidField> {
        let currency = iso_currency::Currency::from_code(raw).ok_or_else(|| {
            InvalidField::new(
                field,
                format!("`{}` is not an ISO 4217 currency code", short(raw)),
            )
        })?;
        if currency.exponent().is_none() {
            return Err(InvalidField::new(
                field,
                format!("{raw} has no minor unit; it cannot be an amount"),
            ));
        }
        Ok(Self(currency))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }
}

/// A raw value in an error message: cut short.
fn short(raw: &str) -> String {
    raw.chars().take(16).collect()
}

/// An amount of money: positive minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// The most one amount may be: far beyond any real charge, far from overflowing a sum.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

impl Money {
    pub fn parse(field: &'static str, minor: i64, currency: &str) -> Result<Self, InvalidField> {
        let currency = Currency::parse(field, currency)?;
        if !(1..=MAX_AMOUNT_MINOR).contains(&minor) {
            return Err(InvalidField::new(
                field,
                format!("amount_minor must be from 1 to {MAX_AMOUNT_MINOR}, got {minor}"),
            ));
        }
        Ok(Self { minor, currency })
    }
}

/// A client's idempotency key: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty() {
            return Err(InvalidField::new(
                "idempotency_key",
                "is required: send an Idempotency-Key header, unique per operation",
            ));
        }
        if raw.len() > 255 || !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(InvalidField::new(
                "idempotency_key",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A card as the client gave it: only its provider token and last four digits are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The provider's token for the card (the sandbox's: `pm_` and the first 24 hex digits
    /// of the number's SHA-256; the number itself is never stored).
    pub token: String,
    pub last4: String,
}

impl Card {
    /// 12 to 19 digits (spaces and dashes allowed) passing the Luhn check.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let invalid = || InvalidField::new("payment_method", "is not a card number");
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        if !luhn(&digits) {
            return Err(invalid());
        }
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(digits.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            last4: digits[digits.len() - 4..].to_owned(),
            token: format!("pm_{hex}"),
        })
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Where revenue came from (`revenue_total{source}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Subscription,
    Ads,
    CreatorPayout,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscription => "subscription",
            Self::Ads => "ads",
            Self::CreatorPayout => "creator_payout",
        }
    }
}

/// A creator's weights in a period: (creator, watch seconds gained, views gained).
pub type Weight = (uuid::Uuid, u64, u64);

/// Shares a period's creator pool among creators by weight.
///
/// The pool is `revenue × share_bps / 10 000` (rounded down). Each creator's weight is the
/// watch time their videos gained in the period, in seconds; when nobody watched anything
/// long enough to count, the views gained weigh instead. A creator gets
/// `pool × weight / total weight`, rounded down: the remainder (less than one minor unit per
/// creator) stays with the platform, so the shares never exceed the pool.
pub fn split_pool(revenue: i64, share_bps: u32, weights: &[Weight]) -> Vec<(uuid::Uuid, i64)> {
    let pool = i128::from(revenue.max(0)) * i128::from(share_bps.min(10_000)) / 10_000;
    let by_watch: u128 = weights.iter().map(|(_, w, _)| u128::from(*w)).sum();
    let by_views: u128 = weights.iter().map(|(_, _, v)| u128::from(*v)).sum();
    let (total, pick): (u128, fn(&Weight) -> u64) = if by_watch > 0 {
        (by_watch, |(_, w, _)| *w)
    } else {
        (by_views, |(_, _, v)| *v)
    };
    if pool <= 0 || total == 0 {
        return Vec::new();
    }
    weights
        .iter()
        .filter_map(|entry| {
            let share = (pool as u128) * u128::from(pick(entry)) / total;
            let share = i64::try_from(share).ok()?;
            (share > 0).then_some((entry.0, share))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn currencies_are_iso_codes_with_their_exponents() {
        for code in ["USD", "JPY", "KWD", "EUR"] {
            assert_eq!(Currency::parse("c", code).map(Currency::code), Ok(code));
        }
        assert!(Currency::parse("c", "usd").is_err());
        assert!(Currency::parse("c", "XXX").is_err(), "no minor unit");
        assert!(Currency::parse("c", "ABC").is_err());
    }

    #[test]
    fn amounts_are_positive_and_bounded() {
        assert!(Money::parse("amount", 1, "USD").is_ok());
        assert!(Money::parse("amount", 0, "USD").is_err());
        assert!(Money::parse("amount", -5, "USD").is_err());
        assert!(Money::parse("amount", MAX_AMOUNT_MINOR + 1, "USD").is_err());
    }

    #[test]
    fn idempotency_keys_are_short_printable_ascii() {
        assert!(IdempotencyKey::parse("order-42").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("é").is_err());
    }

    #[test]
    fn cards_pass_luhn_and_keep_only_a_token_and_last_four() {
        let card = Card::parse("4242 4242 4242 4242").expect("test card");
        assert_eq!(card.last4, "4242");
        assert!(
            card.token.starts_with("pm_") && card.token.len() == 27,
            "{}",
            card.token
        );
        assert!(
            !card.token.contains("4242424242"),
            "no card number in the token"
        );
        assert!(Card::parse("4000000000000002").is_ok());
        assert!(Card::parse("4000000000000119").is_ok());
        assert!(Card::parse("4242424242424241").is_err(), "Luhn");
        assert!(Card::parse("42").is_err());
        assert!(Card::parse("4242x24242424242").is_err());
    }

    #[test]
    fn a_pool_is_split_by_watch_time_and_never_exceeds_itself() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let shares = split_pool(10_000, 5_000, &[(a, 300, 1), (b, 100, 9), (c, 0, 5)]);
        assert_eq!(shares, vec![(a, 3_750), (b, 1_250)]);
        // Nobody watched: views weigh.
        let shares = split_pool(1_000, 10_000, &[(a, 0, 1), (b, 0, 3)]);
        assert_eq!(shares, vec![(a, 250), (b, 750)]);
        // Rounding stays with the platform.
        let shares = split_pool(100, 10_000, &[(a, 1, 0), (b, 1, 0), (c, 1, 0)]);
        assert_eq!(shares.iter().map(|(_, s)| s).sum::<i64>(), 99);
        assert!(split_pool(0, 5_000, &[(a, 1, 1)]).is_empty());
        assert!(split_pool(100, 5_000, &[]).is_empty());
        let huge = split_pool(i64::MAX, 10_000, &[(a, u64::MAX, 0), (b, u64::MAX, 0)]);
        assert!(huge.iter().map(|(_, s)| i128::from(*s)).sum::<i128>() <= i128::from(i64::MAX));
    }
}

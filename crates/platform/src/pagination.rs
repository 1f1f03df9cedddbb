//! Keyset pagination: a page size within bounds and an opaque cursor naming the last item
//! seen (its time and id), so pages never skip or repeat an item when new ones arrive.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// 0 means "the default"; above [`MAX_PAGE_SIZE`] is refused.
    pub fn parse(raw: u32) -> Result<Self, String> {
        match raw {
            0 => Ok(Self(DEFAULT_PAGE_SIZE)),
            n if n <= MAX_PAGE_SIZE => Ok(Self(n)),
            n => Err(format!(
                "page_size must be at most {MAX_PAGE_SIZE}, got {n}"
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A list request's paging that is not valid: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidPage {
    /// `page_size` or `page_token`.
    pub field: &'static str,
    pub message: String,
}

/// A list request's `page_size` and `page_token`, checked: the size within bounds, the
/// token one this service issued (empty for the first page).
pub fn parse_request(
    page_size: u32,
    page_token: &str,
) -> Result<(PageSize, Option<Cursor>), InvalidPage> {
    let size = PageSize::parse(page_size).map_err(|message| InvalidPage {
        field: "page_size",
        message,
    })?;
    let cursor = match page_token {
        "" => None,
        token => Some(Cursor::decode(token).map_err(|message| InvalidPage {
            field: "page_token",
            message,
        })?),
    };
    Ok((size, cursor))
}

/// Cuts the `size + 1` rows a page query fetched down to `size`, and gives the cursor of
/// the next page when the extra row shows there is one.
pub fn split_page<T>(
    mut rows: Vec<T>,
    size: PageSize,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<Cursor>) {
    let size = size.get() as usize;
    if rows.len() > size {
        rows.truncate(size);
        let next = rows.last().map(cursor_of);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// Position after the last item of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    pub fn decode(raw: &str) -> Result<Self, String> {
        let invalid = || "page_token is not a token this service issued".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        // Only times Postgres can compare: a forged token far outside them would otherwise
        // fail the query (a 500) instead of being refused here (a 400).
        let created_at = DateTime::from_timestamp_micros(micros)
            .filter(|t| (1970..=9999).contains(&t.year()))
            .ok_or_else(invalid)?;
        Ok(Self {
            created_at,
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(PageSize::parse(0).map(PageSize::get), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(PageSize::parse(100).map(PageSize::get), Ok(100));
        assert!(PageSize::parse(101).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        let far_past = URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            -400_000_000_000_000_000_i64,
            Uuid::new_v4()
        ));
        assert!(
            Cursor::decode(&far_past).is_err(),
            "a time Postgres cannot hold"
        );
        for garbage in [
            "",
            "!!!",
            "bm90LWEtY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12|not-a-uuid"),
        ] {
            assert!(Cursor::decode(garbage).is_err(), "{garbage}");
        }
    }
}

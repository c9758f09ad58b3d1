//! Page-size limits and paging of in-memory lists (Relay cursor connections).

use super::error::{ApiError, ApiResult};
use super::ids::{decode_offset_cursor, encode_offset_cursor};
use async_graphql::SimpleObject;

/// Page size when `first` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// Extra fields on every connection.
#[derive(SimpleObject, Debug, Clone, Copy, Default)]
pub struct Counted {
    /// How many items the whole list holds (all pages).
    pub total_count: u64,
}

/// Checks `first` against the configured largest page.
pub fn page_size(first: Option<i32>, max_page_size: usize) -> ApiResult<usize> {
    match first {
        None => Ok(DEFAULT_PAGE_SIZE.min(max_page_size)),
        Some(first) if first < 0 => {
            Err(ApiError::bad_input("first", format!("{first} is negative; ask for 0 to {max_page_size} items")))
        }
        Some(first) if first as usize > max_page_size => Err(ApiError::LimitExceeded {
            limit: "max_page_size",
            field: "first".into(),
            message: format!(
                "{first} is more than the largest page of {max_page_size}; ask for at most {max_page_size} and page on with `after`"
            ),
        }),
        Some(first) => Ok(first as usize),
    }
}

/// The window `[start, end)` of an in-memory list of `len` items for `first`/`after`, and whether more follow.
pub struct Window {
    /// First index on the page.
    pub start: usize,
    /// One past the last index on the page.
    pub end: usize,
    /// Whether items follow the page.
    pub has_next_page: bool,
    /// Whether items precede the page.
    pub has_previous_page: bool,
}

impl Window {
    /// The window for a list named `list` (cursors are bound to it).
    pub fn of(list: &str, len: usize, first: usize, after: Option<&str>) -> ApiResult<Self> {
        let start = match after {
            Some(cursor) => decode_offset_cursor(list, cursor)?
                .checked_add(1)
                .ok_or_else(|| ApiError::bad_input("after", "this cursor is damaged; start again without `after`"))?,
            None => 0,
        }
        .min(len);
        let end = (start + first).min(len);
        Ok(Self { start, end, has_next_page: end < len, has_previous_page: start > 0 })
    }

    /// The cursor of the item at `index`.
    pub fn cursor(list: &str, index: usize) -> String {
        encode_offset_cursor(list, index)
    }
}

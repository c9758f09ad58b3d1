//! Page-size limits and paging of lists (Relay cursor connections, both ways).

use super::error::{ApiError, ApiResult};
use super::ids::{damaged_cursor, decode_offset_cursor, encode_offset_cursor};
use super::ApiContext;
use crate::store::PageDirection;
use async_graphql::{Context, SimpleObject};

/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// Extra fields on every connection.
#[derive(SimpleObject, Debug, Clone, Copy, Default)]
pub struct Counted {
    /// How many items the whole list holds (all pages).
    pub total_count: u64,
}

/// The page a connection's arguments ask for: up to `first` items after `after` (from the start without it), or
/// up to `last` items before `before` (up to the end without it). The two directions do not mix: `first` with
/// `before`, `last` with `after`, or both counts or both cursors are refused, saying which to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items at most.
    pub count: usize,
    /// The cursor the page starts after (forward) or ends before (backward), as the caller passed it.
    pub cursor: Option<String>,
    /// Which way the page is read from its cursor.
    pub direction: PageDirection,
}

impl PageRequest {
    /// Reads and checks a connection's four paging arguments against the configured largest page.
    pub fn of(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        max_page_size: usize,
    ) -> ApiResult<Self> {
        let (count, cursor, direction) = match (first, after, last, before) {
            (Some(_), _, Some(_), _) => {
                return Err(ApiError::bad_input(
                    "last",
                    "`first` and `last` cannot be used together; page forward with `first` and `after`, or backward \
                     with `last` and `before`",
                ))
            }
            (_, Some(_), _, Some(_)) => {
                return Err(ApiError::bad_input(
                    "before",
                    "`after` and `before` cannot be used together; page forward with `first` and `after`, or \
                     backward with `last` and `before`",
                ))
            }
            (Some(_), None, None, Some(_)) => {
                return Err(ApiError::bad_input(
                    "before",
                    "`before` pages backward: pass `last` with it (or `first` with `after` to page forward)",
                ))
            }
            (None, Some(_), Some(_), None) => {
                return Err(ApiError::bad_input(
                    "after",
                    "`after` pages forward: pass `first` with it (or `last` with `before` to page backward)",
                ))
            }
            (None, None, last, Some(before)) => {
                (page_size(last, "last", max_page_size)?, Some(before), PageDirection::Backward)
            }
            (None, None, Some(last), None) => {
                (page_size(Some(last), "last", max_page_size)?, None, PageDirection::Backward)
            }
            (first, after, None, None) => (page_size(first, "first", max_page_size)?, after, PageDirection::Forward),
        };
        Ok(Self { count, cursor, direction })
    }

    /// [`PageRequest::of`] against the service's configured largest page (`limits.max_page_size`).
    pub fn read(
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Self> {
        Self::of(first, after, last, before, ctx.data_unchecked::<ApiContext>().limits.max_page_size)
    }

    /// Whether the page is read backward (`last`/`before`).
    pub fn backward(&self) -> bool {
        self.direction == PageDirection::Backward
    }

    /// The argument that holds the cursor, which errors about it name.
    pub fn cursor_argument(&self) -> &'static str {
        match self.direction {
            PageDirection::Forward => "after",
            PageDirection::Backward => "before",
        }
    }

    /// The connection's `hasPreviousPage` and `hasNextPage` for a page read from a keyset whose reader found
    /// `more` items beyond the page in the direction it read. The other side is known only from the cursor: items
    /// lie there when the page starts from one (the item it names, at least, when it still exists), as Relay's
    /// specification allows.
    pub fn page_info(&self, more: bool) -> (bool, bool) {
        match self.direction {
            PageDirection::Forward => (self.cursor.is_some(), more),
            PageDirection::Backward => (more, self.cursor.is_some()),
        }
    }
}

/// Checks a page size (`first` or `last`, named by `argument`) against the configured largest page.
pub fn page_size(count: Option<i32>, argument: &str, max_page_size: usize) -> ApiResult<usize> {
    let cursor = if argument == "last" { "before" } else { "after" };
    match count {
        None => Ok(DEFAULT_PAGE_SIZE.min(max_page_size)),
        Some(count) if count < 0 => Err(ApiError::bad_input(
            argument,
            format!("{count} is negative; ask for 0 to {max_page_size} items"),
        )),
        Some(count) if count as usize > max_page_size => Err(ApiError::LimitExceeded {
            limit: "max_page_size",
            field: argument.into(),
            message: format!(
                "{count} is more than the largest page of {max_page_size}; ask for at most {max_page_size} and page on with `{cursor}`"
            ),
        }),
        Some(count) => Ok(count as usize),
    }
}

/// The window `[start, end)` of a page of an in-memory list of `len` items, and whether items precede and follow
/// it (both exact: the whole list is at hand).
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
    /// The window `page` asks for in a list named `list` (cursors are bound to it) of `len` items.
    pub fn of(list: &str, len: usize, page: &PageRequest) -> ApiResult<Self> {
        let at = page
            .cursor
            .as_deref()
            .map(|cursor| decode_offset_cursor(list, cursor, page.cursor_argument()))
            .transpose()?;
        let (start, end) = match page.direction {
            PageDirection::Forward => {
                let start = match at {
                    Some(at) => at.checked_add(1).ok_or_else(|| damaged_cursor("after"))?,
                    None => 0,
                }
                .min(len);
                (start, start.saturating_add(page.count).min(len))
            }
            PageDirection::Backward => {
                let end = at.unwrap_or(len).min(len);
                (end.saturating_sub(page.count), end)
            }
        };
        Ok(Self { start, end, has_next_page: end < len, has_previous_page: start > 0 })
    }

    /// The cursor of the item at `index`.
    pub fn cursor(list: &str, index: usize) -> String {
        encode_offset_cursor(list, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(len: usize, page: PageRequest) -> (usize, usize, bool, bool) {
        let window = Window::of("list", len, &page).unwrap();
        (window.start, window.end, window.has_previous_page, window.has_next_page)
    }

    #[test]
    fn windows_of_an_in_memory_list_both_ways() {
        let request = |first, after: Option<usize>, last, before: Option<usize>| {
            let cursor = |at: Option<usize>| at.map(|at| Window::cursor("list", at));
            PageRequest::of(first, cursor(after), last, cursor(before), 100).unwrap()
        };
        assert_eq!(window(10, request(Some(3), None, None, None)), (0, 3, false, true));
        assert_eq!(window(10, request(Some(3), Some(8), None, None)), (9, 10, true, false));
        assert_eq!(window(10, request(None, None, Some(3), None)), (7, 10, true, false), "the end");
        assert_eq!(window(10, request(None, None, Some(3), Some(5))), (2, 5, true, true));
        assert_eq!(window(10, request(None, None, Some(3), Some(2))), (0, 2, false, true), "a short first page");
        assert_eq!(window(10, request(None, None, Some(3), Some(0))), (0, 0, false, true), "nothing before the first");
        assert_eq!(window(10, request(None, None, None, Some(4))), (0, 4, false, true), "`before` alone: 20 items");
        assert_eq!(window(0, request(None, None, Some(3), None)), (0, 0, false, false));
        assert_eq!(window(4, request(None, None, Some(3), Some(9))), (1, 4, true, false), "a cursor past the end");
    }

    #[test]
    fn a_request_pages_one_way_and_names_its_cursor() {
        let backward = PageRequest::of(None, None, Some(5), Some("c".into()), 100).unwrap();
        assert_eq!((backward.count, backward.backward(), backward.cursor_argument()), (5, true, "before"));
        assert_eq!(backward.page_info(true), (true, true));
        let forward = PageRequest::of(None, None, None, None, 7).unwrap();
        assert_eq!((forward.count, forward.backward(), forward.cursor_argument()), (7, false, "after"));
        assert_eq!(forward.page_info(false), (false, false));
        for (first, after, last, before) in [
            (Some(1), None, Some(1), None),
            (None, Some("a"), None, Some("b")),
            (Some(1), None, None, Some("b")),
            (None, Some("a"), Some(1), None),
        ] {
            let refused = PageRequest::of(first, after.map(Into::into), last, before.map(Into::into), 100);
            assert!(matches!(refused, Err(ApiError::BadInput { .. })), "{first:?} {after:?} {last:?} {before:?}");
        }
    }
}

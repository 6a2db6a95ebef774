//! What the GraphQL types of every feature share: paging, the request's loaders. The types
//! themselves live with their feature (`flows`, `tickets`, `routing`, `access`,
//! `visitor`, `ops`, `webhooks`); they wrap SeaORM models but are separate
//! from them: what the schema promises does not change when a column does.

use async_graphql::{Context, SimpleObject};

use super::{ApiError, ApiResult, Loaders};

pub(super) fn loaders<'a>(ctx: &Context<'a>) -> ApiResult<&'a Loaders> {
    Ok(ctx.data::<Loaders>()?)
}

pub(super) fn shared(e: std::sync::Arc<domain::Error>) -> ApiError {
    ApiError::Domain(e)
}

/// A list's `first`: 1 to 200, else `BAD_USER_INPUT` on `first`.
pub(super) fn page_size(first: Option<i32>) -> ApiResult<usize> {
    let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
    domain::tickets::check_page_size(first)?;
    Ok(usize::try_from(first).unwrap_or(usize::MAX))
}

/// Where a page ends.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether older tickets exist after this page.
    pub has_next_page: bool,
    /// The cursor of the last edge; null on an empty page.
    pub end_cursor: Option<String>,
}

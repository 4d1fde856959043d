//! Lists that hold exactly what the principal may read.
//!
//! The decision point compiles the read policy for the call's principal into a filter,
//! which becomes part of the list's SQL: pages are full, cursors and counts are exact, and
//! a row the principal may not read is never fetched. When the policies leave a condition
//! no filter expresses, the list falls back to deciding each candidate row (slower, still
//! exact, never wider). Pages are also checked item by item at the configured sample rate;
//! an item the decision point denies is withheld, audited and counted.

use gatehouse_adapter_kit::{AdapterError, Call, Decider};
use gatehouse_adapter_sql::TenantTx;
use gatehouse_adapter_sql::readable::{DOCUMENT, Filtering, READ, postcheck_reads, read_access};
use gatehouse_adapter_sql::rows::RowFilter;
use serde::Serialize;

use crate::documents::{self, Document, Scope};
use crate::input::{self, Page};
/// Rows decided per round when deciding item by item.
const CANDIDATES_PER_ROUND: i64 = 200;
/// The most rows one page decides item by item; a page may then come back short, with a
/// cursor to go on from.
const MAX_CANDIDATES: usize = 2000;

/// A page of documents the principal may read.
#[derive(Debug, Serialize)]
pub struct ReadableDocuments {
    /// The documents, by name.
    pub items: Vec<Document>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<String>,
    /// How many documents of the scope the principal may read in all (when asked for and
    /// when the list was compiled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// How the list was filtered.
    pub filtering: Filtering,
}

/// One page of the documents in `scope` that `call`'s principal may read.
///
/// # Errors
/// [`AdapterError::Unavailable`] when no decision can be made; the database's errors.
pub async fn readable_documents(
    decider: &dyn Decider,
    call: &Call,
    tx: &mut TenantTx,
    scope: &Scope,
    page: &Page,
    with_total: bool,
) -> Result<ReadableDocuments, AdapterError> {
    match read_access(decider, call, tx, "documents").await? {
        Some(access) => compiled(decider, call, tx, scope, &access, page, with_total).await,
        None => item_by_item(decider, call, tx, scope, page).await,
    }
}

async fn compiled(
    decider: &dyn Decider,
    call: &Call,
    tx: &mut TenantTx,
    scope: &Scope,
    access: &RowFilter,
    page: &Page,
    with_total: bool,
) -> Result<ReadableDocuments, AdapterError> {
    let mut items = documents::listed(tx, scope, access, page).await?;
    let next_cursor = cursor_after(&items, page.limit);
    let total = match with_total {
        true => Some(documents::count(tx, scope, access).await?),
        false => None,
    };
    if decider.sample_postcheck() {
        items = postcheck(decider, call, items).await?;
    }
    Ok(ReadableDocuments {
        items,
        next_cursor,
        total,
        filtering: Filtering::Compiled,
    })
}

/// Decides every item again; withholds (and reports) the ones denied.
async fn postcheck(
    decider: &dyn Decider,
    call: &Call,
    items: Vec<Document>,
) -> Result<Vec<Document>, AdapterError> {
    let ids: Vec<String> = items.iter().map(|d| d.id.clone()).collect();
    let permitted = postcheck_reads(decider, call, &ids, true).await?;
    Ok(items
        .into_iter()
        .zip(permitted)
        .filter_map(|(item, allowed)| allowed.then_some(item))
        .collect())
}

/// The fallback: candidate rows in order, each decided, until the page is full, the scope
/// ends or [`MAX_CANDIDATES`] rows were decided. The next page starts after the last row
/// seen, which may be a document the reader may not read: its cursor is sealed.
async fn item_by_item(
    decider: &dyn Decider,
    call: &Call,
    tx: &mut TenantTx,
    scope: &Scope,
    page: &Page,
) -> Result<ReadableDocuments, AdapterError> {
    let wanted = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut after = page.after.clone();
    let mut decided = 0;
    let mut last_seen: Option<(String, String)> = None;
    loop {
        let round = Page::after(CANDIDATES_PER_ROUND, after.clone());
        let candidates = documents::listed(tx, scope, &RowFilter::Always, &round).await?;
        let exhausted = candidates.len() < CANDIDATES_PER_ROUND as usize;
        let ids: Vec<String> = candidates.iter().map(|d| d.id.clone()).collect();
        let permitted = decider.permitted(call, READ, DOCUMENT, &ids).await?;
        for (candidate, allowed) in candidates.into_iter().zip(permitted) {
            decided += 1;
            last_seen = Some((candidate.name.clone(), candidate.id.clone()));
            if allowed {
                items.push(candidate);
                if items.len() == wanted {
                    break;
                }
            }
        }
        if items.len() == wanted || exhausted || decided >= MAX_CANDIDATES {
            // A full page or an unfinished scope may have more after the last row seen.
            let more = !exhausted || items.len() == wanted;
            let next_cursor = match (&last_seen, more) {
                (Some((name, id)), true) => Some(input::sealed_cursor(name, id)),
                _ => None,
            };
            return Ok(ReadableDocuments {
                items,
                next_cursor,
                total: None,
                filtering: Filtering::ItemByItem,
            });
        }
        after = last_seen.clone();
    }
}

/// The cursor after a full page (there may be more after it).
fn cursor_after(items: &[Document], limit: i64) -> Option<String> {
    if items.len() as i64 == limit {
        items.last().map(|d| input::next_cursor(&d.name, &d.id))
    } else {
        None
    }
}

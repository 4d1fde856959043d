//! What a principal may read, for lists and searches: the decision point's compiled read
//! policy as a [`RowFilter`] ([`read_access`]), or, when the policies cannot be compiled,
//! a decision for each candidate ([`postcheck_reads`]).

use gatehouse_adapter_kit::{AdapterError, Call, Decider, FilterEvent};
use serde::Serialize;

use crate::TenantTx;
use crate::rows::{self, ResolveError, RowFilter, Rows};

/// The action a list or search needs on each item.
pub const READ: &str = "document:read";
/// The items' Cedar type.
pub const DOCUMENT: &str = "Document";

/// How a list was filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filtering {
    /// By the policies compiled into the query.
    Compiled,
    /// By a decision for each candidate row.
    ItemByItem,
}

/// The documents `call`'s principal may read, as a filter over `documents` rows; `None`
/// when the policies cannot be compiled into one (the fallback is then reported, in the
/// name of `adapter`) and each document must be decided on its own.
///
/// # Errors
/// [`AdapterError::Unavailable`] when no filter can be made; the database's errors.
pub async fn read_access(
    decider: &dyn Decider,
    call: &Call,
    tx: &mut TenantTx,
    adapter: &'static str,
) -> Result<Option<RowFilter>, AdapterError> {
    let Some(compiled) = decider.filter(call, READ, DOCUMENT).await? else {
        return Ok(None);
    };
    match rows::resolve(tx, Rows::Documents, &compiled).await {
        Ok(rows) => Ok(Some(rows)),
        Err(ResolveError::Database(e)) => Err(e),
        Err(ResolveError::Untranslatable(reason)) => {
            let event = FilterEvent::Fallback { adapter, reason };
            decider.report(call, event).await;
            Ok(None)
        }
    }
}

/// Which of `ids` the principal may read, decided one by one. With `report`, each denied
/// one is a filter mismatch (the filter had let it through): reported and audited.
///
/// # Errors
/// [`AdapterError::Unavailable`] when no decision can be made.
pub async fn postcheck_reads(
    decider: &dyn Decider,
    call: &Call,
    ids: &[String],
    report: bool,
) -> Result<Vec<bool>, AdapterError> {
    let permitted = decider.permitted(call, READ, DOCUMENT, ids).await?;
    if report {
        for (id, allowed) in ids.iter().zip(&permitted) {
            if !allowed {
                let event = FilterEvent::Mismatch {
                    action: READ.into(),
                    resource_type: DOCUMENT.into(),
                    id: id.clone(),
                };
                decider.report(call, event).await;
            }
        }
    }
    Ok(permitted)
}

//! Comments on documents, with @mentions of the tenant's users.

use chrono::{DateTime, Utc};
use gatehouse_adapter_kit::AdapterError;
use serde::Serialize;

use crate::documents;
use crate::input::Page;
use gatehouse_adapter_sql::TenantTx;

/// A comment as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Comment {
    /// Its id (time-ordered).
    pub id: String,
    /// The document it is on.
    pub document_id: String,
    /// The user who wrote it.
    pub author_id: String,
    /// The text.
    pub body: String,
    /// The users of the tenant named as `@id` in the text.
    pub mentions: Vec<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

const MAX_BODY_CHARS: usize = 10_000;
const COLUMNS: &str = "id, document_id, author_id, body, mentions, created_at";

/// Adds a comment by `author_id` to document `id`. Mentions are `@` followed by a user id;
/// only users of this tenant count (the others stay plain text).
pub async fn add(
    tx: &mut TenantTx,
    document_id: &str,
    author_id: &str,
    body: &str,
) -> Result<Comment, AdapterError> {
    let chars = body.chars().count();
    if chars == 0 || chars > MAX_BODY_CHARS || body.contains('\0') {
        return Err(AdapterError::InvalidInput(format!(
            "body: 1 to {MAX_BODY_CHARS} characters"
        )));
    }
    documents::get(tx, document_id).await?;
    let named = mentioned(body);
    let mentions: Vec<String> = sqlx::query_scalar(
        "SELECT entity_id FROM entities WHERE tenant_id = $1 AND entity_type = 'User' \
           AND entity_id = ANY($2) ORDER BY entity_id",
    )
    .bind(tx.tenant())
    .bind(&named)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "user"))?;
    sqlx::query_as(&format!(
        "INSERT INTO comments (tenant_id, id, document_id, author_id, body, mentions) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(document_id)
    .bind(author_id)
    .bind(body)
    .bind(&mentions)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "comment"))
}

/// One page of the comments on document `id`, oldest first.
pub async fn list(
    tx: &mut TenantTx,
    document_id: &str,
    page: &Page,
) -> Result<Vec<Comment>, AdapterError> {
    documents::get(tx, document_id).await?;
    let after = page.after.as_ref().map(|(_, id)| id.clone());
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM comments WHERE tenant_id = $1 AND document_id = $2 \
           AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $4"
    ))
    .bind(tx.tenant())
    .bind(document_id)
    .bind(after)
    .bind(page.limit)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "comment"))
}

/// The ids written as `@id` in `body` (letters, digits, `-`, `_`, `.`), each once.
fn mentioned(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in body.match_indices('@') {
        let preceded_by_word = body[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric());
        if preceded_by_word {
            continue; // an e-mail address, not a mention
        }
        let id: String = body[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        let id = id.trim_end_matches('.').to_string();
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mentioned;

    #[test]
    fn mentions_are_at_ids_not_mail_addresses() {
        assert_eq!(
            mentioned(
                "@acme-vera please check, cc @acme-ed. Mail ed@acme.example; @acme-vera again"
            ),
            ["acme-vera", "acme-ed"]
        );
        assert!(mentioned("no one @ all").is_empty());
    }
}

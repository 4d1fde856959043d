//! The decision point's filters ([`gatehouse_core::filter::Filter`], in Cedar's terms)
//! in the tables' terms: a [`RowFilter`] over the columns of `documents` or `folders`,
//! rendered as an SQL predicate inside the query so that pages and counts are exact (the
//! documents adapter), or as a search engine's filter (the search adapter).
//!
//! The Cedar model and the tables say the same things:
//! - `resource.owner == User::"u"` is `owner_id = 'u'`; `classification`, `legal_hold`
//!   and `name` are columns too; `resource.tenant` is the transaction's tenant.
//! - `resource in Folder::"f"` is "the row's path starts with f's path" (a document's path
//!   is its folder's, so a document in f's subtree matches).
//! - `resource in Grant::"<user|group>:<id>/<role>"` is "shared with that grantee in that
//!   role, directly or on a folder above": the `shares` rows of the grant, each a
//!   document id or a folder subtree.
//!
//! Anything else (an attribute with no column, an entity type the rows cannot be in) is
//! [`ResolveError::Untranslatable`]: the caller then decides item by item.

use std::collections::BTreeSet;

use gatehouse_adapter_kit::AdapterError;
use gatehouse_core::filter::{EntityRef, Filter, Scalar};
use sqlx::{Postgres, QueryBuilder};

use crate::TenantTx;

/// Which table a filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// `documents` (Cedar `Document`).
    Documents,
    /// `folders` (Cedar `Folder`).
    Folders,
}

impl Rows {
    fn cedar_type(self) -> &'static str {
        match self {
            Rows::Documents => "Document",
            Rows::Folders => "Folder",
        }
    }
}

/// A folder's subtree: the folder and everything below it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subtree {
    /// The folder.
    pub folder_id: String,
    /// Its materialized path (`/root/…/folder/`).
    pub path: String,
}

/// A condition on one row of `documents` or `folders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowFilter {
    /// Every row.
    Always,
    /// No row.
    Never,
    /// All of these.
    All(Vec<RowFilter>),
    /// Any of these.
    Any(Vec<RowFilter>),
    /// Not this.
    Not(Box<RowFilter>),
    /// Owned by this user.
    Owner(String),
    /// With this classification (documents only).
    Classification(String),
    /// Under legal hold or not.
    LegalHold(bool),
    /// With this name.
    Name(String),
    /// One of these rows.
    Ids(Vec<String>),
    /// In one of these folders' subtrees.
    Under(Vec<Subtree>),
}

/// Why a filter could not be made a [`RowFilter`].
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A term with no equivalent in the tables: decide item by item instead.
    #[error("{0}")]
    Untranslatable(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] AdapterError),
}

/// A grant node's parts: `user:acme-sam/viewer` is (`User`, `acme-sam`, `viewer`).
pub fn grant_parts(node_id: &str) -> Option<(&'static str, &str, &str)> {
    let (grantee, role) = node_id.rsplit_once('/')?;
    let (kind, id) = grantee.split_once(':')?;
    let kind = match kind {
        "user" => "User",
        "group" => "Group",
        _ => return None,
    };
    Some((kind, id, role))
}

/// The folders and grants a filter names, fetched in one query each.
#[derive(Default)]
struct Lookups {
    folders: BTreeSet<String>,
    grants: BTreeSet<String>,
}

impl Lookups {
    fn collect(&mut self, filter: &Filter) {
        match filter {
            Filter::All(parts) | Filter::Any(parts) => parts.iter().for_each(|p| self.collect(p)),
            Filter::Not(inner) => self.collect(inner),
            Filter::In(e) if e.entity_type == "Folder" => {
                self.folders.insert(e.id.clone());
            }
            Filter::In(e) if e.entity_type == "Grant" => {
                self.grants.insert(e.id.clone());
            }
            _ => {}
        }
    }
}

/// What the lookups found: each folder's path, each grant's documents and subtrees.
#[derive(Default)]
struct Found {
    paths: std::collections::HashMap<String, String>,
    shared: std::collections::HashMap<String, (Vec<String>, Vec<Subtree>)>,
}

/// Makes `filter` (for rows of `rows`) a [`RowFilter`] in `tx`'s tenant.
///
/// # Errors
/// [`ResolveError::Untranslatable`] for a term the tables cannot express;
/// [`ResolveError::Database`] when a lookup fails.
pub async fn resolve(
    tx: &mut TenantTx,
    rows: Rows,
    filter: &Filter,
) -> Result<RowFilter, ResolveError> {
    // Check the whole filter first: no query for one that cannot be used anyway.
    translate(filter, rows, &tx.tenant(), &Found::default(), true)?;
    let mut lookups = Lookups::default();
    lookups.collect(filter);
    let found = lookup(tx, &lookups).await?;
    translate(filter, rows, &tx.tenant(), &found, false)
}

async fn lookup(tx: &mut TenantTx, lookups: &Lookups) -> Result<Found, AdapterError> {
    let mut found = Found::default();
    if !lookups.folders.is_empty() {
        let ids: Vec<&String> = lookups.folders.iter().collect();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, path FROM folders WHERE tenant_id = $1 AND id = ANY($2)")
                .bind(tx.tenant())
                .bind(ids)
                .fetch_all(&mut *tx.tx)
                .await
                .map_err(|e| AdapterError::from_db(e, "folder"))?;
        found.paths = rows.into_iter().collect();
    }
    let grants: Vec<(&'static str, &str, &str, &String)> = lookups
        .grants
        .iter()
        .filter_map(|node| grant_parts(node).map(|(kind, id, role)| (kind, id, role, node)))
        .collect();
    if !grants.is_empty() {
        let kinds: Vec<&str> = grants.iter().map(|g| g.0).collect();
        let ids: Vec<&str> = grants.iter().map(|g| g.1).collect();
        let roles: Vec<&str> = grants.iter().map(|g| g.2).collect();
        let rows: Vec<(String, String, String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT s.grantee_type, s.grantee_id, s.role, s.resource_type, s.resource_id, f.path \
             FROM shares s \
             JOIN unnest($2::text[], $3::text[], $4::text[]) AS g(kind, id, role) \
               ON s.grantee_type = g.kind AND s.grantee_id = g.id AND s.role = g.role \
             LEFT JOIN folders f ON s.resource_type = 'Folder' AND f.tenant_id = s.tenant_id AND f.id = s.resource_id \
             WHERE s.tenant_id = $1",
        )
        .bind(tx.tenant())
        .bind(kinds)
        .bind(ids)
        .bind(roles)
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(|e| AdapterError::from_db(e, "share"))?;
        for (kind, id, role, resource_type, resource_id, path) in rows {
            let node = format!("{}:{id}/{role}", kind.to_ascii_lowercase());
            let entry = found.shared.entry(node).or_default();
            match (resource_type.as_str(), path) {
                ("Document", _) => entry.0.push(resource_id),
                ("Folder", Some(path)) => entry.1.push(Subtree {
                    folder_id: resource_id,
                    path,
                }),
                _ => {}
            }
        }
    }
    Ok(found)
}

/// The translation; with `dry_run` only checks that every term can be translated.
fn translate(
    filter: &Filter,
    rows: Rows,
    tenant: &str,
    found: &Found,
    dry_run: bool,
) -> Result<RowFilter, ResolveError> {
    let each = |parts: &[Filter]| {
        parts
            .iter()
            .map(|p| translate(p, rows, tenant, found, dry_run))
            .collect::<Result<Vec<_>, _>>()
    };
    let untranslatable = |what: String| Err(ResolveError::Untranslatable(what));
    Ok(match filter {
        Filter::Always => RowFilter::Always,
        Filter::Never => RowFilter::Never,
        Filter::All(parts) => RowFilter::all(each(parts)?),
        Filter::Any(parts) => RowFilter::any(each(parts)?),
        Filter::Not(inner) => translate(inner, rows, tenant, found, dry_run)?.negate(),
        Filter::Has(attr) => match column(rows, attr) {
            Some(_) => RowFilter::Always,
            None => return untranslatable(format!("no column for `{attr}`")),
        },
        Filter::Equals { attr, value } => match (column(rows, attr), value) {
            (Some(Column::Tenant), Scalar::Entity(e)) => {
                constant(e.entity_type == "Tenant" && e.id == tenant)
            }
            (Some(Column::Owner), Scalar::Entity(e)) if e.entity_type == "User" => {
                RowFilter::Owner(e.id.clone())
            }
            (Some(Column::Classification), Scalar::String(s)) => {
                RowFilter::Classification(s.clone())
            }
            (Some(Column::LegalHold), Scalar::Bool(b)) => RowFilter::LegalHold(*b),
            (Some(Column::Name), Scalar::String(s)) => RowFilter::Name(s.clone()),
            // A value of another type can never be equal.
            (Some(_), _) => RowFilter::Never,
            (None, _) => return untranslatable(format!("no column for `{attr}`")),
        },
        Filter::Is(e) => {
            if e.entity_type == rows.cedar_type() {
                RowFilter::Ids(vec![e.id.clone()])
            } else {
                RowFilter::Never
            }
        }
        Filter::In(e) => within(e, rows, found, dry_run)?,
    })
}

fn within(
    e: &EntityRef,
    rows: Rows,
    found: &Found,
    dry_run: bool,
) -> Result<RowFilter, ResolveError> {
    if dry_run {
        return match e.entity_type.as_str() {
            "Folder" | "Grant" | "Document" => Ok(RowFilter::Always),
            other => Err(ResolveError::Untranslatable(format!(
                "`resource in {other}`"
            ))),
        };
    }
    Ok(match e.entity_type.as_str() {
        // A row is `in` itself.
        t if t == rows.cedar_type() => RowFilter::Ids(vec![e.id.clone()]),
        "Folder" => match found.paths.get(&e.id) {
            Some(path) => RowFilter::Under(vec![Subtree {
                folder_id: e.id.clone(),
                path: path.clone(),
            }]),
            // No such folder in this tenant: nothing is in it.
            None => RowFilter::Never,
        },
        "Grant" => match found.shared.get(&e.id) {
            Some((documents, subtrees)) => {
                let direct = match rows {
                    Rows::Documents if !documents.is_empty() => RowFilter::Ids(documents.clone()),
                    _ => RowFilter::Never,
                };
                let below = if subtrees.is_empty() {
                    RowFilter::Never
                } else {
                    RowFilter::Under(subtrees.clone())
                };
                RowFilter::any([direct, below])
            }
            None => RowFilter::Never,
        },
        _ => RowFilter::Never,
    })
}

fn constant(holds: bool) -> RowFilter {
    if holds {
        RowFilter::Always
    } else {
        RowFilter::Never
    }
}

/// The Cedar attributes of a `Document` or `Folder` that are columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Tenant,
    Owner,
    Classification,
    LegalHold,
    Name,
}

fn column(rows: Rows, attr: &str) -> Option<Column> {
    match (rows, attr) {
        (_, "tenant") => Some(Column::Tenant),
        (_, "owner") => Some(Column::Owner),
        (_, "legal_hold") => Some(Column::LegalHold),
        (_, "name") => Some(Column::Name),
        (Rows::Documents, "classification") => Some(Column::Classification),
        _ => None,
    }
}

impl RowFilter {
    /// All of `parts`, with constants folded.
    pub fn all(parts: impl IntoIterator<Item = RowFilter>) -> RowFilter {
        let mut kept = Vec::new();
        for part in parts {
            match part {
                RowFilter::Always => {}
                RowFilter::Never => return RowFilter::Never,
                RowFilter::All(inner) => kept.extend(inner),
                other => kept.push(other),
            }
        }
        match kept.len() {
            0 => RowFilter::Always,
            1 => kept.pop().unwrap_or(RowFilter::Always),
            _ => RowFilter::All(kept),
        }
    }

    /// Any of `parts`, with constants folded.
    pub fn any(parts: impl IntoIterator<Item = RowFilter>) -> RowFilter {
        let mut kept = Vec::new();
        for part in parts {
            match part {
                RowFilter::Never => {}
                RowFilter::Always => return RowFilter::Always,
                RowFilter::Any(inner) => kept.extend(inner),
                other => kept.push(other),
            }
        }
        match kept.len() {
            0 => RowFilter::Never,
            1 => kept.pop().unwrap_or(RowFilter::Never),
            _ => RowFilter::Any(kept),
        }
    }

    /// The negation, with constants folded.
    pub fn negate(self) -> RowFilter {
        match self {
            RowFilter::Always => RowFilter::Never,
            RowFilter::Never => RowFilter::Always,
            RowFilter::Not(inner) => *inner,
            other => RowFilter::Not(Box::new(other)),
        }
    }

    /// Appends this filter as an SQL predicate over the row's columns (unqualified), with
    /// every value bound, never spliced.
    pub fn push_sql(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        let joined = |sql: &mut QueryBuilder<'_, Postgres>, parts: &[RowFilter], op: &str| {
            sql.push("(");
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    sql.push(op);
                }
                part.push_sql(sql);
            }
            sql.push(")");
        };
        match self {
            RowFilter::Always => {
                sql.push("TRUE");
            }
            RowFilter::Never => {
                sql.push("FALSE");
            }
            RowFilter::All(parts) => joined(sql, parts, " AND "),
            RowFilter::Any(parts) => joined(sql, parts, " OR "),
            RowFilter::Not(inner) => {
                sql.push("NOT ");
                inner.push_sql(sql);
            }
            RowFilter::Owner(id) => {
                sql.push("owner_id = ").push_bind(id.clone());
            }
            RowFilter::Classification(c) => {
                sql.push("classification = ").push_bind(c.clone());
            }
            RowFilter::LegalHold(b) => {
                sql.push("legal_hold = ").push_bind(*b);
            }
            RowFilter::Name(n) => {
                sql.push("name = ").push_bind(n.clone());
            }
            RowFilter::Ids(ids) => {
                sql.push("id = ANY(").push_bind(ids.clone()).push(")");
            }
            RowFilter::Under(subtrees) => {
                // Range conditions on the indexed path (see `folders::subtree`).
                let several = subtrees.len() > 1;
                if several {
                    sql.push("(");
                }
                for (i, s) in subtrees.iter().enumerate() {
                    if i > 0 {
                        sql.push(" OR ");
                    }
                    let (lower, upper) = subtree(&s.path);
                    sql.push("(path ~>=~ ")
                        .push_bind(lower)
                        .push(" AND path ~<~ ")
                        .push_bind(upper)
                        .push(")");
                }
                if several {
                    sql.push(")");
                }
            }
        }
    }
}

/// The bounds of every path that starts with `path` (which ends with `/`): from `path`
/// itself up to, not including, the same with its final `/` replaced by the next
/// character, `0`.
pub fn subtree(path: &str) -> (String, String) {
    let stem = path.strip_suffix('/').unwrap_or(path);
    (path.to_string(), format!("{stem}0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_nodes_name_their_grantee_and_role() {
        assert_eq!(
            grant_parts("user:acme-sam/viewer"),
            Some(("User", "acme-sam", "viewer"))
        );
        assert_eq!(
            grant_parts("group:a/b:c/editor"),
            Some(("Group", "a/b:c", "editor"))
        );
        assert_eq!(grant_parts("robot:x/viewer"), None);
        assert_eq!(grant_parts("user-x"), None);
    }

    fn sql_of(filter: &RowFilter) -> String {
        let mut sql = QueryBuilder::new("");
        filter.push_sql(&mut sql);
        sql.into_sql()
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let f = RowFilter::all([
            RowFilter::any([
                RowFilter::Owner("o'; DROP TABLE x; --".into()),
                RowFilter::Under(vec![Subtree {
                    folder_id: "f".into(),
                    path: "/f/".into(),
                }]),
            ]),
            RowFilter::Classification("restricted".into()).negate(),
        ]);
        assert_eq!(
            sql_of(&f),
            "((owner_id = $1 OR (path ~>=~ $2 AND path ~<~ $3)) AND NOT classification = $4)"
        );
    }

    #[test]
    fn terms_without_a_column_are_untranslatable() {
        let found = Found::default();
        let like = Filter::Equals {
            attr: "risk".into(),
            value: Scalar::String("low".into()),
        };
        assert!(matches!(
            translate(&like, Rows::Documents, "acme", &found, true),
            Err(ResolveError::Untranslatable(_))
        ));
        let foreign_tenant = Filter::Equals {
            attr: "tenant".into(),
            value: Scalar::Entity(EntityRef::new("Tenant", "globex")),
        };
        assert_eq!(
            translate(&foreign_tenant, Rows::Documents, "acme", &found, false).unwrap(),
            RowFilter::Never
        );
        let classification_of_folder = Filter::Has("classification".into());
        assert!(
            translate(
                &classification_of_folder,
                Rows::Folders,
                "acme",
                &found,
                true
            )
            .is_err()
        );
    }

    #[test]
    fn a_subtree_is_the_paths_with_its_prefix() {
        let (lower, upper) = subtree("/a_b/c%d/");
        assert_eq!((lower.as_str(), upper.as_str()), ("/a_b/c%d/", "/a_b/c%d0"));
        for inside in ["/a_b/c%d/", "/a_b/c%d/x/", "/a_b/c%d/~~~/"] {
            assert!(
                lower.as_str() <= inside && inside < upper.as_str(),
                "{inside}"
            );
        }
        for outside in ["/a_b/c%d", "/a_b/c%dx/", "/a_b/c%e/", "/a_b/c%d0/"] {
            assert!(
                !(lower.as_str() <= outside && outside < upper.as_str()),
                "{outside}"
            );
        }
    }
}

//! Questions with many answers: which resources may a subject act on, which subjects may
//! act on a resource, which actions may a subject take (AuthZEN's searches), and
//! Gatehouse's capabilities (the actions, on one resource or on a whole type).
//!
//! Subject and resource searches walk the tenant's entities of the searched type in id
//! order and keep those the decision point allows, one by one: exactly what a check of
//! each would answer. A page decides at most [`BUDGET`] candidates, so a page may hold
//! fewer results than its limit and still have a next one. The candidates are not audited
//! one by one (as a list's filtered items are not); the checks of action searches and
//! capabilities on a resource are.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use gatehouse_core::TenantId;
use gatehouse_core::filter::Filter;
use gatehouse_pdp::{AccessRequest, EntityStore, ResourceFilter, ResourceQuery};
use serde_json::{Value, json};
use sqlx::Row;

use super::resolve::{entity_type, entity_uid, resolve};
use super::wire::{EntityIn, PageIn, SearchIn};
use super::{ApiError, Caller, DecisionApi, OthersPermission, Reply, parse};
use crate::runtime::entity_store::Store;

/// Results per page unless the caller asks for another number.
const DEFAULT_LIMIT: usize = 50;
/// The most results per page.
const MAX_LIMIT: usize = 1000;
/// Candidates read from the store at a time.
const CHUNK: usize = 256;
/// The most candidates one page decides.
const BUDGET: usize = 1000;

impl DecisionApi {
    /// AuthZEN's resource search (`Vary::Resource`: the resources of `resource.type` the
    /// subject may take the action on) and subject search (`Vary::Principal`: the
    /// subjects of `subject.type` that may take the action on the resource).
    pub(super) async fn search_entities(
        &self,
        caller: &Caller,
        body: &[u8],
        vary: Vary,
    ) -> Result<Reply, ApiError> {
        let search: SearchIn = parse(body)?;
        let bundle = self.authorizer.pdp().bundle().snapshot();
        let (searched, fixed, field, other) = match vary {
            Vary::Resource => (search.resource, search.subject, "resource", "subject"),
            Vary::Principal => (search.subject, search.resource, "subject", "resource"),
        };
        let searched = searched.unwrap_or_default();
        let kind = entity_type(&bundle, &searched, field)?;
        let fixed = fixed.ok_or_else(|| ApiError::missing(other))?;
        // The searched part, with a placeholder id, makes the request every candidate fills
        // in. A placeholder subject is someone else: the caller needs pdp:evaluate.
        let probe = EntityIn {
            id: Some("-".into()),
            properties: Default::default(),
            ..searched
        };
        let (subject, resource) = match vary {
            Vary::Resource => (&fixed, &probe),
            Vary::Principal => (&probe, &fixed),
        };
        let context = search.context.unwrap_or_default();
        let template = resolve(
            &bundle,
            caller,
            subject,
            search.action.as_ref(),
            resource,
            context,
        )?;
        self.may_ask(caller, &template.principal, &mut None).await?;
        let page = self.scan(&template, vary, &kind, search.page).await?;
        Ok(page.reply(&kind))
    }

    /// AuthZEN's action search: the actions the subject may take on the resource, each
    /// decided and audited.
    pub(super) async fn search_actions(
        &self,
        caller: &Caller,
        path: &str,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let search: SearchIn = parse(body)?;
        let decided = self.each_action(caller, path, search).await?;
        let results: Vec<Value> = decided
            .iter()
            .filter(|d| d.decision.is_allowed())
            .map(|d| json!({ "name": d.request.action.id().unescaped() }))
            .collect();
        Ok(Reply::ok(json!({ "results": results })))
    }

    /// Gatehouse's capabilities: for a resource (`resource.id` given), every action the
    /// schema allows between the two types, decided and audited; for a resource type (no
    /// id), each action's reach: on `all` resources of the type, on `none`, or on `some`,
    /// with the condition the policies compile to.
    pub(super) async fn capabilities(
        &self,
        caller: &Caller,
        path: &str,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let search: SearchIn = parse(body)?;
        let has_id = search
            .resource
            .as_ref()
            .is_some_and(|r| r.id.as_deref().is_some_and(|id| !id.is_empty()));
        if has_id {
            let decided = self.each_action(caller, path, search).await?;
            let actions: Vec<Value> = decided
                .iter()
                .map(|d| {
                    json!({
                        "action": d.request.action.id().unescaped(),
                        "decision": d.decision.effect.as_str(),
                        "decision_id": d.id,
                        "determining_policies": d.decision.determining_policies,
                        "reason": d.reason,
                    })
                })
                .collect();
            return Ok(Reply::ok(json!({ "actions": actions })));
        }
        self.reach(caller, search).await
    }

    /// Every action between the subject's and the resource's types, decided.
    async fn each_action(
        &self,
        caller: &Caller,
        path: &str,
        search: SearchIn,
    ) -> Result<Vec<super::Decided>, ApiError> {
        let bundle = self.authorizer.pdp().bundle().snapshot();
        let subject = search.subject.ok_or_else(|| ApiError::missing("subject"))?;
        let resource = search
            .resource
            .ok_or_else(|| ApiError::missing("resource"))?;
        let principal = entity_uid(&bundle, &subject, "subject")?;
        let resource_uid = entity_uid(&bundle, &resource, "resource")?;
        let actions = bundle.actions_between(principal.type_name(), resource_uid.type_name());
        let mut permission: OthersPermission = None;
        let mut decided = Vec::with_capacity(actions.len());
        for action in actions {
            let name = super::wire::ActionIn {
                name: Some(action.id().unescaped().to_string()),
            };
            let request = resolve(
                &bundle,
                caller,
                &subject,
                Some(&name),
                &resource,
                search.context.clone().unwrap_or_default(),
            )?;
            self.may_ask(caller, &request.principal, &mut permission)
                .await?;
            let one = self.decide(caller, path, &bundle, request).await;
            if one.decision.is_unavailable() {
                return Err(ApiError::unavailable());
            }
            decided.push(one);
        }
        Ok(decided)
    }

    /// Each action's reach over a whole resource type, from the compiled policies.
    async fn reach(&self, caller: &Caller, search: SearchIn) -> Result<Reply, ApiError> {
        let bundle = self.authorizer.pdp().bundle().snapshot();
        let subject = search.subject.ok_or_else(|| ApiError::missing("subject"))?;
        let resource = search.resource.unwrap_or_default();
        let kind = entity_type(&bundle, &resource, "resource")?;
        let principal = entity_uid(&bundle, &subject, "subject")?;
        self.may_ask(caller, &principal, &mut None).await?;
        let probe = EntityIn {
            id: Some("-".into()),
            ..resource
        };
        let mut actions = Vec::new();
        for action in bundle.actions_between(principal.type_name(), &kind) {
            let name = super::wire::ActionIn {
                name: Some(action.id().unescaped().to_string()),
            };
            let context = search.context.clone().unwrap_or_default();
            let request = resolve(&bundle, caller, &subject, Some(&name), &probe, context)?;
            let query = ResourceQuery::from(request);
            let filter = self
                .authorizer
                .resource_filter(&query)
                .await
                .map_err(|_| ApiError::unavailable())?;
            let (on, condition) = match filter {
                ResourceFilter::Exact(Filter::Always) => ("all", None),
                ResourceFilter::Exact(Filter::Never) => ("none", None),
                ResourceFilter::Exact(filter) => ("some", Some(filter.to_string())),
                ResourceFilter::Untranslatable { .. } => ("some", None),
            };
            actions.push(json!({
                "action": action.id().unescaped(),
                "on": on,
                "condition": condition,
            }));
        }
        Ok(Reply::ok(
            json!({ "resource_type": kind.to_string(), "actions": actions }),
        ))
    }

    /// Whether the decision point allows `request` (not audited: one of many candidates).
    async fn allows(&self, request: &AccessRequest) -> Result<bool, ApiError> {
        let decision = self.authorizer.decide_covered(request).await;
        if decision.is_unavailable() {
            return Err(ApiError::unavailable());
        }
        Ok(decision.is_allowed())
    }

    /// Walks the tenant's entities of `kind` from the page token on, keeping those the
    /// decision point allows in `template`'s varied part, until the page is full or its
    /// scan budget spent.
    async fn scan(
        &self,
        template: &AccessRequest,
        vary: Vary,
        kind: &EntityTypeName,
        page: Option<PageIn>,
    ) -> Result<Page, ApiError> {
        let tenant = &template.tenant;
        let page = page.unwrap_or_default();
        let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad(
                "bad_page_limit",
                format!("page.limit is from 1 to {MAX_LIMIT}"),
            ));
        }
        let mut at = match page.token.as_deref() {
            Some(token) => Position::decode(token)?,
            None => Position::default(),
        };
        let mut to_skip = at.skip;
        let (mut decided, mut results) = (0, Vec::new());
        // Candidates are read after the last result (or the start); those a previous page
        // already found denied are skipped, not decided again.
        let mut cursor = at.after.clone();
        loop {
            let chunk = entity_ids(
                self.authorizer.store(),
                tenant,
                kind,
                cursor.as_deref(),
                CHUNK,
            )
            .await
            .map_err(|_| ApiError::unavailable())?;
            let exhausted = chunk.len() < CHUNK;
            for id in chunk {
                cursor = Some(id.clone());
                if to_skip > 0 {
                    to_skip -= 1;
                    continue;
                }
                if results.len() >= limit || decided >= BUDGET {
                    return Ok(Page {
                        ids: results,
                        next: Some(at),
                    });
                }
                decided += 1;
                let mut request = template.clone();
                match vary {
                    Vary::Resource => request.resource = uid(kind, &id),
                    Vary::Principal => request.principal = uid(kind, &id),
                }
                if self.allows(&request).await? {
                    results.push(id.clone());
                    at = Position {
                        after: Some(id),
                        skip: 0,
                    };
                } else {
                    at.skip += 1;
                }
            }
            if exhausted {
                return Ok(Page {
                    ids: results,
                    next: None,
                });
            }
        }
    }
}

/// Which part of a search's request each candidate fills in.
#[derive(Clone, Copy)]
pub(super) enum Vary {
    Resource,
    Principal,
}

/// Where the next page starts: after the last result given, past the candidates found
/// denied since. A token names only what the caller was shown (and a count), never a
/// candidate it may not see; a forged one moves the start, and every result is still
/// decided.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Position {
    after: Option<String>,
    skip: usize,
}

impl Position {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a position serializes");
        URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(token: &str) -> Result<Self, ApiError> {
        URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::bad("bad_page_token", "page.token is not one this API gave"))
    }
}

/// One page of search results.
struct Page {
    ids: Vec<String>,
    next: Option<Position>,
}

impl Page {
    /// AuthZEN's search response: `next_token` is empty on the last page.
    fn reply(self, kind: &EntityTypeName) -> Reply {
        let next_token = self.next.as_ref().map(Position::encode).unwrap_or_default();
        let count = self.ids.len();
        let results: Vec<Value> = self
            .ids
            .into_iter()
            .map(|id| json!({ "type": kind.to_string(), "id": id }))
            .collect();
        Reply::ok(json!({
            "page": { "next_token": next_token, "count": count },
            "results": results,
        }))
    }
}

fn uid(kind: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
}

/// The ids of the tenant's entities of `kind` after `after`, in order, at most `limit`.
async fn entity_ids(
    store: &Store,
    tenant: &TenantId,
    kind: &EntityTypeName,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, gatehouse_pdp::StoreError> {
    match store {
        Store::Memory(memory) => {
            let entities = memory.load(tenant, &[]).await?;
            let mut ids: Vec<String> = entities
                .iter()
                .map(|e| e.uid())
                .filter(|u| u.type_name() == kind)
                .map(|u| u.id().unescaped().to_string())
                .filter(|id| after.is_none_or(|a| id.as_str() > a))
                .collect();
            ids.sort();
            ids.truncate(limit);
            Ok(ids)
        }
        Store::Postgres(pg) => {
            let unavailable = |_| gatehouse_pdp::StoreError::new("entity store unavailable");
            let mut tx = gatehouse_schemas::tenant_tx(pg.pool().await?, tenant)
                .await
                .map_err(unavailable)?;
            let rows = sqlx::query(
                "SELECT entity_id FROM entities \
                 WHERE tenant_id = $1 AND entity_type = $2 AND entity_id > $3 \
                 ORDER BY entity_id LIMIT $4",
            )
            .bind(tenant.as_str())
            .bind(kind.to_string())
            .bind(after.unwrap_or(""))
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
        }
    }
}

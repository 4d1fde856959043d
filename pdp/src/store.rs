//! Where entities come from.

use std::collections::HashMap;
use std::future::Future;

use cedar_policy::{Entities, Entity, EntityUid, EvalResult};
use gatehouse_core::TenantId;

/// Why an [`EntityStore`] could not answer. The decision point turns this into a deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// A store failure, described for operators (no tenant data in it).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A source of entities for decisions, scoped to one tenant per call.
///
/// Implementations return the entities asked for **and all their ancestors** (groups and
/// roles of a user, the folder chain and grant nodes of a document), from the given tenant
/// and from the tenant-less global entities (roles, capabilities, grant nodes) only. An
/// entity of another tenant is never returned: to the decision point it does not exist.
/// Unknown uids are left out, not an error.
pub trait EntityStore: Send + Sync {
    /// Loads `uids` and their ancestors for `tenant`.
    fn load(
        &self,
        tenant: &TenantId,
        uids: &[EntityUid],
    ) -> impl Future<Output = Result<Vec<Entity>, StoreError>> + Send;
}

/// An in-memory [`EntityStore`], partitioned by tenant.
///
/// Each entity is filed under the tenant named by its `tenant` attribute (a `Tenant`
/// entity under itself); entities without one (roles, capabilities, grant nodes) are
/// global. Ancestors are resolved once, when the store is built.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tenants: HashMap<TenantId, Partition>,
    global: Partition,
}

type Partition = HashMap<EntityUid, Stored>;

#[derive(Debug)]
struct Stored {
    entity: Entity,
    ancestors: Vec<EntityUid>,
}

impl MemoryStore {
    /// Files every entity of `entities` (action entities are skipped: they come from the
    /// bundle's schema).
    pub fn new(entities: &Entities) -> Self {
        let mut store = Self::default();
        for entity in entities.iter() {
            let uid = entity.uid();
            if uid.type_name().basename() == "Action" {
                continue;
            }
            let ancestors = entities
                .ancestors(&uid)
                .map(|a| a.cloned().collect())
                .unwrap_or_default();
            let stored = Stored {
                entity: entity.clone(),
                ancestors,
            };
            match tenant_of(entity) {
                Some(tenant) => store.tenants.entry(tenant).or_default().insert(uid, stored),
                None => store.global.insert(uid, stored),
            };
        }
        store
    }

    /// The number of entities filed under `tenant`.
    pub fn tenant_len(&self, tenant: &TenantId) -> usize {
        self.tenants.get(tenant).map_or(0, HashMap::len)
    }

    /// Synchronous [`EntityStore::load`]: the uids found, each followed by its ancestors,
    /// without duplicates.
    pub fn load_now(&self, tenant: &TenantId, uids: &[EntityUid]) -> Vec<Entity> {
        let partition = self.tenants.get(tenant);
        let find = |uid: &EntityUid| {
            partition
                .and_then(|p| p.get(uid))
                .or_else(|| self.global.get(uid))
        };
        let mut out: Vec<Entity> = Vec::with_capacity(uids.len() * 4);
        let mut seen: Vec<&EntityUid> = Vec::with_capacity(uids.len() * 4);
        for uid in uids {
            let Some(stored) = find(uid) else { continue };
            for (uid, entity) in std::iter::once((uid, Some(stored)))
                .chain(stored.ancestors.iter().map(|a| (a, find(a))))
            {
                if let Some(found) = entity
                    && !seen.contains(&uid)
                {
                    seen.push(uid);
                    out.push(found.entity.clone());
                }
            }
        }
        out
    }
}

impl EntityStore for MemoryStore {
    async fn load(&self, tenant: &TenantId, uids: &[EntityUid]) -> Result<Vec<Entity>, StoreError> {
        Ok(self.load_now(tenant, uids))
    }
}

/// The tenant an entity belongs to: its `tenant` attribute, or itself for a `Tenant`.
pub fn tenant_of(entity: &Entity) -> Option<TenantId> {
    let uid = entity.uid();
    if uid.type_name().basename() == "Tenant" {
        return TenantId::parse(uid.id().unescaped()).ok();
    }
    tenant_attr(entity).and_then(|t| TenantId::parse(t.id().unescaped()).ok())
}

/// The `tenant` attribute of an entity, as a uid.
pub(crate) fn tenant_attr(entity: &Entity) -> Option<EntityUid> {
    entity_attr(entity, "tenant")
}

/// An entity-valued attribute.
pub(crate) fn entity_attr(entity: &Entity, name: &str) -> Option<EntityUid> {
    match entity.attr(name) {
        Some(Ok(EvalResult::EntityUid(uid))) => Some(uid),
        _ => None,
    }
}

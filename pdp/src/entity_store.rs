//! Where entities come from.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityUid, EvalResult, Schema};
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
/// `load` answers with a Cedar entity set that holds at least the entities asked for,
/// **all their ancestors** (a user's groups and roles, a document's folder chain and grant
/// nodes), the entities they reference that policies read (their `Tenant`), and the action
/// entities of the bundle's schema. It may hold more: an in-memory store hands out its
/// whole tenant. It never holds another tenant's entities: to the decision point, they do
/// not exist. Unknown uids are left out, not an error.
pub trait EntityStore: Send + Sync {
    /// The entities for `uids` (and their ancestors) in `tenant`.
    fn load(
        &self,
        tenant: &TenantId,
        uids: &[EntityUid],
    ) -> impl Future<Output = Result<Arc<Entities>, StoreError>> + Send;
}

/// An in-memory [`EntityStore`], partitioned by tenant.
///
/// Each entity is filed under the tenant named by its `tenant` attribute (a `Tenant`
/// entity under itself); entities without one (roles, capabilities) and the schema's
/// action entities are copied into every tenant's set. Each tenant's set is built once,
/// with its transitive closure, so a decision looks entities up instead of assembling
/// them.
#[derive(Debug)]
pub struct MemoryStore {
    tenants: HashMap<TenantId, Arc<Entities>>,
    empty: Arc<Entities>,
}

impl MemoryStore {
    /// Partitions `entities` by tenant, adding the action entities of `schema`.
    ///
    /// # Errors
    /// A [`StoreError`] when a tenant's entities cannot form a Cedar entity set (a cycle in
    /// the hierarchy, a duplicate).
    pub fn new(entities: &Entities, schema: &Schema) -> Result<Self, StoreError> {
        let actions: Vec<Entity> = schema
            .action_entities()
            .map_err(|e| StoreError::new(format!("schema actions: {e}")))?
            .into_iter()
            .collect();
        let mut global = actions;
        let mut partitions: HashMap<TenantId, Vec<Entity>> = HashMap::new();
        for entity in entities.iter() {
            if is_action(&entity.uid()) {
                continue;
            }
            match tenant_of(entity) {
                Some(tenant) => partitions.entry(tenant).or_default().push(entity.clone()),
                None => global.push(entity.clone()),
            }
        }
        let mut tenants = HashMap::new();
        for (tenant, mut own) in partitions {
            own.extend(global.iter().cloned());
            let set = Entities::from_entities(own, None)
                .map_err(|e| StoreError::new(format!("tenant {tenant}: {e}")))?;
            tenants.insert(tenant, Arc::new(set));
        }
        let empty = Arc::new(
            Entities::from_entities(global, None).map_err(|e| StoreError::new(e.to_string()))?,
        );
        Ok(Self { tenants, empty })
    }

    /// The number of entities (global ones included) in `tenant`'s set.
    pub fn tenant_len(&self, tenant: &TenantId) -> usize {
        self.tenants.get(tenant).map_or(0, |e| e.len())
    }

    /// The smallest slice of `tenant`'s entities a remote store would have to send for
    /// `uids`: each one found, followed by its ancestors, without duplicates.
    pub fn slice(&self, tenant: &TenantId, uids: &[EntityUid]) -> Vec<Entity> {
        let Some(set) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let mut out: Vec<Entity> = Vec::with_capacity(uids.len() * 4);
        for uid in uids {
            let Some(ancestors) = set.ancestors(uid) else {
                continue;
            };
            for found in std::iter::once(uid)
                .chain(ancestors)
                .filter_map(|u| set.get(u))
            {
                if !out.iter().any(|e| e.uid() == found.uid()) {
                    out.push(found.clone());
                }
            }
        }
        out
    }
}

impl EntityStore for MemoryStore {
    async fn load(
        &self,
        tenant: &TenantId,
        _uids: &[EntityUid],
    ) -> Result<Arc<Entities>, StoreError> {
        Ok(self.tenants.get(tenant).unwrap_or(&self.empty).clone())
    }
}

fn is_action(uid: &EntityUid) -> bool {
    uid.type_name().basename() == "Action"
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

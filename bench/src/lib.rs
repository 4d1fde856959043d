//! Realistic data for Gatehouse's benchmarks.
//!
//! [`Dataset::generate`] builds one tenant the size the foundation issue asks for (10,000
//! folders up to 10 deep, 100,000 documents, 1,000 users in 50 groups, 10,000 shares, plus
//! agents), deterministically from a seed, and a mix of requests against it.
//!
//! Shares can be modelled two ways ([`Sharing`]): as entity data (grant nodes that are
//! parents of the shared document, what Gatehouse does) or as one template-linked policy
//! per share (the obvious Cedar alternative). The benchmarks run both side by side.

use gatehouse_core::uid::uid_text;
use std::fmt::Write as _;
use std::path::Path;

use cedar_policy::{Entities, Schema};
use gatehouse_core::TenantId;
use gatehouse_pdp::AccessRequest;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// How big the generated tenant is.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Number of folders.
    pub folders: usize,
    /// Deepest folder nesting.
    pub max_depth: usize,
    /// Number of documents.
    pub documents: usize,
    /// Number of users.
    pub users: usize,
    /// Number of groups.
    pub groups: usize,
    /// Number of document shares.
    pub shares: usize,
    /// Number of agents.
    pub agents: usize,
    /// Number of requests to generate.
    pub requests: usize,
}

impl Shape {
    /// The shape the foundation issue names.
    pub const ISSUE: Shape = Shape {
        folders: 10_000,
        max_depth: 10,
        documents: 100_000,
        users: 1_000,
        groups: 50,
        shares: 10_000,
        agents: 100,
        requests: 20_000,
    };
}

/// How document shares are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// A grant node per (grantee, role), parent of the shared document (Gatehouse's model).
    EntityData,
    /// One template-linked policy per share (written by [`Dataset::write_bundle`]).
    TemplateLinks,
}

/// One share: a grantee (user or group uid), a document uid and a role.
#[derive(Debug, Clone)]
pub struct Share {
    /// `User::"…"` or `Group::"…"`.
    pub grantee: String,
    /// `Document::"…"`.
    pub document: String,
    /// `viewer` or `editor`.
    pub role: &'static str,
}

/// The generated tenant and requests.
pub struct Dataset {
    /// Every entity, checked against the schema.
    pub entities: Entities,
    /// The requests to decide, a mix of users and agents, reads, writes and deletes.
    pub requests: Vec<AccessRequest>,
    /// The document shares (also present as grant nodes under [`Sharing::EntityData`]).
    pub shares: Vec<Share>,
    /// Maximum folder depth actually generated.
    pub depth: usize,
}

/// The tenant all generated entities belong to.
pub const TENANT: &str = "bench";

impl Dataset {
    /// Generates a dataset of `shape` from `seed`, with shares represented as `sharing`.
    ///
    /// # Panics
    /// If the generated entities do not fit `schema` (a bug in this generator).
    pub fn generate(shape: Shape, sharing: Sharing, schema: &Schema, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut g = Generator::default();
        g.global();
        let groups: Vec<String> = (0..shape.groups).map(|i| format!("g{i}")).collect();
        for (i, group) in groups.iter().enumerate() {
            // A few groups carry a tenant-wide role; most get their access from grants.
            let roles: &[&str] = match i {
                0 => &["editor"],
                1..=4 => &["viewer"],
                _ => &[],
            };
            g.group(group, roles);
        }
        let (folders, depth) = g.folders(&mut rng, shape);
        let folder_grants = folder_grants(&mut rng, &groups, &folders);
        g.users(&mut rng, shape, &groups, &folders);
        g.documents(&mut rng, shape, &folders);
        let shares = shares(&mut rng, shape, &groups);
        if sharing == Sharing::EntityData {
            g.share_as_parents(&shares);
        }
        g.grant_folders(&folder_grants);
        g.agents(&mut rng, shape);
        let entities = Entities::from_json_value(Value::Array(g.entities), Some(schema))
            .expect("generated entities fit the schema");
        let requests = requests(&mut rng, shape);
        Self {
            entities,
            requests,
            shares,
            depth,
        }
    }

    /// Writes a copy of the bundle in `policies` (with the schema it names) to `into`, with
    /// this dataset's shares added as template links, and returns the new bundle directory.
    ///
    /// # Errors
    /// Any I/O error.
    pub fn write_bundle(
        &self,
        policies: &Path,
        into: &Path,
    ) -> std::io::Result<std::path::PathBuf> {
        let bundle = into.join("policies");
        std::fs::create_dir_all(&bundle)?;
        std::fs::create_dir_all(into.join("schemas"))?;
        for entry in std::fs::read_dir(policies)? {
            let entry = entry?;
            std::fs::copy(entry.path(), bundle.join(entry.file_name()))?;
        }
        let schema = policies.join("../schemas/gatehouse.cedarschema");
        std::fs::copy(schema, into.join("schemas/gatehouse.cedarschema"))?;
        std::fs::write(
            bundle.join("90-share-templates.cedar"),
            "@id(\"share-viewer\")\n@purpose(\"one linked policy per viewer share\")\n\
             permit (principal in ?principal, action in Action::\"view\", resource in ?resource);\n\
             @id(\"share-editor\")\n@purpose(\"one linked policy per editor share\")\n\
             permit (principal in ?principal, action in [Action::\"view\", Action::\"edit\"], resource in ?resource);\n",
        )?;
        let mut links = std::fs::read_to_string(bundle.join("links.toml"))?;
        for (i, share) in self.shares.iter().enumerate() {
            let _ = write!(
                links,
                "\n[[link]]\nid = \"share-{i}\"\ntemplate = \"share-{}\"\nprincipal = '{}'\nresource = '{}'\n",
                share.role, share.grantee, share.document
            );
        }
        std::fs::write(bundle.join("links.toml"), links)?;
        Ok(bundle)
    }
}

#[derive(Default)]
struct Generator {
    entities: Vec<Value>,
    /// Per user: its groups (for the grant sets).
    user_groups: Vec<Vec<usize>>,
    /// Per document: (folder, extra grant parents).
    document_parents: Vec<Vec<String>>,
    document_attrs: Vec<Value>,
    folder_parents: Vec<Vec<String>>,
    folder_attrs: Vec<Value>,
}

fn uid(kind: &str, id: &str) -> Value {
    json!({ "type": kind, "id": id })
}

fn entity_ref(kind: &str, id: &str) -> Value {
    json!({ "__entity": uid(kind, id) })
}

fn tenant() -> Value {
    entity_ref("Tenant", TENANT)
}

impl Generator {
    fn push(&mut self, kind: &str, id: &str, attrs: Value, parents: Vec<Value>) {
        self.entities
            .push(json!({ "uid": uid(kind, id), "attrs": attrs, "parents": parents }));
    }

    fn global(&mut self) {
        self.push("Role", "viewer", json!({}), vec![]);
        self.push("Role", "editor", json!({}), vec![uid("Role", "viewer")]);
        self.push("Role", "admin", json!({}), vec![uid("Role", "editor")]);
        self.push("Role", "auditor", json!({}), vec![]);
        for capability in ["view", "edit", "manage"] {
            self.push("Capability", capability, json!({}), vec![]);
        }
        let attrs =
            json!({ "name": "Bench", "plan": "enterprise", "region": "eu", "suspended": false });
        self.push("Tenant", TENANT, attrs, vec![]);
    }

    fn group(&mut self, id: &str, roles: &[&str]) {
        let parents = roles.iter().map(|r| uid("Role", r)).collect();
        self.push(
            "Group",
            id,
            json!({ "tenant": tenant(), "name": id }),
            parents,
        );
    }

    /// Folders as a forest of at most `max_depth` levels; returns ids and the depth reached.
    fn folders(&mut self, rng: &mut SmallRng, shape: Shape) -> (Vec<String>, usize) {
        let mut depth_of: Vec<usize> = Vec::with_capacity(shape.folders);
        let mut ids = Vec::with_capacity(shape.folders);
        for i in 0..shape.folders {
            let id = format!("f{i}");
            // Pick a recent folder as parent most of the time, so deep chains exist.
            let parent = match i {
                0..10 => None,
                _ => {
                    let lo = i.saturating_sub(50);
                    let p = rng.random_range(lo..i);
                    (depth_of[p] < shape.max_depth).then_some(p)
                }
            };
            let depth = parent.map_or(1, |p| depth_of[p] + 1);
            depth_of.push(depth);
            let owner = format!("u{}", rng.random_range(0..shape.users));
            let attrs = json!({ "tenant": tenant(), "name": id, "owner": entity_ref("User", &owner), "legal_hold": false });
            self.folder_attrs.push(attrs);
            self.folder_parents
                .push(parent.map(|p| format!("F:f{p}")).into_iter().collect());
            ids.push(id);
        }
        let reached = depth_of.iter().copied().max().unwrap_or(0);
        (ids, reached)
    }

    fn users(&mut self, rng: &mut SmallRng, shape: Shape, groups: &[String], _folders: &[String]) {
        for i in 0..shape.users {
            let mut mine: Vec<usize> = (0..rng.random_range(1..=3))
                .map(|_| rng.random_range(0..groups.len()))
                .collect();
            mine.sort_unstable();
            mine.dedup();
            let id = format!("u{i}");
            let grants = |role: &str| -> Vec<Value> {
                std::iter::once(format!("user:{id}/{role}"))
                    .chain(mine.iter().map(|g| format!("group:g{g}/{role}")))
                    .map(|g| entity_ref("Grant", &g))
                    .collect()
            };
            let attrs = json!({
                "tenant": tenant(), "name": id, "legal_hold": false,
                "viewer_grants": grants("viewer"), "editor_grants": grants("editor"),
            });
            let mut parents: Vec<Value> = mine.iter().map(|g| uid("Group", &groups[*g])).collect();
            match rng.random_range(0..100) {
                0 => parents.push(uid("Role", "admin")),
                1..=2 => parents.push(uid("Role", "editor")),
                3..=12 => parents.push(uid("Role", "viewer")),
                _ => {}
            }
            self.push("User", &id, attrs, parents);
            self.user_groups.push(mine);
        }
    }

    fn documents(&mut self, rng: &mut SmallRng, shape: Shape, folders: &[String]) {
        for i in 0..shape.documents {
            let id = format!("d{i}");
            let folder = folders.choose(rng).expect("at least one folder");
            let classification = match rng.random_range(0..100) {
                0..5 => "public",
                5..75 => "internal",
                75..95 => "confidential",
                _ => "restricted",
            };
            let owner = format!("u{}", rng.random_range(0..shape.users));
            self.document_attrs.push(json!({
                "tenant": tenant(), "name": id, "owner": entity_ref("User", &owner),
                "classification": classification, "legal_hold": rng.random_range(0..100) == 0,
            }));
            self.document_parents.push(vec![format!("F:{folder}")]);
        }
    }

    fn share_as_parents(&mut self, shares: &[Share]) {
        for share in shares {
            let index: usize = share.document["Document::\"d".len()..share.document.len() - 1]
                .parse()
                .expect("generated document ids are d<n>");
            let grantee = grantee_key(&share.grantee);
            self.document_parents[index].push(format!("G:{grantee}/{}", share.role));
        }
    }

    fn grant_folders(&mut self, grants: &[(usize, String, &'static str)]) {
        for (folder, group, role) in grants {
            self.folder_parents[*folder].push(format!("G:group:{group}/{role}"));
        }
        let folders = std::mem::take(&mut self.folder_attrs);
        let parents = std::mem::take(&mut self.folder_parents);
        for (i, (attrs, parents)) in folders.into_iter().zip(parents).enumerate() {
            self.push(
                "Folder",
                &format!("f{i}"),
                attrs,
                parents.iter().map(|p| parent_uid(p)).collect(),
            );
        }
        let documents = std::mem::take(&mut self.document_attrs);
        let parents = std::mem::take(&mut self.document_parents);
        for (i, (attrs, parents)) in documents.into_iter().zip(parents).enumerate() {
            self.push(
                "Document",
                &format!("d{i}"),
                attrs,
                parents.iter().map(|p| parent_uid(p)).collect(),
            );
        }
    }

    fn agents(&mut self, rng: &mut SmallRng, shape: Shape) {
        for i in 0..shape.agents {
            let user = format!("u{}", rng.random_range(0..shape.users));
            let capabilities: Vec<Value> = ["view", "edit", "manage"]
                .iter()
                .filter(|_| rng.random_bool(0.6))
                .map(|c| uid("Capability", c))
                .collect();
            let id = format!("a{i}");
            let attrs = json!({ "tenant": tenant(), "name": id, "acts_for": entity_ref("User", &user), "tools": [] });
            self.push("Agent", &id, attrs, capabilities);
        }
    }
}

/// `F:f1` is a folder uid, `G:user:u1/viewer` a grant node uid.
fn parent_uid(short: &str) -> Value {
    match short.split_once(':') {
        Some(("F", id)) => uid("Folder", id),
        Some(("G", id)) => uid("Grant", id),
        _ => unreachable!("parents are written by this generator"),
    }
}

/// `User::"u1"` -> `user:u1`, `Group::"g1"` -> `group:g1`.
fn grantee_key(grantee: &str) -> String {
    let (kind, rest) = grantee.split_once("::").expect("a uid");
    format!("{}:{}", kind.to_lowercase(), rest.trim_matches('"'))
}

/// Each group gets viewer or editor grants on a handful of folders.
fn folder_grants(
    rng: &mut SmallRng,
    groups: &[String],
    folders: &[String],
) -> Vec<(usize, String, &'static str)> {
    let mut grants = Vec::new();
    for group in groups {
        for _ in 0..5 {
            let role = if rng.random_bool(0.3) {
                "editor"
            } else {
                "viewer"
            };
            grants.push((rng.random_range(0..folders.len()), group.clone(), role));
        }
    }
    grants
}

fn shares(rng: &mut SmallRng, shape: Shape, groups: &[String]) -> Vec<Share> {
    (0..shape.shares)
        .map(|_| {
            let grantee = if rng.random_bool(0.8) {
                uid_text("User", &format!("u{}", rng.random_range(0..shape.users)))
            } else {
                uid_text("Group", groups.choose(rng).expect("groups"))
            };
            Share {
                grantee,
                document: uid_text(
                    "Document",
                    &format!("d{}", rng.random_range(0..shape.documents)),
                ),
                role: if rng.random_bool(0.25) {
                    "editor"
                } else {
                    "viewer"
                },
            }
        })
        .collect()
}

/// A request mix: 90% users, 10% agents; mostly reads, some writes, comments and deletes.
fn requests(rng: &mut SmallRng, shape: Shape) -> Vec<AccessRequest> {
    let tenant = TenantId::parse(TENANT).expect("a valid tenant id");
    (0..shape.requests)
        .map(|_| {
            let principal = if rng.random_range(0..10) == 0 {
                format!("Agent::\"a{}\"", rng.random_range(0..shape.agents))
            } else {
                uid_text("User", &format!("u{}", rng.random_range(0..shape.users)))
            };
            let action = match rng.random_range(0..100) {
                0..70 => "document:read",
                70..85 => "document:write",
                85..95 => "document:comment",
                _ => "document:delete",
            };
            let resource = format!("Document::\"d{}\"", rng.random_range(0..shape.documents));
            let context = json!({ "mfa": rng.random_bool(0.5), "now": "2026-06-01T00:00:00Z" });
            AccessRequest::parse(tenant.clone(), &principal, action, &resource)
                .expect("generated uids parse")
                .with_context(context.as_object().expect("an object").clone())
        })
        .collect()
}

/// The `p`-quantile (0 < p <= 1) of durations sorted ascending, by the nearest-rank
/// method; zero for none.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

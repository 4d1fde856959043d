//! Policy bundles: loading, validation and identity.
//!
//! A bundle is a directory with a manifest, `bundle.toml`:
//!
//! ```toml
//! name = "gatehouse-base"
//! version = "1.0.0"
//! schema = "../schemas/gatehouse.cedarschema"   # relative to the manifest
//! links = "links.toml"                          # optional template links
//! ```
//!
//! and the policies in every `*.cedar` file beside it. Each policy and template must carry
//! an `@id("...")` annotation (its id in decisions and audit records) and a one-line
//! `@purpose("...")`. The whole set is validated strictly against the schema.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Entity, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema, SlotId, ValidationMode,
    Validator,
};
use miette::Diagnostic;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::slices::{Shape, Slices};

/// The name of the manifest file in a bundle directory.
pub const MANIFEST_FILE: &str = "bundle.toml";

/// A bundle's manifest, as written in `bundle.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// A name for people, e.g. `gatehouse-base`.
    pub name: String,
    /// The version the policy authors gave this bundle.
    pub version: String,
    /// The Cedar schema (`.cedarschema`), relative to the manifest.
    pub schema: PathBuf,
    /// Template links (TOML), relative to the manifest.
    #[serde(default)]
    pub links: Option<PathBuf>,
}

/// What identifies a bundle in decisions and audit records. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleId {
    /// The manifest's name.
    pub name: Arc<str>,
    /// The manifest's version.
    pub version: Arc<str>,
    /// `sha256:<hex>` over the manifest, the schema, the policy files and the links.
    pub hash: Arc<str>,
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.name, self.version, self.hash)
    }
}

/// Where a policy was written, and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    /// The file, relative to the bundle directory (or the manifest for template links).
    pub file: PathBuf,
    /// The 1-based line of the policy's first character.
    pub line: usize,
    /// The `@purpose` annotation.
    pub purpose: String,
}

/// One thing wrong with a bundle, located as precisely as the source allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The policy id, when the problem belongs to one policy.
    pub policy: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(policy) = &self.policy {
            write!(f, ": policy `{policy}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a bundle was refused: every problem found, not just the first.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid policy bundle {dir}:\n{}", render(.problems))]
pub struct BundleError {
    dir: PathBuf,
    problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    lines.join("\n")
}

impl BundleError {
    /// The bundle directory that was refused.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every problem found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

/// A loaded, strictly validated policy bundle.
#[derive(Debug)]
pub struct Bundle {
    id: BundleId,
    dir: PathBuf,
    schema: Schema,
    policies: PolicySet,
    sources: BTreeMap<String, PolicySource>,
    actions: HashMap<EntityUid, Entity>,
    action_ancestors: HashMap<EntityUid, HashSet<EntityUid>>,
    slices: Slices,
    required_attributes: HashMap<String, HashSet<String>>,
    warnings: Vec<Problem>,
}

impl Bundle {
    /// Loads and validates the bundle in `dir`.
    ///
    /// # Errors
    /// [`BundleError`] listing every problem: an unreadable or malformed manifest, schema,
    /// policy file or link file; a policy without `@id` or `@purpose`; a duplicate id; a
    /// link to an unknown template; and every strict validation error.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, BundleError> {
        let dir = dir.as_ref().to_path_buf();
        let mut loader = Loader {
            dir: dir.clone(),
            problems: Vec::new(),
            hasher: Sha256::new(),
            required_attributes: HashMap::new(),
        };
        let loaded = loader.load();
        match loaded {
            Some(bundle) if loader.problems.is_empty() => Ok(bundle),
            _ => Err(BundleError {
                dir,
                problems: loader.problems,
            }),
        }
    }

    /// The bundle's name, version and content hash.
    pub fn id(&self) -> &BundleId {
        &self.id
    }

    /// The directory the bundle was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The schema the policies were validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// All policies, templates and template-linked policies, under their `@id`s.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Where each policy (by id) was written and what it is for.
    pub fn sources(&self) -> &BTreeMap<String, PolicySource> {
        &self.sources
    }

    /// Validator warnings (e.g. a policy that can never apply); they do not refuse a bundle.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The action entity (with its action groups as parents), if the schema declares it.
    pub fn action_entity(&self, action: &EntityUid) -> Option<&Entity> {
        self.actions.get(action)
    }

    /// The action groups an action is in (transitively), if the schema declares it.
    pub fn action_groups(&self, action: &EntityUid) -> Option<&HashSet<EntityUid>> {
        self.action_ancestors.get(action)
    }

    /// The policies that can apply to requests of this shape (see `slices.rs`); `None`
    /// when the schema does not allow this action between these types.
    pub(crate) fn policies_for(&self, shape: &Shape) -> Option<&PolicySet> {
        self.slices.get(shape)
    }

    /// The actions the schema allows a `principal` type to take on a `resource` type, in
    /// uid order (empty when there are none).
    pub fn actions_between(
        &self,
        principal: &EntityTypeName,
        resource: &EntityTypeName,
    ) -> Vec<EntityUid> {
        self.slices.actions_between(principal, resource)
    }

    /// The schema's entity type named `name`, matched without regard to case (`document`
    /// is `Document`), so callers can use either their own or Cedar's spelling.
    pub fn entity_type(&self, name: &str) -> Option<EntityTypeName> {
        self.schema
            .entity_types()
            .find(|t| t.to_string().eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Whether every entity of `entity_type` has `attr` (the schema requires it).
    pub(crate) fn requires_attribute(&self, entity_type: &str, attr: &str) -> bool {
        self.required_attributes
            .get(entity_type)
            .is_some_and(|attrs| attrs.contains(attr))
    }
}

/// A link as written in the links file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    #[serde(default)]
    link: Vec<LinkEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    id: String,
    template: String,
    principal: Option<String>,
    resource: Option<String>,
}

/// Collects problems while loading, so that one run reports all of them.
struct Loader {
    dir: PathBuf,
    problems: Vec<Problem>,
    hasher: Sha256,
    required_attributes: HashMap<String, HashSet<String>>,
}

impl Loader {
    fn load(&mut self) -> Option<Bundle> {
        let manifest_text = self.read(Path::new(MANIFEST_FILE))?;
        let manifest: Manifest = match toml::from_str(&manifest_text) {
            Ok(m) => m,
            Err(e) => {
                let line = e.span().map(|s| line_of(&manifest_text, s.start));
                self.problem(MANIFEST_FILE, line, None, e.message().to_string());
                return None;
            }
        };
        let schema = self.load_schema(&manifest.schema);
        let mut policies = PolicySet::new();
        let mut sources = BTreeMap::new();
        for file in self.policy_files() {
            self.load_policy_file(&file, &mut policies, &mut sources);
        }
        if let Some(links) = &manifest.links {
            self.load_links(links, &mut policies, &mut sources);
        }
        let schema = schema?;
        let warnings = self.validate(&schema, &policies, &sources);
        if !self.problems.is_empty() {
            return None;
        }
        let action_entities = match schema.action_entities() {
            Ok(entities) => entities,
            Err(e) => {
                self.problem(&manifest.schema, None, None, e.to_string());
                return None;
            }
        };
        let action_ancestors: HashMap<EntityUid, HashSet<EntityUid>> = action_entities
            .iter()
            .map(|e| {
                let uid = e.uid();
                let groups = action_entities
                    .ancestors(&uid)
                    .map(|a| a.cloned().collect())
                    .unwrap_or_default();
                (uid, groups)
            })
            .collect();
        let actions = action_entities.into_iter().map(|e| (e.uid(), e)).collect();
        let slices = Slices::build(&schema, &policies, &action_ancestors);
        let required_attributes = std::mem::take(&mut self.required_attributes);
        let hash = format!("sha256:{:x}", std::mem::take(&mut self.hasher).finalize());
        Some(Bundle {
            id: BundleId {
                name: manifest.name.as_str().into(),
                version: manifest.version.as_str().into(),
                hash: hash.into(),
            },
            dir: self.dir.clone(),
            schema,
            policies,
            sources,
            actions,
            action_ancestors,
            slices,
            required_attributes,
            warnings,
        })
    }

    /// Reads a file of the bundle and feeds it to the content hash.
    fn read(&mut self, rel: &Path) -> Option<String> {
        match std::fs::read_to_string(self.dir.join(rel)) {
            Ok(text) => {
                let name = rel.to_string_lossy();
                for part in [name.as_bytes(), text.as_bytes()] {
                    self.hasher.update((part.len() as u64).to_le_bytes());
                    self.hasher.update(part);
                }
                Some(text)
            }
            Err(e) => {
                self.problem(rel, None, None, format!("cannot read: {e}"));
                None
            }
        }
    }

    fn problem(
        &mut self,
        file: impl AsRef<Path>,
        line: Option<usize>,
        policy: Option<&str>,
        message: String,
    ) {
        self.problems.push(Problem {
            file: file.as_ref().to_path_buf(),
            line,
            policy: policy.map(str::to_string),
            message,
        });
    }

    fn load_schema(&mut self, rel: &Path) -> Option<Schema> {
        let text = self.read(rel)?;
        match Schema::from_cedarschema_str(&text) {
            Ok((schema, _warnings)) => {
                self.required_attributes = required_attributes(&text);
                Some(schema)
            }
            Err(e) => {
                let line = first_label_line(&e, &text);
                self.problem(rel, line, None, diagnostic_message(&e));
                None
            }
        }
    }

    /// The `*.cedar` files of the bundle, sorted so that loading and hashing are stable.
    fn policy_files(&mut self) -> Vec<PathBuf> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(".", None, None, format!("cannot list the bundle: {e}"));
                return Vec::new();
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| PathBuf::from(e.file_name()))
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        files.sort();
        files
    }

    fn load_policy_file(
        &mut self,
        rel: &Path,
        into: &mut PolicySet,
        sources: &mut BTreeMap<String, PolicySource>,
    ) {
        let Some(text) = self.read(rel) else { return };
        let parsed = match PolicySet::from_str(&text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                for e in errors.iter() {
                    let line = first_label_line(e, &text);
                    self.problem(rel, line, None, diagnostic_message(e));
                }
                return;
            }
        };
        for template in parsed.templates() {
            let (id, purpose) = (template.annotation("id"), template.annotation("purpose"));
            let Some((id, line)) =
                self.admit(rel, &text, &template.to_string(), id, purpose, sources)
            else {
                continue;
            };
            if let Err(e) = into.add_template(template.new_id(PolicyId::new(&id))) {
                self.problem(rel, Some(line), Some(&id), e.to_string());
            }
        }
        for policy in parsed.policies() {
            let (id, purpose) = (policy.annotation("id"), policy.annotation("purpose"));
            let Some((id, line)) =
                self.admit(rel, &text, &policy.to_string(), id, purpose, sources)
            else {
                continue;
            };
            if let Err(e) = into.add(policy.new_id(PolicyId::new(&id))) {
                self.problem(rel, Some(line), Some(&id), e.to_string());
            }
        }
    }

    /// Locates a policy (or template) in its file, checks its annotations and claims its
    /// id; returns the id and line when it may join the bundle.
    fn admit(
        &mut self,
        rel: &Path,
        text: &str,
        policy_text: &str,
        id: Option<&str>,
        purpose: Option<&str>,
        sources: &mut BTreeMap<String, PolicySource>,
    ) -> Option<(String, usize)> {
        let line = locate(text, policy_text);
        let id = self.check_annotations(rel, line, Annotations::read(id, purpose))?;
        let source = source(rel, line, purpose);
        self.claim_id(&id, source, sources, rel)
            .then_some((id, line))
    }

    /// Requires a non-empty `@id` and a one-line `@purpose`; returns the id.
    fn check_annotations(&mut self, rel: &Path, line: usize, a: Annotations) -> Option<String> {
        let id = match a.id {
            Some(id) if !id.trim().is_empty() => id,
            _ => {
                self.problem(
                    rel,
                    Some(line),
                    None,
                    "policy has no @id(\"...\") annotation".into(),
                );
                return None;
            }
        };
        match a.purpose {
            Some(p) if !p.trim().is_empty() && !p.contains('\n') => Some(id),
            _ => {
                self.problem(
                    rel,
                    Some(line),
                    Some(&id),
                    "policy needs a one-line @purpose(\"...\") annotation".into(),
                );
                None
            }
        }
    }

    /// Registers a policy id; a second policy with the same id is a problem.
    fn claim_id(
        &mut self,
        id: &str,
        source: PolicySource,
        sources: &mut BTreeMap<String, PolicySource>,
        rel: &Path,
    ) -> bool {
        if let Some(first) = sources.get(id) {
            let message = format!(
                "duplicate policy id, first used at {}:{}",
                first.file.display(),
                first.line
            );
            self.problem(rel, Some(source.line), Some(id), message);
            return false;
        }
        sources.insert(id.to_string(), source);
        true
    }

    fn load_links(
        &mut self,
        rel: &Path,
        into: &mut PolicySet,
        sources: &mut BTreeMap<String, PolicySource>,
    ) {
        let Some(text) = self.read(rel) else { return };
        let file: LinkFile = match toml::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                let line = e.span().map(|s| line_of(&text, s.start));
                self.problem(rel, line, None, e.message().to_string());
                return;
            }
        };
        for link in file.link {
            let line = locate(&text, &format!("\"{}\"", link.id));
            let mut slots = HashMap::new();
            let mut ok = true;
            for (slot, value) in [
                (SlotId::principal(), &link.principal),
                (SlotId::resource(), &link.resource),
            ] {
                if let Some(value) = value {
                    match EntityUid::from_str(value) {
                        Ok(uid) => {
                            slots.insert(slot, uid);
                        }
                        Err(e) => {
                            ok = false;
                            let message =
                                format!("bad entity uid {value:?}: {}", diagnostic_message(&e));
                            self.problem(rel, Some(line), Some(&link.id), message);
                        }
                    }
                }
            }
            let purpose = into.template_annotation(&PolicyId::new(&link.template), "purpose");
            let source = source(rel, line, purpose);
            if !ok || !self.claim_id(&link.id, source, sources, rel) {
                continue;
            }
            let linked = into.link(
                PolicyId::new(&link.template),
                PolicyId::new(&link.id),
                slots,
            );
            if let Err(e) = linked {
                sources.remove(&link.id);
                self.problem(rel, Some(line), Some(&link.id), e.to_string());
            }
        }
    }

    /// Strict validation; errors are problems, warnings are returned.
    fn validate(
        &mut self,
        schema: &Schema,
        policies: &PolicySet,
        sources: &BTreeMap<String, PolicySource>,
    ) -> Vec<Problem> {
        let result = Validator::new(schema.clone()).validate(policies, ValidationMode::Strict);
        for e in result.validation_errors() {
            let problem = located(e.policy_id(), diagnostic_message(e), sources);
            self.problems.push(problem);
        }
        result
            .validation_warnings()
            .map(|w| located(w.policy_id(), diagnostic_message(w), sources))
            .collect()
    }
}

struct Annotations {
    id: Option<String>,
    purpose: Option<String>,
}

impl Annotations {
    fn read(id: Option<&str>, purpose: Option<&str>) -> Self {
        Self {
            id: id.map(str::to_string),
            purpose: purpose.map(str::to_string),
        }
    }
}

fn source(rel: &Path, line: usize, purpose: Option<&str>) -> PolicySource {
    PolicySource {
        file: rel.to_path_buf(),
        line,
        purpose: purpose.unwrap_or_default().to_string(),
    }
}

fn located(
    policy: &PolicyId,
    message: String,
    sources: &BTreeMap<String, PolicySource>,
) -> Problem {
    let id = policy.to_string();
    let (file, line) = match sources.get(&id) {
        Some(s) => (s.file.clone(), Some(s.line)),
        None => (PathBuf::from("?"), None),
    };
    Problem {
        file,
        line,
        policy: Some(id),
        message,
    }
}

/// The line where `needle` (a policy's own source text) starts in `text`. Two identical
/// policies would share an @id, which is refused anyway.
fn locate(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |at| line_of(text, at))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn first_label_line(d: &dyn Diagnostic, text: &str) -> Option<usize> {
    let label = d.labels()?.next()?;
    Some(line_of(text, label.offset()))
}

/// The error's message, with the help text when there is one.
fn diagnostic_message(d: &dyn Diagnostic) -> String {
    match d.help() {
        Some(help) => format!("{d} (help: {help})"),
        None => d.to_string(),
    }
}

/// The attributes each entity type must have, by the type's full name (from the schema's
/// JSON form, where an attribute is required unless it says `"required": false`).
fn required_attributes(schema_text: &str) -> HashMap<String, HashSet<String>> {
    let json = cedar_policy::SchemaFragment::from_cedarschema_str(schema_text)
        .ok()
        .and_then(|(fragment, _)| fragment.to_json_value().ok());
    let Some(json) = json else {
        return HashMap::new();
    };
    let mut required = HashMap::new();
    for (namespace, fragment) in json.as_object().into_iter().flatten() {
        for (name, entity_type) in fragment["entityTypes"].as_object().into_iter().flatten() {
            let full = if namespace.is_empty() {
                name.clone()
            } else {
                format!("{namespace}::{name}")
            };
            let attrs = entity_type["shape"]["attributes"].as_object();
            let names = attrs
                .into_iter()
                .flatten()
                .filter(|(_, a)| a["required"].as_bool() != Some(false))
                .map(|(attr, _)| attr.clone())
                .collect();
            required.insert(full, names);
        }
    }
    required
}

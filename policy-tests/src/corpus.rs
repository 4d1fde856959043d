//! Reading case files.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityUid, Schema};
use gatehouse_core::TenantId;
use gatehouse_pdp::{AccessRequest, Effect, tenant_of};
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

/// All the cases of a corpus, in file order (files sorted by name).
#[derive(Debug, Default)]
pub struct Corpus {
    cases: Vec<Case>,
}

/// One test case: a request and what the decision must be.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case's name (for a matrix: the matrix name and the request).
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// The 1-based line where it starts (TOML files), if known.
    pub line: Option<usize>,
    /// The request, with the tenant resolved.
    pub request: AccessRequest,
    /// The entities the decision sees.
    pub entities: Arc<Vec<Entity>>,
    /// What must come out.
    pub expect: Expectation,
}

/// The expected decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Allow or deny.
    pub effect: Effect,
    /// The determining policies, if the case names them, and how to compare them.
    pub policies: Option<(PolicyMatch, Vec<String>)>,
    /// The expected decision errors.
    pub errors: ErrorExpectation,
}

/// How a case's listed policies are compared with the determining ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMatch {
    /// The same set (Gatehouse TOML cases).
    Exact,
    /// Every listed policy is among the determining ones (Cedar `run-tests` JSON).
    Subset,
}

/// The errors a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorExpectation {
    /// Exactly these error codes, in any order (Gatehouse TOML cases; default none).
    Codes(Vec<String>),
    /// This many errors (Cedar `run-tests` JSON's `num_errors`).
    Count(usize),
}

/// A case file that cannot be read, located as precisely as possible.
#[derive(Debug, Clone, thiserror::Error)]
pub struct CorpusError {
    file: PathBuf,
    line: Option<usize>,
    message: String,
}

impl fmt::Display for CorpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl CorpusError {
    fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl Corpus {
    /// Reads every `*.toml` and `*.json` case file under `path` (a directory, searched
    /// recursively, or one file), checking requests and entities against `schema`.
    ///
    /// # Errors
    /// The first [`CorpusError`]: an unreadable or malformed file, an unknown fixture, a
    /// request or entity that does not fit the schema.
    pub fn load(path: &Path, schema: &Schema) -> Result<Self, CorpusError> {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        files.sort();
        let mut reader = Reader {
            schema,
            fixtures: HashMap::new(),
            cases: Vec::new(),
        };
        for file in &files {
            match file.extension().and_then(|e| e.to_str()) {
                Some("toml") => reader.read_toml(file)?,
                Some("json") => reader.read_cedar_json(file)?,
                _ => {}
            }
        }
        Ok(Self {
            cases: reader.cases,
        })
    }

    /// The cases, in order.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }
}

fn collect_files(path: &Path, into: &mut Vec<PathBuf>) -> Result<(), CorpusError> {
    let io = |e: std::io::Error| CorpusError::new(path, None, format!("cannot read: {e}"));
    if path.is_file() {
        into.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_files(&path, into)?;
        } else if path.extension().is_some_and(|e| e == "toml" || e == "json") {
            into.push(path);
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    fixture: Option<PathBuf>,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    case: Vec<TomlCase>,
    #[serde(default)]
    matrix: Vec<TomlMatrix>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlCase {
    name: Spanned<String>,
    tenant: Option<String>,
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    entities: Vec<Value>,
    #[serde(flatten)]
    expect: TomlExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlMatrix {
    name: Spanned<String>,
    principals: Vec<String>,
    actions: Vec<String>,
    resources: Vec<String>,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(flatten)]
    expect: TomlExpect,
}

#[derive(Debug, Deserialize)]
struct TomlExpect {
    expect: ExpectedEffect,
    policies: Option<Vec<String>>,
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ExpectedEffect {
    Allow,
    Deny,
}

impl From<ExpectedEffect> for Effect {
    fn from(e: ExpectedEffect) -> Self {
        match e {
            ExpectedEffect::Allow => Effect::Allow,
            ExpectedEffect::Deny => Effect::Deny,
        }
    }
}

impl TomlExpect {
    fn expectation(&self) -> Expectation {
        Expectation {
            effect: self.expect.into(),
            policies: self.policies.clone().map(|p| (PolicyMatch::Exact, p)),
            errors: ErrorExpectation::Codes(self.errors.clone()),
        }
    }
}

/// A case in the Cedar CLI's `run-tests` format.
#[derive(Debug, Deserialize)]
struct CedarCase {
    name: Option<String>,
    request: CedarRequest,
    entities: Value,
    decision: ExpectedEffect,
    reason: Vec<String>,
    num_errors: usize,
}

#[derive(Debug, Deserialize)]
struct CedarRequest {
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Value,
}

/// The request fields of one case, before the tenant is resolved.
struct Draft<'a> {
    name: String,
    line: Option<usize>,
    tenant: Option<&'a str>,
    principal: &'a str,
    action: &'a str,
    resource: &'a str,
    context: Map<String, Value>,
    entities: Arc<Vec<Entity>>,
    expect: Expectation,
}

struct Reader<'s> {
    schema: &'s Schema,
    fixtures: HashMap<PathBuf, Arc<Vec<Entity>>>,
    cases: Vec<Case>,
}

impl Reader<'_> {
    fn read_toml(&mut self, file: &Path) -> Result<(), CorpusError> {
        let text = read(file)?;
        let parsed: TomlFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            CorpusError::new(file, line, e.message())
        })?;
        let fixture = match &parsed.fixture {
            Some(rel) => self.fixture(file, rel)?,
            None => Arc::new(Vec::new()),
        };
        for case in &parsed.case {
            let line = Some(line_of(&text, case.name.span().start));
            let entities = self.with_extra(file, line, &fixture, &case.entities)?;
            self.add(
                file,
                Draft {
                    name: case.name.get_ref().clone(),
                    line,
                    tenant: case.tenant.as_deref(),
                    principal: &case.principal,
                    action: &case.action,
                    resource: &case.resource,
                    context: merged(&parsed.context, &case.context),
                    entities,
                    expect: case.expect.expectation(),
                },
            )?;
        }
        for matrix in &parsed.matrix {
            let line = Some(line_of(&text, matrix.name.span().start));
            for principal in &matrix.principals {
                for action in &matrix.actions {
                    for resource in &matrix.resources {
                        self.add(
                            file,
                            Draft {
                                name: format!(
                                    "{}: {principal} {action} {resource}",
                                    matrix.name.get_ref()
                                ),
                                line,
                                tenant: None,
                                principal,
                                action,
                                resource,
                                context: merged(&parsed.context, &matrix.context),
                                entities: fixture.clone(),
                                expect: matrix.expect.expectation(),
                            },
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    fn read_cedar_json(&mut self, file: &Path) -> Result<(), CorpusError> {
        let text = read(file)?;
        let cases: Vec<CedarCase> = serde_json::from_str(&text).map_err(|e| {
            CorpusError::new(
                file,
                Some(e.line()),
                format!("not a Cedar run-tests file: {e}"),
            )
        })?;
        for (index, case) in cases.into_iter().enumerate() {
            let name = case.name.unwrap_or_else(|| format!("test #{}", index + 1));
            let entities = Arc::new(self.entities(file, None, case.entities)?);
            let context = match case.request.context {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                other => {
                    return Err(CorpusError::new(
                        file,
                        None,
                        format!("{name}: context must be an object, not {other}"),
                    ));
                }
            };
            self.add(
                file,
                Draft {
                    name,
                    line: None,
                    tenant: None,
                    principal: &case.request.principal,
                    action: &case.request.action,
                    resource: &case.request.resource,
                    context,
                    entities,
                    expect: Expectation {
                        effect: case.decision.into(),
                        policies: Some((PolicyMatch::Subset, case.reason)),
                        errors: ErrorExpectation::Count(case.num_errors),
                    },
                },
            )?;
        }
        Ok(())
    }

    fn add(&mut self, file: &Path, draft: Draft<'_>) -> Result<(), CorpusError> {
        let fail = |message: String| {
            CorpusError::new(file, draft.line, format!("{}: {message}", draft.name))
        };
        let uid: EntityUid = draft.principal.parse().map_err(|_| {
            fail(format!(
                "principal: not a Cedar entity uid: {}",
                draft.principal
            ))
        })?;
        let tenant = match draft.tenant {
            Some(t) => TenantId::parse(t).map_err(|e| fail(e.to_string()))?,
            None => {
                let principal = draft.entities.iter().find(|e| e.uid() == uid);
                principal.and_then(tenant_of).ok_or_else(|| {
                    fail(format!(
                        "principal {} is not in the entities: the case must name its `tenant`",
                        draft.principal
                    ))
                })?
            }
        };
        let request = AccessRequest::parse(tenant, draft.principal, draft.action, draft.resource)
            .map_err(|e| fail(e.to_string()))?
            .with_context(draft.context);
        self.cases.push(Case {
            name: draft.name,
            file: file.to_path_buf(),
            line: draft.line,
            request,
            entities: draft.entities,
            expect: draft.expect,
        });
        Ok(())
    }

    /// A fixture file's entities, read once per corpus.
    fn fixture(&mut self, case_file: &Path, rel: &Path) -> Result<Arc<Vec<Entity>>, CorpusError> {
        let path = case_file.parent().unwrap_or(Path::new(".")).join(rel);
        if let Some(found) = self.fixtures.get(&path) {
            return Ok(found.clone());
        }
        let text = read(&path)?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| CorpusError::new(&path, Some(e.line()), e.to_string()))?;
        let entities = Arc::new(self.entities(&path, None, json)?);
        self.fixtures.insert(path, entities.clone());
        Ok(entities)
    }

    /// The fixture with a case's own entities added (replacing any with the same uid).
    fn with_extra(
        &self,
        file: &Path,
        line: Option<usize>,
        fixture: &Arc<Vec<Entity>>,
        extra: &[Value],
    ) -> Result<Arc<Vec<Entity>>, CorpusError> {
        if extra.is_empty() {
            return Ok(fixture.clone());
        }
        let extra = self.entities(file, line, Value::Array(extra.to_vec()))?;
        let mut all: Vec<Entity> = fixture
            .iter()
            .filter(|e| !extra.iter().any(|x| x.uid() == e.uid()))
            .cloned()
            .collect();
        all.extend(extra);
        Ok(Arc::new(all))
    }

    /// Cedar entities JSON, checked against the schema; action entities are dropped
    /// (the bundle's schema supplies them).
    fn entities(
        &self,
        file: &Path,
        line: Option<usize>,
        json: Value,
    ) -> Result<Vec<Entity>, CorpusError> {
        let entities = Entities::from_json_value(json, Some(self.schema))
            .map_err(|e| CorpusError::new(file, line, format!("entities: {}", with_causes(&e))))?;
        Ok(entities
            .into_iter()
            .filter(|e| e.uid().type_name().basename() != "Action")
            .collect())
    }
}

/// An error and its chain of causes, on one line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn read(path: &Path) -> Result<String, CorpusError> {
    std::fs::read_to_string(path)
        .map_err(|e| CorpusError::new(path, None, format!("cannot read: {e}")))
}

/// File-level context defaults with the case's own values on top.
fn merged(defaults: &Map<String, Value>, own: &Map<String, Value>) -> Map<String, Value> {
    let mut context = defaults.clone();
    context.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    context
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

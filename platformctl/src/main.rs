//! `platformctl`: Gatehouse's control CLI, a thin shell over the library crates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityUid};
use clap::{Parser, Subcommand};
use gatehouse_core::TenantId;
use gatehouse_pdp::{AccessRequest, Bundle, BundleError, CurrentBundle, Pdp, tenant_of};
use gatehouse_policy_tests::{Corpus, run};
use serde_json::json;

/// Exit codes, stable for scripts and CI.
mod exit {
    /// Everything passed.
    pub const OK: u8 = 0;
    /// The bundle is valid but at least one policy test failed.
    pub const TESTS_FAILED: u8 = 1;
    /// Bad usage, or a test file that cannot be read (clap also exits with 2).
    pub const USAGE: u8 = 2;
    /// The policy bundle is invalid.
    pub const INVALID_BUNDLE: u8 = 3;
    /// The database cannot be reached or refused the query.
    pub const DATABASE: u8 = 4;
}

mod audit;
mod search;

#[derive(Parser)]
#[command(name = "platformctl", version, about = "Gatehouse control CLI")]
#[command(
    after_help = "Exit codes: 0 success, 1 failing policy tests, 2 usage or unreadable test files, 3 invalid policy bundle."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Policies as code: validate and test policy bundles.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log: query decisions, verify the hash chains.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The search indexes: rebuild them from the database.
    #[command(subcommand)]
    Search(search::SearchCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Load a bundle, validate every policy strictly against the schema, print its id.
    Validate {
        #[command(flatten)]
        bundle: BundleArg,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decide one request against a bundle, with entities from a Cedar entities JSON file.
    ///
    /// Exits 0 on allow and 1 on deny (like `cedar authorize`), 3 on an invalid bundle.
    Decide {
        #[command(flatten)]
        bundle: BundleArg,
        #[command(flatten)]
        question: Question,
        /// Print the whole decision as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the policy test corpus (Gatehouse TOML and Cedar `run-tests` JSON files).
    Test {
        #[command(flatten)]
        bundle: BundleArg,
        /// A case file, or a directory searched for *.toml and *.json case files.
        #[arg(long, default_value = "policy-tests/cases")]
        cases: PathBuf,
        /// Only run the cases whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// List every case, not only the failures.
        #[arg(long, short)]
        verbose: bool,
        /// Print the report as JSON (every case with its decision).
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct BundleArg {
    /// The bundle directory (the one holding bundle.toml).
    #[arg(long, default_value = "policies")]
    bundle: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Policy(PolicyCommand::Validate { bundle, json }) => validate(&bundle.bundle, json),
        Command::Policy(PolicyCommand::Test {
            bundle,
            cases,
            filter,
            verbose,
            json,
        }) => test(&bundle.bundle, &cases, filter.as_deref(), verbose, json),
        Command::Policy(PolicyCommand::Decide {
            bundle,
            question,
            json,
        }) => decide(&bundle.bundle, &question, json),
        Command::Audit(command) => audit::run(command),
        Command::Search(command) => search::run(command),
    };
    ExitCode::from(code)
}

fn validate(dir: &Path, as_json: bool) -> u8 {
    let bundle = match Bundle::load(dir) {
        Ok(bundle) => bundle,
        Err(e) => return invalid_bundle(&e, as_json),
    };
    let id = bundle.id();
    let warnings: Vec<String> = bundle.warnings().iter().map(ToString::to_string).collect();
    if as_json {
        let out = json!({
            "valid": true,
            "name": &*id.name,
            "version": &*id.version,
            "hash": &*id.hash,
            "policies": bundle.sources().len(),
            "templates": bundle.policies().templates().count(),
            "warnings": warnings,
        });
        println!("{out}");
    } else {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        println!("valid: {id}, {} policies", bundle.sources().len());
    }
    exit::OK
}

fn test(dir: &Path, cases: &Path, filter: Option<&str>, verbose: bool, as_json: bool) -> u8 {
    let bundle = match Bundle::load(dir) {
        Ok(bundle) => bundle,
        Err(e) => return invalid_bundle(&e, as_json),
    };
    let corpus = match Corpus::load(cases, bundle.schema()) {
        Ok(corpus) => corpus,
        Err(e) => {
            if as_json {
                println!(
                    "{}",
                    json!({ "error": "unreadable_cases", "message": e.to_string() })
                );
            } else {
                eprintln!("error: {e}");
            }
            return exit::USAGE;
        }
    };
    let pdp = Pdp::new(Arc::new(CurrentBundle::new(bundle)));
    let report = run(&pdp, &corpus, filter);
    if as_json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render(verbose));
    }
    if report.failed() > 0 {
        exit::TESTS_FAILED
    } else {
        exit::OK
    }
}

#[derive(clap::Args)]
struct Question {
    /// A Cedar entities JSON file (e.g. policy-tests/fixtures/three-tenants.json).
    #[arg(long)]
    entities: PathBuf,
    /// The tenant the request is made in (default: the principal's).
    #[arg(long)]
    tenant: Option<String>,
    /// The principal, e.g. 'User::"acme-vera"'.
    #[arg(long)]
    principal: String,
    /// The action, e.g. document:read.
    #[arg(long)]
    action: String,
    /// The resource, e.g. 'Document::"acme-plan"'.
    #[arg(long)]
    resource: String,
    /// The context as a JSON object, e.g. '{"mfa": true}'.
    #[arg(long, default_value = "{}")]
    context: String,
}

fn decide(dir: &Path, q: &Question, as_json: bool) -> u8 {
    let bundle = match Bundle::load(dir) {
        Ok(bundle) => bundle,
        Err(e) => return invalid_bundle(&e, as_json),
    };
    let request = match build_request(&bundle, q) {
        Ok(request) => request,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };
    let (request, entities) = request;
    let pdp = Pdp::new(Arc::new(CurrentBundle::new(bundle)));
    let decision = pdp.decide_with_entities(&request, entities);
    if as_json {
        println!("{}", json!(decision));
    } else {
        let word = if decision.is_allowed() {
            "ALLOW"
        } else {
            "DENY"
        };
        println!("{word} by [{}]", decision.determining_policies.join(", "));
        for e in &decision.errors {
            println!("error [{}]: {e}", e.code());
        }
    }
    if decision.is_allowed() {
        exit::OK
    } else {
        exit::TESTS_FAILED
    }
}

fn build_request(bundle: &Bundle, q: &Question) -> Result<(AccessRequest, Vec<Entity>), String> {
    let text = std::fs::read_to_string(&q.entities)
        .map_err(|e| format!("{}: {e}", q.entities.display()))?;
    let entities = Entities::from_json_str(&text, Some(bundle.schema()))
        .map_err(|e| format!("{}: {e}", q.entities.display()))?;
    let principal: EntityUid = q
        .principal
        .parse()
        .map_err(|e| format!("--principal: {e}"))?;
    let tenant = match &q.tenant {
        Some(t) => TenantId::parse(t).map_err(|e| e.to_string())?,
        None => entities
            .get(&principal)
            .and_then(tenant_of)
            .ok_or("the principal is not in the entities: pass --tenant")?,
    };
    let context = match serde_json::from_str(&q.context) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err("--context must be a JSON object".into()),
    };
    let request = AccessRequest::parse(tenant, &q.principal, &q.action, &q.resource)
        .map_err(|e| e.to_string())?
        .with_context(context);
    Ok((request, entities.into_iter().collect()))
}

fn invalid_bundle(e: &BundleError, as_json: bool) -> u8 {
    if as_json {
        let problems: Vec<_> = e
            .problems()
            .iter()
            .map(|p| json!({ "file": p.file, "line": p.line, "policy": p.policy, "message": p.message }))
            .collect();
        println!(
            "{}",
            json!({ "valid": false, "error": "invalid_bundle", "problems": problems })
        );
    } else {
        eprintln!("error: {e}");
    }
    exit::INVALID_BUNDLE
}

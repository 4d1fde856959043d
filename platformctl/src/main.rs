//! `platformctl`: Gatehouse's control CLI, a thin shell over the library crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gatehouse_pdp::{Bundle, BundleError, CurrentBundle, Pdp};
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
}

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
    };
    ExitCode::from(code)
}

fn validate(dir: &PathBuf, as_json: bool) -> u8 {
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

fn test(dir: &PathBuf, cases: &PathBuf, filter: Option<&str>, verbose: bool, as_json: bool) -> u8 {
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

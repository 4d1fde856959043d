//! Policies as code: the policy test corpus and its runner.
//!
//! A corpus is a directory of case files, run against a policy bundle through Gatehouse's
//! own decision point ([`gatehouse_pdp::Pdp`]), so a case checks exactly what the gateway
//! would decide: fail-closed errors, tenant checks and agent delegation included.
//!
//! Two file formats are read:
//!
//! - **Gatehouse TOML** (`*.toml`), written for people. A file names a fixture (a Cedar
//!   entities JSON file) and lists cases, each one request and its expected decision and,
//!   optionally, the exact set of determining policies. A `[[matrix]]` expands to one case
//!   per principal × action × resource:
//!
//!   ```toml
//!   fixture = "../fixtures/three-tenants.json"
//!   context = { now = "2026-06-01T00:00:00Z" }    # defaults for every case's context
//!
//!   [[case]]
//!   name = "a viewer reads a document of their tenant"
//!   principal = 'User::"acme-vera"'
//!   action = "document:read"
//!   resource = 'Document::"acme-plan"'
//!   context = { mfa = false }                      # optional
//!   expect = "allow"
//!   policies = ["role-viewer"]                     # optional, exact
//!   ```
//!
//! - **Cedar CLI `run-tests` JSON** (`*.json`): an array of
//!   `{ name, request: { principal, action, resource, context }, entities, decision,
//!   reason, num_errors }`, with the Cedar CLI's meaning (the listed reasons must be among
//!   the determining policies; the error count must match), so existing Cedar suites run
//!   unchanged.

mod corpus;
mod run;

pub use corpus::{Case, Corpus, CorpusError, ErrorExpectation, Expectation, PolicyMatch};
pub use run::{Outcome, Report, run};

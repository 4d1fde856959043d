//! Running cases and reporting.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use gatehouse_pdp::{Decision, Effect, Pdp};
use serde_json::{Value, json};

use crate::corpus::{Case, Corpus, ErrorExpectation, PolicyMatch};

/// One case and what happened.
#[derive(Debug)]
pub struct Outcome<'c> {
    /// The case.
    pub case: &'c Case,
    /// The decision the decision point made.
    pub decision: Decision,
    /// How the decision differs from the expectation; empty when the case passed.
    pub mismatches: Vec<String>,
}

impl Outcome<'_> {
    /// True when the decision met every expectation.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The outcomes of a run, in corpus order.
#[derive(Debug)]
pub struct Report<'c> {
    /// Every case run.
    pub outcomes: Vec<Outcome<'c>>,
}

/// Runs every case of `corpus` whose name contains `filter` (all when `None`).
pub fn run<'c>(pdp: &Pdp, corpus: &'c Corpus, filter: Option<&str>) -> Report<'c> {
    let outcomes = corpus
        .cases()
        .iter()
        .filter(|case| filter.is_none_or(|f| case.name.contains(f)))
        .map(|case| {
            let decision = pdp.decide_with_entities(&case.request, case.entities.to_vec());
            let mismatches = compare(case, &decision);
            Outcome {
                case,
                decision,
                mismatches,
            }
        })
        .collect();
    Report { outcomes }
}

fn compare(case: &Case, decision: &Decision) -> Vec<String> {
    let mut mismatches = Vec::new();
    let expect = &case.expect;
    if decision.effect != expect.effect {
        mismatches.push(format!(
            "expected {}, got {}",
            effect_word(expect.effect),
            effect_word(decision.effect)
        ));
    }
    if let Some((how, listed)) = &expect.policies {
        let actual: BTreeSet<&str> = decision
            .determining_policies
            .iter()
            .map(String::as_str)
            .collect();
        let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        let missing: Vec<&str> = listed.difference(&actual).copied().collect();
        let extra: Vec<&str> = actual.difference(&listed).copied().collect();
        if !missing.is_empty() {
            mismatches.push(format!(
                "missing determining policies: {}",
                missing.join(", ")
            ));
        }
        if *how == PolicyMatch::Exact && !extra.is_empty() {
            mismatches.push(format!(
                "unexpected determining policies: {}",
                extra.join(", ")
            ));
        }
    }
    let codes: BTreeSet<&str> = decision.errors.iter().map(|e| e.code()).collect();
    match &expect.errors {
        ErrorExpectation::Codes(expected) => {
            let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
            if expected != codes {
                mismatches.push(format!(
                    "expected errors [{}], got [{}]",
                    join(&expected),
                    join(&codes)
                ));
            }
        }
        ErrorExpectation::Count(n) if *n != decision.errors.len() => {
            mismatches.push(format!(
                "expected {n} error(s), got {}",
                decision.errors.len()
            ));
        }
        ErrorExpectation::Count(_) => {}
    }
    mismatches
}

fn join(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(", ")
}

fn effect_word(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

impl Report<'_> {
    /// The number of cases that passed.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed()).count()
    }

    /// The number of cases that failed.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    /// A report for people: every failure in full (or every case with `verbose`), then
    /// the closing line `N passed, N failed`.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        for outcome in &self.outcomes {
            if outcome.passed() && !verbose {
                continue;
            }
            let case = outcome.case;
            let verdict = if outcome.passed() { "ok  " } else { "FAIL" };
            let place = match case.line {
                Some(line) => format!("{}:{line}", case.file.display()),
                None => case.file.display().to_string(),
            };
            let _ = writeln!(out, "{verdict} {} ({place})", case.name);
            if outcome.passed() {
                continue;
            }
            let r = &case.request;
            let _ = writeln!(
                out,
                "     request:  {} {} {} in tenant {}",
                r.principal, r.action, r.resource, r.tenant
            );
            if !r.context.is_empty() {
                let _ = writeln!(out, "     context:  {}", Value::Object(r.context.clone()));
            }
            for mismatch in &outcome.mismatches {
                let _ = writeln!(out, "     {mismatch}");
            }
            let d = &outcome.decision;
            let _ = writeln!(
                out,
                "     decided:  {} by [{}]",
                effect_word(d.effect),
                d.determining_policies.join(", ")
            );
            if let Some(delegation) = &d.delegation {
                for leg in [&delegation.agent, &delegation.user] {
                    let _ = writeln!(
                        out,
                        "       {}: {} by [{}]",
                        leg.principal,
                        effect_word(leg.effect),
                        leg.determining_policies.join(", ")
                    );
                }
            }
            for e in &d.errors {
                let _ = writeln!(out, "     error:    [{}] {e}", e.code());
            }
        }
        let _ = writeln!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }

    /// The report as JSON: totals and every case with its decision.
    pub fn to_json(&self) -> Value {
        let cases: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                json!({
                    "name": o.case.name,
                    "file": o.case.file,
                    "line": o.case.line,
                    "passed": o.passed(),
                    "mismatches": o.mismatches,
                    "request": {
                        "tenant": o.case.request.tenant,
                        "principal": o.case.request.principal.to_string(),
                        "action": o.case.request.action.to_string(),
                        "resource": o.case.request.resource.to_string(),
                    },
                    "decision": o.decision,
                })
            })
            .collect();
        json!({ "passed": self.passed(), "failed": self.failed(), "cases": cases })
    }
}

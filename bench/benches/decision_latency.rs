//! Per-decision latency percentiles and throughput of the decision point on the issue's
//! dataset, with shares as entity data (Gatehouse) and, side by side, as 10,000
//! template-linked policies.
//!
//! Run: `cargo bench -p gatehouse-bench --bench decision_latency`
//! Each decision is timed on its own, entity-slice loading from the store included.
//! Flags: `--quick` (a tenth of the decisions), `--entity-data-only` (skip the baseline).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_bench::{Dataset, Shape, Sharing};
use gatehouse_pdp::{Bundle, CurrentBundle, Effect, MemoryStore, Pdp};

// The allocator the `gatehouse` server ships with: Cedar's evaluator allocates heavily.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Run {
    label: &'static str,
    policies: usize,
    /// Per decision: how long it took and whether an agent made it (two Cedar decisions).
    samples: Vec<(Duration, bool)>,
    allowed: usize,
    two_thread_rate: f64,
}

fn main() {
    let policies_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let base = Bundle::load(&policies_dir).expect("the base bundle is valid");
    let schema = base.schema().clone();
    let quick = std::env::args().any(|a| a == "--quick");
    let iterations = if quick { 20_000 } else { 200_000 };

    let started = Instant::now();
    let data = Dataset::generate(Shape::ISSUE, Sharing::EntityData, &schema, 7);
    println!(
        "dataset: {} entities, folder depth {}, {} shares, generated in {:.1?}",
        data.entities.len(),
        data.depth,
        data.shares.len(),
        started.elapsed()
    );
    let slice_run = measure_slices(&base, &data, iterations / 10);
    let entity_run = measure("shares as entity data (Gatehouse)", base, &data, iterations);

    if std::env::args().any(|a| a == "--entity-data-only") {
        header();
        report(&entity_run);
        report(&slice_run);
        return;
    }
    let links = Dataset::generate(Shape::ISSUE, Sharing::TemplateLinks, &schema, 7);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let linked_dir = links
        .write_bundle(&policies_dir, tmp.path())
        .expect("bundle written");
    let linked = Bundle::load(&linked_dir).expect("the linked bundle is valid");
    let link_run = measure(
        "shares as 10,000 template links",
        linked,
        &links,
        iterations / 100,
    );

    header();
    for run in [&entity_run, &slice_run, &link_run] {
        report(run);
    }
}

fn header() {
    println!();
    println!(
        "| model | policies | decisions | allowed | p50 | p90 | p99 | p99.9 | decisions/s (1 thread) | decisions/s (2 threads) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

/// The same user requests, with the entity slice assembled per request (the principal,
/// the resource, the tenant and their ancestors, cloned out of the store and closed
/// transitively): what a decision costs when the entities arrive from a remote store.
fn measure_slices(bundle: &Bundle, data: &Dataset, iterations: usize) -> Run {
    let schema = bundle.schema().clone();
    let store = MemoryStore::new(&data.entities, &schema).expect("a valid dataset");
    let pdp = Pdp::new(Arc::new(CurrentBundle::new(
        Bundle::load(bundle.dir()).expect("valid"),
    )));
    let users: Vec<_> = data
        .requests
        .iter()
        .filter(|r| r.principal.type_name().basename() == "User")
        .collect();
    let decide = |r: &gatehouse_pdp::AccessRequest| {
        let tenant = gatehouse_pdp::uid::tenant(&r.tenant);
        let slice = store.slice(
            &r.tenant,
            &[r.principal.clone(), r.resource.clone(), tenant],
        );
        pdp.decide_with_entities(r, slice)
    };
    let mut samples = Vec::with_capacity(iterations);
    let mut allowed = 0;
    for r in users.iter().cycle().take(iterations) {
        let t = Instant::now();
        let d = decide(r);
        samples.push((t.elapsed(), false));
        allowed += usize::from(d.effect == Effect::Allow);
    }
    let per_thread = iterations / 2;
    let started = Instant::now();
    std::thread::scope(|s| {
        for offset in [0, users.len() / 2] {
            let (users, decide) = (&users, &decide);
            s.spawn(move || {
                for r in users.iter().cycle().skip(offset).take(per_thread) {
                    std::hint::black_box(decide(r));
                }
            });
        }
    });
    Run {
        label: "user requests, entity slice built per request",
        policies: bundle.policies().policies().count(),
        samples,
        allowed,
        two_thread_rate: (per_thread * 2) as f64 / started.elapsed().as_secs_f64(),
    }
}

fn measure(label: &'static str, bundle: Bundle, data: &Dataset, iterations: usize) -> Run {
    let policies = bundle.policies().policies().count();
    let pdp = Arc::new(Pdp::new(Arc::new(CurrentBundle::new(bundle))));
    let schema = pdp.bundle().snapshot().schema().clone();
    let store = Arc::new(MemoryStore::new(&data.entities, &schema).expect("a valid dataset"));
    let requests = &data.requests;
    // Warm up: one pass over the requests (caches, allocator, page faults).
    for r in requests.iter().take(iterations) {
        pollster::block_on(pdp.decide(&*store, r));
    }
    let mut samples = Vec::with_capacity(iterations);
    let mut allowed = 0;
    for r in requests.iter().cycle().take(iterations) {
        let t = Instant::now();
        let d = pollster::block_on(pdp.decide(&*store, r));
        samples.push((t.elapsed(), d.delegation.is_some()));
        allowed += usize::from(d.effect == Effect::Allow);
        assert!(
            d.errors.is_empty(),
            "generated requests decide without errors: {:?}",
            d.errors
        );
    }
    let two_thread_rate = parallel_rate(&pdp, &store, data, iterations);
    Run {
        label,
        policies,
        samples,
        allowed,
        two_thread_rate,
    }
}

/// Decisions per second with two threads deciding at once (this machine has two cores).
fn parallel_rate(
    pdp: &Arc<Pdp>,
    store: &Arc<MemoryStore>,
    data: &Dataset,
    iterations: usize,
) -> f64 {
    let per_thread = iterations / 2;
    let started = Instant::now();
    std::thread::scope(|s| {
        for offset in [0, data.requests.len() / 2] {
            s.spawn(move || {
                for r in data.requests.iter().cycle().skip(offset).take(per_thread) {
                    std::hint::black_box(pollster::block_on(pdp.decide(&**store, r)));
                }
            });
        }
    });
    (per_thread * 2) as f64 / started.elapsed().as_secs_f64()
}

fn report(run: &Run) {
    let all: Vec<Duration> = run.samples.iter().map(|(d, _)| *d).collect();
    let users: Vec<Duration> = run
        .samples
        .iter()
        .filter(|(_, agent)| !agent)
        .map(|(d, _)| *d)
        .collect();
    let agents: Vec<Duration> = run
        .samples
        .iter()
        .filter(|(_, agent)| *agent)
        .map(|(d, _)| *d)
        .collect();
    let allowed = format!("{:.0}%", 100.0 * run.allowed as f64 / all.len() as f64);
    row(
        run.label,
        run.policies,
        &all,
        &allowed,
        Some(run.two_thread_rate),
    );
    if !agents.is_empty() {
        row("  of which: user requests", run.policies, &users, "", None);
        row(
            "  of which: agent requests (agent and user decided)",
            run.policies,
            &agents,
            "",
            None,
        );
    }
}

fn row(
    label: &str,
    policies: usize,
    samples: &[Duration],
    allowed: &str,
    two_thread_rate: Option<f64>,
) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    let total: Duration = sorted.iter().sum();
    let rate = sorted.len() as f64 / total.as_secs_f64();
    let parallel = two_thread_rate.map_or(String::new(), |r| format!("{r:.0}"));
    println!(
        "| {label} | {policies} | {} | {allowed} | {:.1?} | {:.1?} | {:.1?} | {:.1?} | {rate:.0} | {parallel} |",
        sorted.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
    );
}

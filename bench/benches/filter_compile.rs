//! How long the decision point takes to compile the read policy into a list filter
//! (Cedar's partial evaluation with the resource unknown, then the residuals into a
//! `Filter`), for the principals of the issue's dataset: users with roles, groups and
//! grants, and agents (two compilations each). Target: under 1 ms at p99.
//!
//! Run: `cargo bench -p gatehouse-bench --bench filter_compile` (`--quick`: fewer runs).
//! The principal's entities come from the in-memory store, as in production after the
//! entity cache is warm.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_bench::{Dataset, Shape, Sharing, percentile};
use gatehouse_pdp::{Bundle, CurrentBundle, MemoryStore, Pdp, ResourceFilter, ResourceQuery};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let policies_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let bundle = Bundle::load(&policies_dir).expect("the base bundle is valid");
    let schema = bundle.schema().clone();
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 20_000 });
    let generated = Instant::now();
    let data = Dataset::generate(Shape::ISSUE, Sharing::EntityData, &schema, 7);
    eprintln!("dataset generated in {:.1?}", generated.elapsed());
    let store = MemoryStore::new(&data.entities, &schema).expect("the dataset fits the schema");
    let pdp = Pdp::new(Arc::new(CurrentBundle::new(bundle)));
    let action = r#"Action::"document:read""#.parse().expect("a uid");
    let document = "Document".parse().expect("a type name");
    let queries: Vec<ResourceQuery> = data
        .requests
        .iter()
        .map(|r| ResourceQuery {
            tenant: r.tenant.clone(),
            principal: r.principal.clone(),
            action: Clone::clone(&action),
            resource_type: Clone::clone(&document),
            acting_for: r.acting_for.clone(),
            context: r.context.clone(),
        })
        .collect();
    let mut times = Vec::with_capacity(runs);
    let (mut exact, mut untranslatable, mut terms) = (0, 0, 0);
    for i in 0..runs {
        let query = &queries[i % queries.len()];
        let started = Instant::now();
        let filter = pollster::block_on(pdp.resource_filter(&store, query)).expect("in memory");
        times.push(started.elapsed());
        match filter {
            ResourceFilter::Exact(f) => {
                exact += 1;
                terms += f.to_string().matches("resource").count();
            }
            ResourceFilter::Untranslatable { .. } => untranslatable += 1,
        }
    }
    times.sort();
    let at = |p: f64| percentile(&times, p);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "filter compilation, {} principals of the issue's dataset, {runs} runs",
        queries.len()
    );
    println!(
        "p50 {:.0} µs   p99 {:.0} µs   max {:.0} µs   exact {exact}   untranslatable {untranslatable}   mean terms {:.1}",
        us(at(0.5)),
        us(at(0.99)),
        us(*times.last().unwrap_or(&Duration::ZERO)),
        terms as f64 / exact.max(1) as f64
    );
}

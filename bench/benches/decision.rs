//! Criterion benchmarks of one decision on the issue's dataset (entity-slice loading
//! included), with shares as entity data and, as the baseline, as template links.
//!
//! Run: `cargo bench -p gatehouse-bench --bench decision`

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_bench::{Dataset, Shape, Sharing};
use gatehouse_pdp::{Bundle, CurrentBundle, MemoryStore, Pdp};

// The allocator the `gatehouse` server ships with: Cedar's evaluator allocates heavily.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn decisions(c: &mut Criterion) {
    let policies_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let base = Bundle::load(&policies_dir).expect("the base bundle is valid");
    let schema = base.schema().clone();
    let mut group = c.benchmark_group("decision");

    let data = Dataset::generate(Shape::ISSUE, Sharing::EntityData, &schema, 7);
    bench_mix(
        &mut group,
        "mixed requests, shares as entity data",
        base,
        &data,
    );

    let links = Dataset::generate(Shape::ISSUE, Sharing::TemplateLinks, &schema, 7);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let linked = Bundle::load(
        links
            .write_bundle(&policies_dir, tmp.path())
            .expect("written"),
    )
    .expect("valid");
    bench_mix(
        &mut group,
        "mixed requests, shares as 10,000 template links",
        linked,
        &links,
    );
    group.finish();
}

fn bench_mix(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    bundle: Bundle,
    data: &Dataset,
) {
    let store = MemoryStore::new(&data.entities, bundle.schema()).expect("a valid dataset");
    let pdp = Pdp::new(Arc::new(CurrentBundle::new(bundle)));
    let mut next = data.requests.iter().cycle();
    group.bench_function(name, |b| {
        b.iter(|| {
            let request = next.next().expect("cycle never ends");
            pollster::block_on(pdp.decide(&store, request))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = decisions
}
criterion_main!(benches);

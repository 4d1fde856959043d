//! Search latency on the embedded engine, for one tenant with many documents (the data
//! plane's target: p99 under 100 ms with 1,000,000 documents).
//!
//!   search [--documents N] [--dir DIR] [--queries N] [--json]
//!
//! Builds a synthetic tenant once (words drawn with a Zipf-like skew, 1,000 folders three
//! deep, 200 owners, 50 tags, five content kinds, three years of dates) in DIR (default
//! `target/search-bench-<N>`) and reuses it on later runs; then times each kind of query
//! through the same `SearchIndex` calls the search adapter makes (the last kinds with a
//! reader's compiled read policy applied inside the engine) (including the move to a
//! blocking thread), with facets counted, and prints p50/p99/max per kind.
//! Exit code 0 when it ran, 2 on bad arguments, 1 when the index could not be built.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use gatehouse_adapter_search::{EmbeddedIndex, IndexedDocument, SearchIndex, SearchQuery, Sort};
use gatehouse_adapter_sql::rows::{RowFilter, Subtree};
use gatehouse_bench::percentile;
use gatehouse_core::TenantId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const USAGE: &str = "usage: search [--documents N] [--dir DIR] [--queries N] [--json]";
const VOCABULARY: usize = 50_000;
const BATCH: usize = 50_000;

struct Args {
    documents: usize,
    dir: std::path::PathBuf,
    queries: usize,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut documents = 1_000_000;
    let mut dir = None;
    let mut queries = 200;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--documents" => documents = value()?.parse().map_err(|_| "--documents: a number")?,
            "--dir" => dir = Some(value()?.into()),
            "--queries" => queries = value()?.parse().map_err(|_| "--queries: a number")?,
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let dir = dir.unwrap_or_else(|| format!("target/search-bench-{documents}").into());
    Ok(Args {
        documents,
        dir,
        queries,
        json,
    })
}

/// Pronounceable words, the same for every run.
fn vocabulary() -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "fe", "gu", "hi", "jo",
        "be", "ce", "ry", "wu", "xo",
    ];
    (0..VOCABULARY)
        .map(|mut n| {
            let mut word = String::new();
            for _ in 0..4 {
                word.push_str(SYLLABLES[n % SYLLABLES.len()]);
                n /= SYLLABLES.len();
            }
            word
        })
        .collect()
}

/// A word's rank, skewed so that few words are common and most are rare.
fn zipf_rank(rng: &mut SmallRng) -> usize {
    let u: f64 = rng.random();
    ((VOCABULARY as f64).powf(u) as usize)
        .saturating_sub(1)
        .min(VOCABULARY - 1)
}

fn day(offset: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + offset * 86_400, 0)
        .unwrap()
}

fn document(n: usize, words: &[String], rng: &mut SmallRng) -> IndexedDocument {
    let phrase = |rng: &mut SmallRng, count: usize| {
        (0..count)
            .map(|_| words[zipf_rank(rng)].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (a, b, c) = (
        rng.random_range(0..10),
        rng.random_range(0..10),
        rng.random_range(0..10),
    );
    let created = rng.random_range(0..1095);
    let length = rng.random_range(20..120);
    IndexedDocument {
        id: format!("doc-{n:07}"),
        name: phrase(rng, 3),
        text: phrase(rng, length),
        folders: vec![format!("f{a}"), format!("f{a}{b}"), format!("f{a}{b}{c}")],
        owner: format!("user-{}", rng.random_range(0..200)),
        tags: (0..rng.random_range(0..4))
            .map(|_| format!("tag-{}", rng.random_range(0..50)))
            .collect(),
        kind: Some(["text", "markdown", "html", "pdf", "docx"][rng.random_range(0..5)].to_string()),
        classification: "internal".into(),
        created_at: day(created),
        updated_at: day(created + rng.random_range(0..60)),
    }
}

async fn build(index: &Arc<EmbeddedIndex>, tenant: &TenantId, args: &Args) -> Result<(), String> {
    let marker = args.dir.join(format!("complete-{}", args.documents));
    if marker.exists() {
        eprintln!("using the index in {}", args.dir.display());
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    let words = vocabulary();
    let mut rng = SmallRng::seed_from_u64(7);
    let started = Instant::now();
    let mut done = 0;
    while done < args.documents {
        let batch: Vec<IndexedDocument> = (done..(done + BATCH).min(args.documents))
            .map(|n| document(n, &words, &mut rng))
            .collect();
        done += batch.len();
        index
            .upsert(tenant, batch)
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "indexed {done}/{} documents ({:.0} s)",
            args.documents,
            started.elapsed().as_secs_f64()
        );
    }
    std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
    Ok(())
}

/// The kinds of query timed, each made `n` times with different words.
fn queries(n: usize) -> Vec<(&'static str, Vec<SearchQuery>)> {
    let words = vocabulary();
    let mut rng = SmallRng::seed_from_u64(11);
    let base = SearchQuery {
        limit: 20,
        ..SearchQuery::default()
    };
    let mut common = || words[rng.random_range(0..50)].clone();
    let common_words: Vec<String> = (0..n * 2).map(|_| common()).collect();
    let mut rng = SmallRng::seed_from_u64(13);
    let mid_words: Vec<String> = (0..n)
        .map(|_| words[rng.random_range(100..5_000)].clone())
        .collect();
    let each = |f: &dyn Fn(usize) -> SearchQuery| (0..n).map(f).collect::<Vec<_>>();
    vec![
        (
            "one common word",
            each(&|i| SearchQuery {
                text: common_words[i].clone(),
                ..base.clone()
            }),
        ),
        (
            "two words",
            each(&|i| SearchQuery {
                text: format!("{} {}", common_words[i], mid_words[i]),
                ..base.clone()
            }),
        ),
        (
            "word + tag",
            each(&|i| SearchQuery {
                text: common_words[i].clone(),
                tags: vec![format!("tag-{}", i % 50)],
                ..base.clone()
            }),
        ),
        (
            "word + type + dates",
            each(&|i| SearchQuery {
                text: mid_words[i].clone(),
                kinds: vec!["pdf".into()],
                created_from: Some(day((i % 700) as i64)),
                created_until: Some(day((i % 700) as i64 + 365)),
                ..base.clone()
            }),
        ),
        (
            "subtree + owner, newest",
            each(&|i| SearchQuery {
                folder: Some(format!("f{}", i % 10)),
                owners: vec![format!("user-{}", i % 200)],
                sort: Sort::Newest,
                ..base.clone()
            }),
        ),
        (
            "everything, newest, page 5",
            each(&|_| SearchQuery {
                sort: Sort::Newest,
                offset: 80,
                ..base.clone()
            }),
        ),
        // The read policy of a viewer without MFA, compiled: nothing restricted.
        (
            "word, viewer's policy",
            each(&|i| SearchQuery {
                text: common_words[i].clone(),
                access: RowFilter::Classification("restricted".into()).negate(),
                ..base.clone()
            }),
        ),
        // A user with no role: owned documents, three shared subtrees and twenty shared
        // documents, nothing restricted.
        (
            "word, grantee's policy",
            each(&|i| SearchQuery {
                text: common_words[i].clone(),
                access: grantee_access(i),
                ..base.clone()
            }),
        ),
        (
            "everything, grantee's, newest",
            each(&|i| SearchQuery {
                sort: Sort::Newest,
                access: grantee_access(i),
                ..base.clone()
            }),
        ),
    ]
}

/// What a grantee's read policy resolves to (see `gatehouse_adapter_sql::rows`).
fn grantee_access(i: usize) -> RowFilter {
    let subtree = |id: String| Subtree {
        path: format!("/{id}/"),
        folder_id: id,
    };
    RowFilter::all([
        RowFilter::any([
            RowFilter::Owner(format!("user-{}", i % 200)),
            RowFilter::Under(vec![
                subtree(format!("f{}{}", i % 10, (i / 10) % 10)),
                subtree(format!("f{}{}{}", (i + 3) % 10, i % 10, (i / 10) % 10)),
                subtree(format!("f{}{}{}", (i + 7) % 10, (i + 1) % 10, i % 10)),
            ]),
            RowFilter::Ids(
                (0..20)
                    .map(|k| format!("doc-{:07}", (i * 7919 + k * 49_999) % 1_000_000))
                    .collect(),
            ),
        ]),
        RowFilter::Classification("restricted".into()).negate(),
    ])
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let code = runtime.block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let tenant = TenantId::parse("bench").expect("a valid tenant id");
    let index = Arc::new(EmbeddedIndex::new(&args.dir).with_writer_budget(512 << 20));
    if let Err(e) = build(&index, &tenant, &args).await {
        eprintln!("cannot build the index: {e}");
        return 1;
    }
    let mut report = Vec::new();
    let mut all = Vec::new();
    for (kind, batch) in queries(args.queries) {
        let mut times = Vec::with_capacity(batch.len());
        let mut matched = 0;
        for query in &batch {
            let started = Instant::now();
            let found = match index.search(&tenant, query).await {
                Ok(found) => found,
                Err(e) => {
                    eprintln!("search failed: {e}");
                    return 1;
                }
            };
            times.push(started.elapsed());
            matched += found.total;
        }
        times.sort();
        all.extend_from_slice(&times);
        report.push((
            kind,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            *times.last().unwrap_or(&Duration::ZERO),
            matched / batch.len().max(1) as u64,
        ));
    }
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if args.json {
        let kinds: Vec<_> = report
            .iter()
            .map(|(k, p50, p99, max, matched)| serde_json::json!({ "query": k, "p50_ms": ms(*p50), "p99_ms": ms(*p99), "max_ms": ms(*max), "mean_matches": matched }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "documents": args.documents, "queries_per_kind": args.queries, "kinds": kinds, "p99_ms": ms(percentile(&all, 0.99)) })
        );
    } else {
        println!(
            "{} documents in one tenant, {} queries per kind, 20 hits per page with facets",
            args.documents, args.queries
        );
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>12}",
            "query", "p50 ms", "p99 ms", "max ms", "matches"
        );
        for (kind, p50, p99, max, matched) in &report {
            println!(
                "{kind:<28} {:>9.2} {:>9.2} {:>9.2} {matched:>12}",
                ms(*p50),
                ms(*p99),
                ms(*max)
            );
        }
        println!(
            "{:<28} {:>9.2} {:>9.2} {:>9.2}",
            "all",
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.99)),
            ms(*all.last().unwrap_or(&Duration::ZERO))
        );
    }
    0
}

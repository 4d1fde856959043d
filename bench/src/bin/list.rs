//! Filtered lists from PostgreSQL: one page of 50 documents a reader may read, from a
//! tenant with many documents (the target: p99 under 50 ms with 1,000,000 documents).
//!
//!   list [--documents N] [--dir DIR] [--pages N] [--json]
//!
//! Starts a private PostgreSQL cluster in DIR (default `target/list-bench-<N>`), fills one
//! tenant once (1,110 folders three deep, N documents with random names, 200 owners, 5%
//! restricted, shares to one user and one group) and reuses it on later runs. Then, for
//! each kind of reader, times what `GET /documents` does for a page: the decision point
//! compiles the read policy into a filter, the adapter resolves its grants and folders and
//! runs the filtered, keyset-paginated query as the application role under row-level
//! security. Pages start at random names. Prints p50/p99/max per reader.
//! Exit code 0 when it ran, 2 on bad arguments, 1 on a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_policy::Entities;
use gatehouse_adapter_pg::Page;
use gatehouse_adapter_pg::documents::{Scope, listed};
use gatehouse_adapter_sql::TenantTx;
use gatehouse_adapter_sql::rows::{ResolveError, Rows, resolve};
use gatehouse_bench::percentile;
use gatehouse_core::TenantId;
use gatehouse_pdp::{Bundle, CurrentBundle, MemoryStore, Pdp, ResourceFilter, ResourceQuery};
use gatehouse_pgcluster::PgCluster;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const USAGE: &str = "usage: list [--documents N] [--dir DIR] [--pages N] [--json]";
const TENANT: &str = "bench";
const PAGE: i64 = 50;

struct Args {
    documents: usize,
    dir: std::path::PathBuf,
    pages: usize,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut documents = 1_000_000;
    let mut dir = None;
    let mut pages = 200;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--documents" => documents = value()?.parse().map_err(|_| "--documents: a number")?,
            "--dir" => dir = Some(value()?.into()),
            "--pages" => pages = value()?.parse().map_err(|_| "--pages: a number")?,
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let dir = dir.unwrap_or_else(|| format!("target/list-bench-{documents}").into());
    Ok(Args {
        documents,
        dir,
        pages,
        json,
    })
}

/// The tenant's folders, documents and shares, written once by the superuser (no
/// triggers: the outbox is not part of this benchmark).
fn fill_sql(documents: usize) -> String {
    format!(
        "SET session_replication_role = replica;
         INSERT INTO tenants VALUES ('{TENANT}', 'Bench', 'enterprise', 'eu', false) ON CONFLICT DO NOTHING;
         INSERT INTO folders (tenant_id, id, parent_id, name, path, owner_id)
           SELECT '{TENANT}', 'f' || a, NULL, 'f' || a, '/f' || a || '/', 'user-0' FROM generate_series(0, 9) a;
         INSERT INTO folders (tenant_id, id, parent_id, name, path, owner_id)
           SELECT '{TENANT}', 'f' || a || b, 'f' || a, 'f' || a || b, '/f' || a || '/f' || a || b || '/', 'user-0'
           FROM generate_series(0, 9) a, generate_series(0, 9) b;
         INSERT INTO folders (tenant_id, id, parent_id, name, path, owner_id)
           SELECT '{TENANT}', 'f' || a || b || c, 'f' || a || b, 'f' || a || b || c,
                  '/f' || a || '/f' || a || b || '/f' || a || b || c || '/', 'user-0'
           FROM generate_series(0, 9) a, generate_series(0, 9) b, generate_series(0, 9) c;
         INSERT INTO documents (tenant_id, id, folder_id, path, name, owner_id, classification)
           SELECT '{TENANT}', 'doc-' || lpad(i::text, 7, '0'), f.id, f.path, md5(i::text),
                  'user-' || (i * 7 % 200), CASE WHEN i % 20 = 0 THEN 'restricted' ELSE 'internal' END
           FROM generate_series(0, {last}) i
           JOIN folders f ON f.tenant_id = '{TENANT}' AND f.id = 'f' || (i % 10) || (i / 10 % 10) || (i / 100 % 10);
         INSERT INTO shares (tenant_id, id, resource_type, resource_id, grantee_type, grantee_id, role, created_by)
           VALUES ('{TENANT}', 's1', 'Folder', 'f123', 'User', 'user-7', 'viewer', 'bench'),
                  ('{TENANT}', 's2', 'Folder', 'f456', 'User', 'user-7', 'viewer', 'bench'),
                  ('{TENANT}', 's3', 'Folder', 'f789', 'User', 'user-7', 'viewer', 'bench'),
                  ('{TENANT}', 's4', 'Folder', 'f31', 'Group', 'g1', 'editor', 'bench');
         INSERT INTO shares (tenant_id, id, resource_type, resource_id, grantee_type, grantee_id, role, created_by)
           SELECT '{TENANT}', 'sd' || k, 'Document', 'doc-' || lpad((k * 49999 % {documents})::text, 7, '0'),
                  'User', 'user-7', 'viewer', 'bench'
           FROM generate_series(1, 20) k;
         ANALYZE;",
        last = documents - 1
    )
}

/// The readers' entities (what the entity store would load for them).
fn readers() -> Entities {
    let tenant = json!({ "__entity": { "type": "Tenant", "id": TENANT } });
    let grants = |user: &str, groups: &[&str], role: &str| -> Value {
        let mut nodes =
            vec![json!({ "__entity": { "type": "Grant", "id": format!("user:{user}/{role}") } })];
        nodes.extend(groups.iter().map(
            |g| json!({ "__entity": { "type": "Grant", "id": format!("group:{g}/{role}") } }),
        ));
        Value::Array(nodes)
    };
    let user = |id: &str, parents: Value, groups: &[&str]| {
        json!({ "uid": { "type": "User", "id": id }, "attrs": { "tenant": tenant, "name": id,
            "viewer_grants": grants(id, groups, "viewer"), "editor_grants": grants(id, groups, "editor"),
            "legal_hold": false }, "parents": parents })
    };
    let role = |id: &str, parents: Value| json!({ "uid": { "type": "Role", "id": id }, "attrs": {}, "parents": parents });
    let json = json!([
        { "uid": { "type": "Tenant", "id": TENANT }, "attrs": { "name": "Bench", "plan": "enterprise", "region": "eu", "suspended": false }, "parents": [] },
        role("viewer", json!([])),
        role("editor", json!([{ "type": "Role", "id": "viewer" }])),
        { "uid": { "type": "Group", "id": "g1" }, "attrs": { "tenant": tenant, "name": "g1" }, "parents": [] },
        user("viewer-1", json!([{ "type": "Role", "id": "viewer" }]), &[]),
        user("user-7", json!([{ "type": "Group", "id": "g1" }]), &["g1"]),
        user("user-42", json!([]), &[]),
    ]);
    Entities::from_json_value(json, None).expect("valid entities")
}

const KINDS: &[(&str, &str)] = &[
    ("viewer (all but restricted)", "viewer-1"),
    ("grantee (owner, 4 subtrees, 20 docs)", "user-7"),
    ("owner only (no role, no grant)", "user-42"),
];

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
    let code = match runtime.block_on(run(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("list bench failed: {e}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(args: Args) -> Result<(), String> {
    let cluster = PgCluster::start(&args.dir.join("pg"), None).map_err(|e| e.to_string())?;
    let urls = cluster.provision("gatehouse").map_err(|e| e.to_string())?;
    let connect = |url: String| async move {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .map_err(|e| e.to_string())
    };
    let owner = connect(urls.owner_url).await?;
    gatehouse_schemas::migrate(&owner)
        .await
        .map_err(|e| e.to_string())?;
    let marker = args.dir.join(format!("complete-{}", args.documents));
    if !marker.exists() {
        let started = Instant::now();
        eprintln!("writing {} documents (once)…", args.documents);
        cluster
            .execute("gatehouse", &fill_sql(args.documents))
            .map_err(|e| e.to_string())?;
        std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
        eprintln!("written in {:.0} s", started.elapsed().as_secs_f64());
    }
    let app = connect(urls.app_url).await?;
    let result = measure(&app, &args).await;
    let _ = cluster.stop();
    result
}

async fn measure(app: &PgPool, args: &Args) -> Result<(), String> {
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let bundle = Bundle::load(&policies).map_err(|e| e.to_string())?;
    let store = MemoryStore::new(&readers(), bundle.schema()).map_err(|e| e.to_string())?;
    let pdp = Pdp::new(Arc::new(CurrentBundle::new(bundle)));
    let tenant = TenantId::parse(TENANT).map_err(|e| e.to_string())?;
    let mut rng = SmallRng::seed_from_u64(5);
    let mut report = Vec::new();
    for (kind, user) in KINDS {
        let query = ResourceQuery {
            tenant: tenant.clone(),
            principal: format!(r#"User::"{user}""#).parse().map_err(|_| "uid")?,
            action: r#"Action::"document:read""#.parse().map_err(|_| "uid")?,
            resource_type: "Document".parse().map_err(|_| "type")?,
            acting_for: None,
            context: serde_json::Map::new(),
        };
        let mut times = Vec::with_capacity(args.pages);
        let mut items = 0;
        for _ in 0..args.pages {
            let after = format!("{:032x}", rng.random::<u128>());
            let started = Instant::now();
            let ResourceFilter::Exact(filter) = pdp
                .resource_filter(&store, &query)
                .await
                .map_err(|e| e.to_string())?
            else {
                return Err(format!("{kind}: the policies did not compile"));
            };
            let mut tx = TenantTx::begin(app, &tenant)
                .await
                .map_err(|e| e.to_string())?;
            let access = resolve(&mut tx, Rows::Documents, &filter)
                .await
                .map_err(|e: ResolveError| e.to_string())?;
            let page = Page::after(PAGE, Some((after, String::new())));
            let found = listed(&mut tx, &Scope::Tenant, &access, &page)
                .await
                .map_err(|e| e.to_string())?;
            times.push(started.elapsed());
            items += found.len();
        }
        times.sort();
        report.push((
            *kind,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            *times.last().unwrap_or(&Duration::ZERO),
            items as f64 / args.pages.max(1) as f64,
        ));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if args.json {
        let kinds: Vec<Value> = report
            .iter()
            .map(|(k, p50, p99, max, n)| json!({ "reader": k, "p50_ms": ms(*p50), "p99_ms": ms(*p99), "max_ms": ms(*max), "mean_items": n }))
            .collect();
        println!(
            "{}",
            json!({ "documents": args.documents, "pages": args.pages, "kinds": kinds })
        );
        return Ok(());
    }
    println!(
        "{} documents in one tenant, {} pages of {PAGE} per reader (compile + resolve + query)",
        args.documents, args.pages
    );
    println!(
        "{:<38} {:>8} {:>8} {:>8} {:>10}",
        "reader", "p50 ms", "p99 ms", "max ms", "items/page"
    );
    for (kind, p50, p99, max, n) in &report {
        println!(
            "{kind:<38} {:>8.2} {:>8.2} {:>8.2} {n:>10.1}",
            ms(*p50),
            ms(*p99),
            ms(*max)
        );
    }
    Ok(())
}

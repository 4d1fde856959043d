//! `platformctl audit`: query and verify the audit log.

use std::time::Duration;

use clap::Subcommand;
use gatehouse_audit::checkpoint::{Checkpoint, VerifyingKey, read_checkpoints, verifying_key};
use gatehouse_audit::{AuditQuery, AuditStore, StoredRecord};
use gatehouse_core::TenantId;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::exit;

#[derive(clap::Args)]
pub struct Database {
    /// PostgreSQL URL of a role that may read the audit log.
    #[arg(long, env = "GATEHOUSE_DATABASE_URL")]
    database_url: String,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Decisions of one tenant, filtered; oldest first.
    Query {
        #[command(flatten)]
        database: Database,
        /// The tenant (required: every query is scoped to one tenant).
        #[arg(long)]
        tenant: String,
        /// A principal uid, e.g. 'User::"acme-vera"'.
        #[arg(long)]
        principal: Option<String>,
        /// An action id (document:read) or uid.
        #[arg(long)]
        action: Option<String>,
        /// A resource uid.
        #[arg(long)]
        resource: Option<String>,
        /// allow or deny.
        #[arg(long, value_parser = ["allow", "deny"])]
        decision: Option<String>,
        /// A policy id among the determining policies.
        #[arg(long)]
        policy: Option<String>,
        /// From this time: RFC 3339 (2026-11-23T10:00:00Z) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        /// Until this time (exclusive).
        #[arg(long, value_parser = parse_time)]
        until: Option<i64>,
        /// At most this many records (the newest).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain of one tenant or of all (and its signed checkpoints).
    Verify {
        #[command(flatten)]
        database: Database,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Also check the chains against these signed checkpoints (JSON lines written by
        /// gatehouse): catches a rewrite even with every hash recomputed.
        #[arg(long, requires = "checkpoint_key")]
        checkpoints: Option<std::path::PathBuf>,
        /// The checkpoints' public key (PEM; gatehouse writes it as `<key file>.pub`).
        #[arg(long, requires = "checkpoints")]
        checkpoint_key: Option<std::path::PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: AuditCommand) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    runtime.block_on(async {
        match command {
            AuditCommand::Query {
                database,
                tenant,
                principal,
                action,
                resource,
                decision,
                policy,
                since,
                until,
                limit,
                json,
            } => {
                let Ok(tenant) = TenantId::parse(&tenant) else {
                    eprintln!("error: invalid tenant id {tenant:?}");
                    return exit::USAGE;
                };
                let action = action.map(|a| {
                    if a.contains("::") {
                        a
                    } else {
                        gatehouse_core::uid::uid_text("Action", &a)
                    }
                });
                let query = AuditQuery {
                    principal,
                    action,
                    resource,
                    decision,
                    policy,
                    since_us: since,
                    until_us: until,
                    limit,
                    ..AuditQuery::tenant(tenant)
                };
                let Some(store) = connect(&database).await else {
                    return exit::DATABASE;
                };
                match store.query(&query).await {
                    Ok(records) => {
                        print_records(&records, json);
                        exit::OK
                    }
                    Err(e) => database_error(&e),
                }
            }
            AuditCommand::Verify {
                database,
                tenant,
                checkpoints,
                checkpoint_key,
                json,
            } => {
                let anchors = match (checkpoints, checkpoint_key) {
                    (Some(file), Some(key)) => match load_checkpoints(&file, &key) {
                        Ok(anchors) => Some(anchors),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return exit::USAGE;
                        }
                    },
                    _ => None,
                };
                let Some(store) = connect(&database).await else {
                    return exit::DATABASE;
                };
                verify(&store, tenant, anchors.as_ref(), json).await
            }
        }
    })
}

/// Signed checkpoints and the key to check their signatures with.
type Anchors = (Vec<Checkpoint>, VerifyingKey);

fn load_checkpoints(file: &std::path::Path, key: &std::path::Path) -> Result<Anchors, String> {
    let pem = std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let key = verifying_key(&pem).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((read_checkpoints(file)?, key))
}

async fn verify(
    store: &AuditStore,
    tenant: Option<String>,
    anchors: Option<&Anchors>,
    as_json: bool,
) -> u8 {
    let tenants = match tenant {
        Some(t) => match TenantId::parse(&t) {
            Ok(t) => vec![t],
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        },
        None => match store.tenants().await {
            Ok(all) => all,
            Err(e) => return database_error(&e),
        },
    };
    let mut broken = false;
    for tenant in tenants {
        let mut report = match store.verify(&tenant).await {
            Ok(r) => r,
            Err(e) => return database_error(&e),
        };
        if let (None, Some((checkpoints, key))) = (&report.broken, anchors) {
            match store.verify_checkpoints(&tenant, checkpoints, key).await {
                Ok(found) => report.broken = found,
                Err(e) => return database_error(&e),
            }
        }
        broken |= report.broken.is_some();
        if as_json {
            let (seq, reason) = report.broken.clone().unzip();
            println!(
                "{}",
                json!({ "tenant": tenant, "records": report.records, "valid": report.broken.is_none(), "broken_at_seq": seq, "reason": reason })
            );
        } else {
            match &report.broken {
                None if anchors.is_some() => println!(
                    "{tenant}: {} records, chain intact and matching its signed checkpoints",
                    report.records
                ),
                None => println!("{tenant}: {} records, chain intact", report.records),
                Some((seq, why)) => println!("{tenant}: BROKEN at seq {seq}: {why}"),
            }
        }
    }
    if broken { exit::TESTS_FAILED } else { exit::OK }
}

async fn connect(database: &Database) -> Option<AuditStore> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&database.database_url)
        .await;
    match pool {
        Ok(pool) => Some(AuditStore::new(pool)),
        Err(e) => {
            eprintln!("error: cannot connect to the audit database: {e}");
            None
        }
    }
}

fn database_error(e: &gatehouse_audit::AuditError) -> u8 {
    eprintln!("error: {e}");
    exit::DATABASE
}

fn print_records(records: &[StoredRecord], as_json: bool) {
    if as_json {
        for r in records {
            println!("{}", json!({ "seq": r.seq, "record": r.record }));
        }
        return;
    }
    println!(
        "{:>6}  {:<20}  {:<5}  {:<28}  {:<28}  {:<32}  policies",
        "seq", "time", "dec", "principal", "action", "resource"
    );
    for r in records {
        let rec = &r.record;
        println!(
            "{:>6}  {:<20}  {:<5}  {:<28}  {:<28}  {:<32}  {}",
            r.seq,
            format_time(rec.time_us),
            rec.decision,
            rec.principal,
            rec.action,
            rec.resource,
            if rec.errors.is_empty() {
                rec.determining_policies.join(",")
            } else {
                rec.errors.join(";")
            }
        );
    }
}

/// Unix seconds, or RFC 3339 UTC (`2026-11-23T10:00:00Z`), to microseconds.
fn parse_time(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .ok()
        .or_else(|| gatehouse_core::time::parse_rfc3339(value))
        .map(|secs| secs * 1_000_000)
        .ok_or_else(|| format!("{value:?} is neither Unix seconds nor YYYY-MM-DDTHH:MM:SSZ"))
}

fn format_time(us: i64) -> String {
    gatehouse_core::time::format_rfc3339(us.div_euclid(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_print_in_utc() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Ok(951_782_400_000_000));
        assert_eq!(format_time(951_782_400_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_time(parse_time("2026-11-23T16:59:59Z").unwrap()),
            "2026-11-23T16:59:59Z"
        );
        assert!(parse_time("yesterday").is_err());
    }
}

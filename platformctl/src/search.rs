//! `platformctl search`: operate the search indexes.

use clap::Subcommand;
use gatehouse_core::TenantId;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::exit;

#[derive(Subcommand)]
pub enum SearchCommand {
    /// Queue every document of one tenant, or of all, to be indexed again from the
    /// database (after switching engines or losing an index); a running gatehouse picks
    /// the jobs up at once.
    Reindex {
        /// PostgreSQL URL of the application role.
        #[arg(long, env = "GATEHOUSE_DATABASE_URL")]
        database_url: String,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per tenant.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: SearchCommand) -> u8 {
    let SearchCommand::Reindex {
        database_url,
        tenant,
        json,
    } = command;
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return exit::USAGE;
    };
    runtime.block_on(async {
        let only = match tenant.as_deref().map(TenantId::parse).transpose() {
            Ok(only) => only,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        };
        let pool = match PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&database_url)
            .await
        {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("error: cannot connect to the database: {e}");
                return exit::DATABASE;
            }
        };
        let tenants = match only {
            Some(tenant) => vec![tenant],
            None => match sqlx::query_scalar::<_, String>(
                "SELECT tenant_id FROM tenants ORDER BY tenant_id",
            )
            .fetch_all(&pool)
            .await
            {
                Ok(ids) => ids
                    .iter()
                    .filter_map(|id| TenantId::parse(id).ok())
                    .collect(),
                Err(e) => {
                    eprintln!("error: cannot list the tenants: {e}");
                    return exit::DATABASE;
                }
            },
        };
        for tenant in &tenants {
            match gatehouse_adapter_search::outbox::request_reindex(&pool, tenant).await {
                Ok(queued) if json => {
                    println!("{}", json!({ "tenant": tenant.as_str(), "queued": queued }))
                }
                Ok(queued) => eprintln!("{tenant}: {queued} documents queued for indexing"),
                Err(e) => {
                    eprintln!("error: {tenant}: {e}");
                    return exit::DATABASE;
                }
            }
        }
        exit::OK
    })
}

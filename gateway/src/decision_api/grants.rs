//! An agent's capabilities, granted for a limited time (or until revoked) by a user it
//! acts for or an admin (`agent:grant` on the agent, decided and audited). The entity
//! store makes the agent `in` exactly its active grants, and drops its cached copy when a
//! grant changes or expires; the decision point still decides every request of the agent
//! for its user too, so no grant lifts an agent above its user.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use gatehouse_pdp::uid;

use super::{ApiError, Caller, DecisionApi, Reply, database, parse};

/// The capabilities the policies know (`Capability::"view"` and so on).
const CAPABILITIES: [&str; 3] = ["view", "edit", "manage"];
/// The longest grant: a year.
const MAX_SECONDS: u64 = 365 * 24 * 3600;

#[derive(Deserialize)]
struct GrantIn {
    capability: String,
    expires_in_seconds: Option<u64>,
}

/// `/gatehouse/v1/agents/{id}/grants[/{capability}]`, split.
pub(super) struct GrantPath<'p> {
    pub(super) agent: &'p str,
    pub(super) capability: Option<&'p str>,
}

impl<'p> GrantPath<'p> {
    /// The agent (and capability) of a grants path; `None` for any other path.
    pub(super) fn parse(path: &'p str) -> Option<Self> {
        let rest = path.strip_prefix("/gatehouse/v1/agents/")?;
        let (agent, rest) = rest.split_once("/grants")?;
        let capability = match rest {
            "" => None,
            _ => Some(
                rest.strip_prefix('/')
                    .filter(|c| !c.is_empty() && !c.contains('/'))?,
            ),
        };
        (!agent.is_empty() && !agent.contains('/')).then_some(Self { agent, capability })
    }
}

impl DecisionApi {
    /// Lists, grants or revokes.
    pub(super) async fn grants(
        &self,
        caller: &Caller,
        method: &str,
        path: GrantPath<'_>,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let known = matches!(
            (method, path.capability),
            ("GET" | "POST", None) | ("DELETE", Some(_))
        );
        if !known {
            return Err(ApiError::new(
                405,
                "method_not_allowed",
                "grants take GET and POST; a grant takes DELETE",
            ));
        }
        let agent = uid::entity("Agent", path.agent)
            .map_err(|_| ApiError::bad("bad_agent", "not an agent id"))?;
        let pool = self.writable_pool().await?;
        self.permitted(caller, "agent:grant", agent).await?;
        let mut tx = gatehouse_schemas::tenant_tx(pool, &caller.tenant)
            .await
            .map_err(database)?;
        let reply = match (method, path.capability) {
            ("GET", None) => Reply::ok(json!({
                "agent": path.agent,
                "grants": active_grants(&mut tx, path.agent).await?,
            })),
            ("POST", None) => {
                let grant: GrantIn = parse(body)?;
                let created = grant_capability(&mut tx, caller, path.agent, &grant).await?;
                Reply {
                    status: 201,
                    body: created,
                }
            }
            ("DELETE", Some(capability)) => {
                let revoked = sqlx::query(
                    "UPDATE agent_grants SET revoked_at = clock_timestamp(), revoked_by = $3 \
                     WHERE tenant_id = $1 AND agent_id = $2 AND capability = $4 AND revoked_at IS NULL",
                )
                .bind(caller.tenant.as_str())
                .bind(path.agent)
                .bind(caller.principal.uid.to_string())
                .bind(capability)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
                Reply::ok(json!({ "revoked": revoked.rows_affected() > 0 }))
            }
            _ => {
                return Err(ApiError::new(
                    405,
                    "method_not_allowed",
                    "grants take GET and POST; a grant takes DELETE",
                ));
            }
        };
        tx.commit().await.map_err(database)?;
        self.changed(caller);
        Ok(reply)
    }
}

async fn grant_capability(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    caller: &Caller,
    agent: &str,
    grant: &GrantIn,
) -> Result<Value, ApiError> {
    if !CAPABILITIES.contains(&grant.capability.as_str()) {
        return Err(ApiError::bad(
            "unknown_capability",
            format!("capabilities are {}", CAPABILITIES.join(", ")),
        ));
    }
    let seconds = grant.expires_in_seconds;
    if seconds.is_some_and(|s| s == 0 || s > MAX_SECONDS) {
        return Err(ApiError::bad(
            "bad_expiry",
            format!("expires_in_seconds is from 1 to {MAX_SECONDS}"),
        ));
    }
    // Granting an active capability again renews it.
    let row = sqlx::query(
        "INSERT INTO agent_grants (tenant_id, agent_id, capability, granted_by, expires_at) \
         VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5::float8)) \
         ON CONFLICT (tenant_id, agent_id, capability) WHERE revoked_at IS NULL \
         DO UPDATE SET granted_by = EXCLUDED.granted_by, granted_at = clock_timestamp(), expires_at = EXCLUDED.expires_at \
         RETURNING capability, granted_by, to_json(granted_at)#>>'{}', to_json(expires_at)#>>'{}'",
    )
    .bind(caller.tenant.as_str())
    .bind(agent)
    .bind(&grant.capability)
    .bind(caller.principal.uid.to_string())
    .bind(seconds.map(|s| s as f64))
    .fetch_one(&mut **tx)
    .await
    .map_err(database)?;
    Ok(grant_json(agent, &row))
}

async fn active_grants(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    agent: &str,
) -> Result<Vec<Value>, ApiError> {
    let rows = sqlx::query(
        "SELECT capability, granted_by, to_json(granted_at)#>>'{}', to_json(expires_at)#>>'{}' \
         FROM agent_grants WHERE agent_id = $1 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > now()) \
         ORDER BY capability",
    )
    .bind(agent)
    .fetch_all(&mut **tx)
    .await
    .map_err(database)?;
    Ok(rows.iter().map(|row| grant_json(agent, row)).collect())
}

fn grant_json(agent: &str, row: &sqlx::postgres::PgRow) -> Value {
    json!({
        "agent": agent,
        "capability": row.get::<String, _>(0),
        "granted_by": row.get::<String, _>(1),
        "granted_at": row.get::<String, _>(2),
        "expires_at": row.get::<Option<String>, _>(3),
    })
}

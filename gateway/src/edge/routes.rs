//! Routes: method and path to a Cedar action, a resource and an upstream.

use std::net::SocketAddr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use gatehouse_core::TenantId;
use gatehouse_pdp::uid;

use crate::config::{RouteConfig, UpstreamConfig};

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    method: http::Method,
    segments: Vec<Segment>,
    /// The Cedar action.
    pub action: EntityUid,
    resource_type: EntityTypeName,
    /// Where allowed requests go.
    pub upstream: SocketAddr,
    /// Whether the upstream gets the client's credentials too.
    pub forward_credentials: bool,
    /// The pattern, for logs and audit records.
    pub pattern: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Id,
}

/// The routes, in the order they are matched.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
}

/// A request that matches no route, or whose resource id is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No route has this method and path.
    #[error("no route for this method and path")]
    NoRoute,
    /// The resource id in the path has characters ids never have.
    #[error("the resource id in the path is not valid")]
    BadId,
}

/// A matched route and the resource it names.
#[derive(Debug, Clone)]
pub struct Matched<'r> {
    /// The route.
    pub route: &'r Route,
    /// The resource's uid.
    pub resource: EntityUid,
}

impl Routes {
    /// Compiles the configured routes.
    ///
    /// # Errors
    /// [`RouteConfigError`] naming the route whose action, resource type or pattern is
    /// invalid.
    pub fn compile(
        routes: &[RouteConfig],
        upstreams: &[UpstreamConfig],
    ) -> Result<Self, RouteConfigError> {
        let compiled = routes
            .iter()
            .map(|r| compile(r, upstreams))
            .collect::<Result<_, _>>()?;
        Ok(Self { routes: compiled })
    }

    /// The first route matching `method` and `path`, with the resource of `tenant`.
    ///
    /// # Errors
    /// [`RouteError`] when nothing matches or the id is unusable.
    pub fn find(
        &self,
        method: &http::Method,
        path: &str,
        tenant: &TenantId,
    ) -> Result<Matched<'_>, RouteError> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        for route in &self.routes {
            if route.method != method || route.segments.len() != parts.len() {
                continue;
            }
            let mut id = None;
            let fits = route
                .segments
                .iter()
                .zip(&parts)
                .all(|(segment, part)| match segment {
                    Segment::Literal(l) => l == part,
                    Segment::Id => {
                        id = Some(*part);
                        true
                    }
                });
            if !fits {
                continue;
            }
            let id = match id {
                Some(id) if valid_id(id) => id,
                Some(_) => return Err(RouteError::BadId),
                None => tenant.as_str(),
            };
            let resource =
                EntityUid::from_type_name_and_id(route.resource_type.clone(), EntityId::new(id));
            return Ok(Matched { route, resource });
        }
        Err(RouteError::NoRoute)
    }
}

/// Ids are what the platform issues: letters, digits, `-`, `_`, `.` and `:`; never a
/// percent-escape, a slash or `..`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A configured route that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {method} {path}: {problem}")]
pub struct RouteConfigError {
    method: String,
    path: String,
    problem: String,
}

fn compile(r: &RouteConfig, upstreams: &[UpstreamConfig]) -> Result<Route, RouteConfigError> {
    let refuse = |problem: String| RouteConfigError {
        method: r.method.clone(),
        path: r.path.clone(),
        problem,
    };
    let method = r
        .method
        .parse::<http::Method>()
        .map_err(|e| refuse(e.to_string()))?;
    if !r.path.starts_with('/') {
        return Err(refuse("the path must start with /".into()));
    }
    let segments: Vec<Segment> = r
        .path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(|s| match s {
            "{id}" => Segment::Id,
            literal => Segment::Literal(literal.to_string()),
        })
        .collect();
    let ids = segments.iter().filter(|s| **s == Segment::Id).count();
    let action = uid::parse_action(&r.action).map_err(|e| refuse(format!("bad action: {e}")))?;
    let resource_type: EntityTypeName = r
        .resource
        .parse()
        .map_err(|e| refuse(format!("bad resource type: {e}")))?;
    let tenant_scoped = r.resource == "Tenant";
    if ids != usize::from(!tenant_scoped) {
        return Err(refuse(format!(
            "a {} route needs exactly {} {{id}}",
            r.resource,
            usize::from(!tenant_scoped)
        )));
    }
    let named = upstreams.iter().find(|u| u.name == r.upstream);
    let (upstream, forward_credentials) = named
        .and_then(|u| Some((u.address.parse().ok()?, u.forward_credentials)))
        .ok_or_else(|| refuse(format!("unknown upstream {}", r.upstream)))?;
    Ok(Route {
        method,
        segments,
        action,
        resource_type,
        upstream,
        forward_credentials,
        pattern: r.path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DEMO};

    fn routes() -> Routes {
        let c = Config::parse(DEMO, "embedded").unwrap();
        Routes::compile(&c.routes, &c.upstreams).unwrap()
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn a_path_names_the_action_and_the_resource() {
        let routes = routes();
        let m = routes
            .find(&http::Method::GET, "/documents/acme-plan", &acme())
            .unwrap();
        assert_eq!(m.route.action.to_string(), r#"Action::"document:read""#);
        assert_eq!(m.resource.to_string(), r#"Document::"acme-plan""#);
        let m = routes
            .find(&http::Method::DELETE, "/documents/acme-plan/", &acme())
            .unwrap();
        assert_eq!(m.route.action.to_string(), r#"Action::"document:delete""#);
        let m = routes.find(&http::Method::GET, "/search", &acme()).unwrap();
        assert_eq!(
            m.resource.to_string(),
            r#"Tenant::"acme""#,
            "tenant routes name the request's tenant"
        );
    }

    #[test]
    fn unknown_methods_paths_and_ids_are_refused() {
        let routes = routes();
        let find = |m: http::Method, p: &str| routes.find(&m, p, &acme()).map(|_| ()).unwrap_err();
        assert_eq!(find(http::Method::PUT, "/documents/x"), RouteError::NoRoute);
        assert_eq!(find(http::Method::GET, "/documentz"), RouteError::NoRoute);
        assert_eq!(
            find(http::Method::GET, "/documents/x/y/z"),
            RouteError::NoRoute
        );
        assert_eq!(
            find(http::Method::GET, "/documents/%2e%2e"),
            RouteError::BadId
        );
        assert_eq!(find(http::Method::GET, "/documents/.."), RouteError::BadId);
        assert_eq!(
            find(http::Method::GET, "/documents/a\"b"),
            RouteError::BadId
        );
    }
}

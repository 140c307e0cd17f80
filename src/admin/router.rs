//! The admin router, built from the OpenAPI description: a request is served only by an
//! operation the description documents (method and path template), by the handler that
//! carries that operation's annotation, and without a token only where the operation
//! documents no security requirement.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Method, Response};
use uuid::Uuid;

use super::requests::{parse_json, Query};
use super::{AdminError, AdminState};
use crate::body::ProxyBody;

/// What a handler answers.
pub type Reply = Result<Response<ProxyBody>, AdminError>;

/// An admin operation: the annotated function, boxed.
pub type Handler = for<'a> fn(&'a AdminState, Call) -> BoxFuture<'a, Reply>;

/// What a handler gets from its request.
#[derive(Debug)]
pub struct Call {
    id: Option<Uuid>,
    pub query: Query,
    pub body: Bytes,
    /// The request carried the admin token (or none is configured). Operations that need
    /// the token never see a request without it; a public one that still cares (say, one
    /// open only on loopback) reads this.
    pub authorized: bool,
}

impl Call {
    /// A request with its path parameter (if any), query, body and whether it is authorized.
    pub fn new(id: Option<Uuid>, query: Query, body: Bytes, authorized: bool) -> Call {
        Call { id, query, body, authorized }
    }

    /// The `{id}` of the path.
    pub fn id(&self) -> Result<Uuid, AdminError> {
        self.id.ok_or(AdminError::NoRoute)
    }

    /// The body, parsed strictly.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, AdminError> {
        parse_json(&self.body)
    }
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// The path template, such as `/v1/budgets/{id}`.
    pub path: String,
    pub operation_id: String,
    /// The operation documents no security requirement: no token is needed.
    pub public: bool,
    /// The operation also takes a dashboard session cookie instead of the token.
    pub session: bool,
    /// `None` where the template has a parameter.
    segments: Vec<Option<String>>,
}

/// The operations of the description, each with its handler.
pub struct Router {
    routes: Vec<(Route, Handler)>,
    /// Operations without a handler and handlers without an operation (a test keeps this
    /// empty; at run time such an operation answers 404).
    pub problems: Vec<String>,
}

/// A request matched to an operation.
pub struct Match<'r> {
    pub route: &'r Route,
    pub handler: Handler,
    /// The path parameter, still unparsed, and its name.
    param: Option<(&'r str, String)>,
}

impl Match<'_> {
    /// The path parameter; one that is not a UUID is a 400 naming it.
    pub fn id(&self) -> Result<Option<Uuid>, AdminError> {
        self.param
            .as_ref()
            .map(|(name, value)| Uuid::parse_str(value).map_err(|_| AdminError::field(name, "not a UUID")))
            .transpose()
    }
}

impl Router {
    /// Routes every operation of `description` to the handler named by its operation id.
    pub fn new(description: &serde_json::Value, handlers: &[(&'static str, Handler)]) -> Router {
        let mut problems = Vec::new();
        let mut routes = Vec::new();
        let secured_by_default = has_requirement(description.get("security"));
        let paths = description.get("paths").and_then(|p| p.as_object()).into_iter().flatten();
        for (path, item) in paths {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
                let operation_id = operation.get("operationId").and_then(|o| o.as_str()).unwrap_or_default();
                let Some((_, handler)) = handlers.iter().find(|(name, _)| *name == operation_id) else {
                    problems.push(format!("{method} {path} ({operation_id}) has no handler"));
                    continue;
                };
                let public = match operation.get("security") {
                    Some(own) => !has_requirement(Some(own)),
                    None => !secured_by_default,
                };
                let session = operation.get("security").and_then(|s| s.as_array()).is_some_and(|list| {
                    list.iter().any(|r| r.get(super::dashboard::session::SCHEME).is_some())
                });
                let route = Route {
                    method,
                    path: path.clone(),
                    operation_id: operation_id.to_owned(),
                    public,
                    session,
                    segments: segments(path)
                        .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                        .collect(),
                };
                routes.push((route, *handler));
            }
        }
        for (name, _) in handlers {
            if !routes.iter().any(|(r, _)| r.operation_id == *name) {
                problems.push(format!("handler {name} is not in the description"));
            }
        }
        Router { routes, problems }
    }

    /// Every routed operation.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(r, _)| r)
    }

    /// The operation serving `method` on `path`: 404 when no template matches the path,
    /// 405 (with the methods that would do) when one does but not for this method.
    pub fn find(&self, method: &Method, path: &str) -> Result<Match<'_>, AdminError> {
        let wanted: Vec<&str> = segments(path).collect();
        let mut allowed = Vec::new();
        for (route, handler) in &self.routes {
            let Some(param) = route.matches(&wanted) else { continue };
            if route.method == method {
                return Ok(Match { route, handler: *handler, param });
            }
            allowed.push(route.method.as_str());
        }
        if allowed.is_empty() {
            Err(AdminError::NoRoute)
        } else {
            Err(AdminError::MethodNotAllowed { allow: allowed.join(", ") })
        }
    }
}

impl Router {
    /// Whether every operation on `path` is public: then a wrong method there is a 405
    /// even without the token.
    pub fn public_at(&self, path: &str) -> bool {
        let wanted: Vec<&str> = segments(path).collect();
        let mut at = self.routes().filter(|r| r.matches(&wanted).is_some()).peekable();
        at.peek().is_some() && at.all(|r| r.public)
    }
}

impl Route {
    /// `Some` (with the parameter, if the template has one) when `path` fits the template.
    fn matches<'r>(&'r self, path: &[&str]) -> Option<Option<(&'r str, String)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut param = None;
        for (template, got) in self.segments.iter().zip(path) {
            match template {
                Some(literal) if literal != got => return None,
                Some(_) => {}
                None => param = Some((self.param_name(), (*got).to_owned())),
            }
        }
        Some(param)
    }

    fn param_name(&self) -> &str {
        self.path
            .split('/')
            .find_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .unwrap_or("id")
    }
}

/// The non-empty segments of a path (a trailing slash changes nothing).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Whether a `security` list demands something (an empty list, or one holding an empty
/// requirement, demands nothing).
fn has_requirement(security: Option<&serde_json::Value>) -> bool {
    security.and_then(|s| s.as_array()).is_some_and(|list| {
        !list.is_empty() && list.iter().all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
    })
}

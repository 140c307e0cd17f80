//! The OpenAPI 3.1 description of the admin API, generated from the handlers'
//! `#[utoipa::path]` annotations and the types they read and write. The router is built
//! from this same description ([`super::router`]), so what is served is what is described.

use std::sync::LazyLock;

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use uuid::Uuid;

use super::{budgets, dashboard, entities, keys, reports, service};

/// The name of the bearer-token security scheme (the `security` attributes spell it out).
pub const BEARER: &str = "admin_token";

/// Declares the description over the list of operations `super::operations!` gives (the
/// router's handler table comes from the same list).
macro_rules! api_doc {
    ($($module:ident :: $name:ident),* $(,)?) => {
        #[derive(OpenApi)]
        #[openapi(
            info(
                title = "tollgate admin API",
                description = "Organizations, projects, users, keys, budgets, alerts and spend of a \
                    tollgate. JSON in and out; ids are UUIDs; money is a decimal string. Every operation \
                    needs `Authorization: Bearer $TOLLGATE_ADMIN_TOKEN` unless it says otherwise.",
            ),
        paths($($module::$name),*),
            components(
                schemas(ErrorBody, ErrorDetail),
                responses(BadRequest, Unauthorized, NotFound, Conflict, Unprocessable)
            ),
            modifiers(&BearerToken),
            security(("admin_token" = [])),
            tags(
                (name = "organizations", description = "Organizations, their projects and their users"),
                (name = "keys", description = "tollgate keys: a user spending on a project"),
                (name = "budgets", description = "Budgets, alert thresholds and fired alerts"),
                (name = "reports", description = "Spend reports and cost records"),
                (name = "service", description = "Health, metrics and this description (no token needed on loopback)"),
                (name = "dashboard", description = "HTML pages for people: spend, budgets, requests, alerts \
                    (the admin token, or the session cookie its login form sets)"),
            )
        )]
        /// The description: every admin operation, its inputs, its answers.
        pub struct ApiDoc;
    };
}

super::operations!(api_doc);

/// Adds the bearer scheme the `security` requirements name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The `[admin] token` of the configuration"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            dashboard::session::SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                dashboard::session::COOKIE,
                "The dashboard's session, set by `POST /dashboard/login` (HttpOnly; 12 hours)",
            ))),
        );
    }
}

/// The description, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);
    &DOC
}

/// The description as JSON, built once (the router reads its operations from it).
pub fn json() -> &'static serde_json::Value {
    static JSON: LazyLock<serde_json::Value> =
        LazyLock::new(|| serde_json::to_value(document()).unwrap_or_default());
    &JSON
}

pub use crate::store::Usd;

/// A positive amount of US dollars on input: a decimal string, or a JSON number read
/// exactly as written.
pub struct UsdInput;

impl PartialSchema for UsdInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^\s*(0*[1-9][0-9]{0,11}(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*)\s*$"))
                    .examples([serde_json::json!("10.00")]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0.0))
                    .maximum(Some(1e12)),
            )
            .description(Some(
                "A positive amount of US dollars (at most 1e12): a decimal string, or a number read exactly",
            ))
            .into()
    }
}

impl ToSchema for UsdInput {}

/// A name or external id as `check_name` accepts it: up to 200 characters, no control
/// characters (`char::is_control`), something besides whitespace (it is stored trimmed).
pub struct Name;

impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(200))
            .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"))
            .description(Some("Up to 200 printable characters, not all whitespace; stored trimmed"))
            .into()
    }
}

impl ToSchema for Name {}

/// An email address as `check_email` accepts it (the pattern is a little stricter: no
/// spaces at all).
pub struct Email;

impl PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(3))
            .max_length(Some(200))
            .pattern(Some(r"^[^@ \x00-\x1f\x7f-\x9f]+@[^ \x00-\x1f\x7f-\x9f]+$"))
            .examples([serde_json::json!("ada@example.com")])
            .into()
    }
}

impl ToSchema for Email {}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, and with which field when one is to blame.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    /// The offending field or query parameter (a path such as `limit_usd`), when there is one.
    pub field: Option<String>,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: Uuid,
    pub deleted: bool,
}

impl Deleted {
    /// A delete of `id` that happened.
    pub fn of(id: Uuid) -> Deleted {
        Deleted { id, deleted: true }
    }
}

/// Defines the reusable error responses, each an [`ErrorBody`] in JSON.
macro_rules! error_responses {
    ($($name:ident: $description:literal),* $(,)?) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
                let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
                let response =
                    ResponseBuilder::new().description($description).content("application/json", content);
                (stringify!($name), response.build().into())
            }
        }
    )*};
}

error_responses! {
    BadRequest: "The request is malformed: a bad JSON body, a field of the wrong type, an unknown field, a bad query parameter or id",
    Unauthorized: "The admin token is missing or wrong",
    NotFound: "No such object (or an object the request refers to does not exist)",
    Conflict: "The change conflicts with what is stored (a duplicate, or spend history that must be kept)",
    Unprocessable: "Well-formed, but not allowed (a key binding a user to another organization's project)",
}

/// The path parameter of every single-object route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdParam {
    /// The object's id.
    #[allow(dead_code)]
    id: Uuid,
}

//! tollgate keys: created (the plaintext shown once), listed, read, revoked.

use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{BadRequest, IdParam, NotFound, Unauthorized, Unprocessable};
use super::requests::{CreateKey, PageParams, UserFilter};
use super::router::{Call, Reply};
use super::{created, ok, AdminError, AdminState};
use crate::identity::generate_key;
use crate::store::{ApiKey, NewKey, Page, Store};

/// A created key: the stored fields plus the plaintext, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The plaintext `tg_...` key; never stored, never shown again.
    #[serde(rename = "key")]
    #[schema(pattern = "^tg_[0-9A-Za-z]{32,}$")]
    pub plaintext: String,
}

/// Generates and stores a key for the request.
pub async fn store_new_key(store: &Store, req: CreateKey) -> Result<CreatedKey, AdminError> {
    let name = req.validated_name()?;
    let generated = generate_key();
    let key = store
        .create_key(&NewKey {
            user_id: req.user_id,
            project_id: req.project_id,
            name,
            expires_at: req.expires_at,
            key_hash: generated.hash,
            prefix: generated.prefix,
        })
        .await?;
    Ok(CreatedKey { key, plaintext: generated.plaintext })
}

/// Creates a key binding a user to a project of the same organization; the answer holds
/// the plaintext key, which is never shown again.
#[utoipa::path(post, path = "/v1/keys", tag = "keys",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The new key, with its plaintext in `key`", body = CreatedKey),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
    ))]
pub async fn create_key(state: &AdminState, call: Call) -> Reply {
    created(&store_new_key(&state.store, call.json()?).await?)
}

/// Lists keys (never their plaintext), oldest first.
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    params(UserFilter, PageParams),
    responses(
        (status = 200, description = "A page of keys", body = Page<ApiKey>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_keys(state: &AdminState, call: Call) -> Reply {
    let user = UserFilter::read(&call.query)?;
    ok(&state.store.list_keys(user, &PageParams::read(&call.query)?).await?)
}

/// Reads a key (never its plaintext).
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys",
    params(IdParam),
    responses(
        (status = 200, description = "The key", body = ApiKey),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn get_key(state: &AdminState, call: Call) -> Reply {
    ok(&state.store.get_key(call.id()?).await?)
}

/// Revokes a key: it stops working at once; the record stays, with `revoked_at`.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(IdParam),
    responses(
        (status = 200, description = "The revoked key", body = ApiKey),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn revoke_key(state: &AdminState, call: Call) -> Reply {
    ok(&state.store.revoke_key(call.id()?).await?)
}

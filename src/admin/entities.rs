//! Organizations, projects and users: create, list, read, change, delete.

use super::openapi::{BadRequest, Conflict, Deleted, IdParam, NotFound, Unauthorized};
use super::requests::{
    CreateOrganization, CreateProject, CreateUser, OrganizationFilter, PageParams, PatchNamed, PatchUser,
};
use super::router::{Call, Reply};
use super::{created, ok, AdminState};
use crate::store::{Organization, Page, Project, User};

/// Creates an organization.
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations",
    request_body = CreateOrganization,
    responses(
        (status = 201, description = "The new organization", body = Organization),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
    ))]
pub async fn create_organization(state: &AdminState, call: Call) -> Reply {
    let name = call.json::<CreateOrganization>()?.validated()?;
    created(&state.store.create_organization(&name).await?)
}

/// Lists organizations, oldest first.
#[utoipa::path(get, path = "/v1/organizations", tag = "organizations",
    params(PageParams),
    responses(
        (status = 200, description = "A page of organizations", body = Page<Organization>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_organizations(state: &AdminState, call: Call) -> Reply {
    ok(&state.store.list_organizations(&PageParams::read(&call.query)?).await?)
}

/// Reads an organization.
#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "organizations",
    params(IdParam),
    responses(
        (status = 200, description = "The organization", body = Organization),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn get_organization(state: &AdminState, call: Call) -> Reply {
    ok(&state.store.get_organization(call.id()?).await?)
}

/// Renames or archives an organization.
#[utoipa::path(patch, path = "/v1/organizations/{id}", tag = "organizations",
    params(IdParam),
    request_body = PatchNamed,
    responses(
        (status = 200, description = "The organization as changed", body = Organization),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn update_organization(state: &AdminState, call: Call) -> Reply {
    let patch = call.json::<PatchNamed>()?.validated()?;
    ok(&state.store.update_organization(call.id()?, &patch).await?)
}

/// Deletes an organization with its configuration (projects, users, keys, budgets);
/// refused (409) while cost records refer to it: archive it instead.
#[utoipa::path(delete, path = "/v1/organizations/{id}", tag = "organizations",
    params(IdParam),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn delete_organization(state: &AdminState, call: Call) -> Reply {
    let id = call.id()?;
    state.store.delete_organization(id).await?;
    ok(&Deleted::of(id))
}

/// Creates a project in an organization.
#[utoipa::path(post, path = "/v1/projects", tag = "organizations",
    request_body = CreateProject,
    responses(
        (status = 201, description = "The new project", body = Project),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn create_project(state: &AdminState, call: Call) -> Reply {
    let req = call.json::<CreateProject>()?;
    let name = req.validated_name()?;
    created(&state.store.create_project(req.organization_id, &name).await?)
}

/// Lists projects, oldest first.
#[utoipa::path(get, path = "/v1/projects", tag = "organizations",
    params(OrganizationFilter, PageParams),
    responses(
        (status = 200, description = "A page of projects", body = Page<Project>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_projects(state: &AdminState, call: Call) -> Reply {
    let organization = OrganizationFilter::read(&call.query)?;
    ok(&state.store.list_projects(organization, &PageParams::read(&call.query)?).await?)
}

/// Reads a project.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "organizations",
    params(IdParam),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn get_project(state: &AdminState, call: Call) -> Reply {
    ok(&state.store.get_project(call.id()?).await?)
}

/// Renames or archives a project.
#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "organizations",
    params(IdParam),
    request_body = PatchNamed,
    responses(
        (status = 200, description = "The project as changed", body = Project),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn update_project(state: &AdminState, call: Call) -> Reply {
    let patch = call.json::<PatchNamed>()?.validated()?;
    ok(&state.store.update_project(call.id()?, &patch).await?)
}

/// Deletes a project with its keys and budgets; refused (409) while cost records refer
/// to it: archive it instead.
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "organizations",
    params(IdParam),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn delete_project(state: &AdminState, call: Call) -> Reply {
    let id = call.id()?;
    state.store.delete_project(id).await?;
    ok(&Deleted::of(id))
}

/// Creates a user in an organization.
#[utoipa::path(post, path = "/v1/users", tag = "organizations",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn create_user(state: &AdminState, call: Call) -> Reply {
    let new = call.json::<CreateUser>()?.validated()?;
    created(&state.store.create_user(&new).await?)
}

/// Lists users, oldest first.
#[utoipa::path(get, path = "/v1/users", tag = "organizations",
    params(OrganizationFilter, PageParams),
    responses(
        (status = 200, description = "A page of users", body = Page<User>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_users(state: &AdminState, call: Call) -> Reply {
    let organization = OrganizationFilter::read(&call.query)?;
    ok(&state.store.list_users(organization, &PageParams::read(&call.query)?).await?)
}

/// Reads a user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "organizations",
    params(IdParam),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn get_user(state: &AdminState, call: Call) -> Reply {
    ok(&state.store.get_user(call.id()?).await?)
}

/// Changes a user's email or archives the user.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "organizations",
    params(IdParam),
    request_body = PatchUser,
    responses(
        (status = 200, description = "The user as changed", body = User),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn update_user(state: &AdminState, call: Call) -> Reply {
    let patch = call.json::<PatchUser>()?.validated()?;
    ok(&state.store.update_user(call.id()?, &patch).await?)
}

/// Deletes a user with their keys and budgets; refused (409) while cost records refer to
/// them: archive instead.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "organizations",
    params(IdParam),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
pub async fn delete_user(state: &AdminState, call: Call) -> Reply {
    let id = call.id()?;
    state.store.delete_user(id).await?;
    ok(&Deleted::of(id))
}

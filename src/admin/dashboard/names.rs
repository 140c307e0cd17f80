//! The names a dashboard page shows for the ids it reads: organizations, projects and
//! users, each read once per page.

use std::collections::HashMap;

use uuid::Uuid;

use super::super::{AdminError, AdminState};
use crate::store::{GroupBy, Scope, StoreError};

/// Names of organizations, projects and users, each read once per page.
pub struct Names<'a> {
    state: &'a AdminState,
    known: HashMap<Uuid, String>,
    /// The organization of each project and user read.
    organization: HashMap<Uuid, Uuid>,
    qualified: HashMap<Uuid, String>,
}

impl<'a> Names<'a> {
    pub fn new(state: &'a AdminState) -> Names<'a> {
        Names { state, known: HashMap::new(), organization: HashMap::new(), qualified: HashMap::new() }
    }

    /// The name of a scope entity (its id when it no longer exists).
    pub async fn of(&mut self, scope: Scope, id: Uuid) -> Result<String, AdminError> {
        if let Some(name) = self.known.get(&id) {
            return Ok(name.clone());
        }
        let store = &self.state.store;
        let found = match scope {
            Scope::Organization => store.get_organization(id).await.map(|o| (o.name, None)),
            Scope::Project => store.get_project(id).await.map(|p| (p.name, Some(p.organization_id))),
            Scope::User => store.get_user(id).await.map(|u| (u.external_id, Some(u.organization_id))),
        };
        let name = match found {
            Ok((name, organization)) => {
                if let Some(org) = organization {
                    self.organization.insert(id, org);
                }
                name
            }
            Err(StoreError::NotFound(_)) => id.to_string(),
            Err(e) => return Err(e.into()),
        };
        self.known.insert(id, name.clone());
        Ok(name)
    }

    /// A project's or user's name after its organization's ("acme / web"), as names are
    /// unique only within an organization; an organization's own name.
    pub async fn qualified(&mut self, scope: Scope, id: Uuid) -> Result<String, AdminError> {
        if let Some(done) = self.qualified.get(&id) {
            return Ok(done.clone());
        }
        let name = self.of(scope, id).await?;
        let qualified = match self.organization.get(&id).copied() {
            Some(org) => format!("{} / {name}", self.of(Scope::Organization, org).await?),
            None => name,
        };
        self.qualified.insert(id, qualified.clone());
        Ok(qualified)
    }

    /// How a group's key reads: the entity's name for ids, the key itself otherwise.
    pub async fn group(&mut self, group_by: GroupBy, key: Option<&str>) -> Result<String, AdminError> {
        let Some(key) = key else { return Ok("(none)".to_owned()) };
        let scope = match group_by {
            GroupBy::Organization => Scope::Organization,
            GroupBy::Project => Scope::Project,
            GroupBy::User => Scope::User,
            _ => return Ok(key.to_owned()),
        };
        match Uuid::parse_str(key) {
            Ok(id) => self.qualified(scope, id).await,
            Err(_) => Ok(key.to_owned()),
        }
    }
}

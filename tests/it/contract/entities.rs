//! Contract: organizations, projects, users, keys, budgets, alert configs and alerts:
//! create/get/list/patch/delete, paging, uniqueness, cascades, RESTRICT on history, and
//! the admin change counter every write moves.

use chrono::{Duration, Utc};
use tollgate::identity::hash_key;
use tollgate::store::{BudgetPatch, PageRequest, Patch, Scope, StoreError};
use tollgate::window::Period;
use uuid::Uuid;

use crate::contract::contract_tests;
use crate::factory::{cost_record, dec, Factory};

contract_tests!(
    named_entities_round_trip_page_and_archive,
    uniqueness_and_missing_owners_are_typed_errors,
    keys_resolve_to_identities_and_revoke_once,
    configuration_cascades_and_history_restricts,
    budgets_and_alert_configs_round_trip,
    an_alert_fires_once_per_config_and_window,
    a_pending_delivery_goes_to_one_claimant,
    every_admin_write_moves_the_change_counter,
);

async fn named_entities_round_trip_page_and_archive(f: Factory) {
    let s = &f.store;
    let orgs = [f.organization().await, f.organization().await, f.organization().await];
    assert_eq!(s.get_organization(orgs[1].id).await.unwrap(), orgs[1]);
    let first = s.list_organizations(&PageRequest { cursor: None, limit: 2 }).await.unwrap();
    assert_eq!(first.data, orgs[..2].to_vec());
    let cursor = first.next_cursor.map(|c| Uuid::parse_str(&c).unwrap());
    let rest = s.list_organizations(&PageRequest { cursor, limit: 2 }).await.unwrap();
    assert_eq!(rest.data, orgs[2..].to_vec());
    assert_eq!(rest.next_cursor, None);

    let renamed = s
        .update_organization(orgs[0].id, &Patch { name: Some("renamed".into()), ..Patch::default() })
        .await
        .unwrap();
    assert_eq!(renamed.name, "renamed");
    let archive = Patch { archived: Some(true), ..Patch::default() };
    let archived = s.update_organization(orgs[0].id, &archive).await.unwrap();
    let first_time = archived.archived_at.unwrap();
    // Archiving again keeps the first archive time; unarchiving clears it.
    assert_eq!(s.update_organization(orgs[0].id, &archive).await.unwrap().archived_at, Some(first_time));
    let back = s.update_organization(orgs[0].id, &Patch { archived: Some(false), ..Patch::default() }).await;
    assert_eq!(back.unwrap().archived_at, None);

    let project = f.project(&orgs[0]).name("web").create().await;
    let other = f.project(&orgs[1]).create().await;
    let listed = s.list_projects(Some(orgs[0].id), &PageRequest::default()).await.unwrap();
    assert_eq!(listed.data, vec![project.clone()]);
    assert_eq!(s.list_projects(None, &PageRequest::default()).await.unwrap().data, vec![project, other]);

    let user = f.user(&orgs[0]).email("a@example.com").create().await;
    assert_eq!(user.email.as_deref(), Some("a@example.com"));
    let cleared = s.update_user(user.id, &Patch { email: Some(None), ..Patch::default() }).await.unwrap();
    assert_eq!(cleared.email, None);
    assert_eq!(cleared.external_id, user.external_id);
    assert_eq!(s.list_users(Some(orgs[1].id), &PageRequest::default()).await.unwrap().data, vec![]);
}

async fn uniqueness_and_missing_owners_are_typed_errors(f: Factory) {
    let s = &f.store;
    let org = f.organization().await;
    assert!(matches!(s.create_organization(&org.name).await, Err(StoreError::Conflict(_))));
    f.project(&org).name("web").create().await;
    assert!(matches!(s.create_project(org.id, "web").await, Err(StoreError::Conflict(_))));
    let user = f.user(&org).external_id("alice").create().await;
    let again = f.user(&org).external_id("alice").new_user();
    assert!(matches!(s.create_user(&again).await, Err(StoreError::Conflict(_))));
    let missing = Uuid::now_v7();
    assert!(matches!(s.create_project(missing, "x").await, Err(StoreError::NotFound("organization"))));
    assert!(matches!(s.get_user(missing).await, Err(StoreError::NotFound("user"))));
    assert!(matches!(s.delete_project(missing).await, Err(StoreError::NotFound("project"))));
    assert!(matches!(s.update_user(missing, &Patch::default()).await, Err(StoreError::NotFound("user"))));
    assert!(matches!(
        s.create_budget(Scope::User, missing, dec("1"), Period::Daily, true).await,
        Err(StoreError::NotFound("user"))
    ));
    // The store refuses a budget limit of zero whatever the API checks first.
    assert!(s.create_budget(Scope::User, user.id, dec("0"), Period::Daily, true).await.is_err());
}

async fn keys_resolve_to_identities_and_revoke_once(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    let (key, plaintext) =
        f.key(&owner.user, &owner.project).expires_at(Utc::now() + Duration::days(1)).create().await;
    assert!(plaintext.starts_with("tg_"));
    assert!(plaintext.starts_with(&key.prefix));
    let who = s.identity_by_key_hash(&hash_key(&plaintext)).await.unwrap().unwrap();
    assert_eq!(
        (who.organization_id, who.project_id, who.user_id),
        (owner.org.id, owner.project.id, owner.user.id)
    );
    assert_eq!(who.api_key_id, Some(key.id));
    assert_eq!(who.key_hash, Some(hash_key(&plaintext)));
    assert!(!who.revoked && !who.archived);
    assert!(who.expires_at.is_some());
    assert_eq!(s.identity_by_key_hash(&hash_key("tg_unknown")).await.unwrap(), None);

    // A user and a project of different organizations cannot share a key.
    let stranger = f.owner().await;
    let cross = f.key(&owner.user, &stranger.project).try_create().await;
    assert!(matches!(cross, Err(StoreError::Invalid(_))), "{cross:?}");

    let revoked = s.revoke_key(key.id).await.unwrap();
    let first = revoked.revoked_at.unwrap();
    assert_eq!(s.revoke_key(key.id).await.unwrap().revoked_at, Some(first));
    assert!(s.identity_by_key_hash(&hash_key(&plaintext)).await.unwrap().unwrap().revoked);
    assert_eq!(s.list_keys(Some(owner.user.id), &PageRequest::default()).await.unwrap().data.len(), 1);

    // Headers mode: by user id or external id, within the project's organization only.
    let by_id = s.identity_by_headers(&owner.user.id.to_string(), owner.project.id).await.unwrap().unwrap();
    let by_external =
        s.identity_by_headers(&owner.user.external_id, owner.project.id).await.unwrap().unwrap();
    assert_eq!(by_id.user_id, owner.user.id);
    assert_eq!(by_external.user_id, owner.user.id);
    assert_eq!(by_id.api_key_id, None);
    assert_eq!(s.identity_by_headers(&owner.user.external_id, stranger.project.id).await.unwrap(), None);
    s.update_project(owner.project.id, &Patch { archived: Some(true), ..Patch::default() }).await.unwrap();
    assert!(
        s.identity_by_headers(&owner.user.external_id, owner.project.id).await.unwrap().unwrap().archived
    );
}

async fn configuration_cascades_and_history_restricts(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    let (key, _) = f.key(&owner.user, &owner.project).create().await;
    let budget = f.budget(Scope::Project, owner.project.id).create().await;
    let config = f.alert_config(&budget).create().await;
    let user_budget = f.budget(Scope::User, owner.user.id).create().await;
    // Without history, deleting the project takes its keys, budgets and alert configs.
    s.delete_project(owner.project.id).await.unwrap();
    assert!(matches!(s.get_key(key.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.get_budget(budget.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.get_alert_config(config.id).await, Err(StoreError::NotFound(_))));
    assert!(s.get_budget(user_budget.id).await.is_ok(), "another scope's budget went too");

    // With history, every owner refuses deletion and the records stay.
    let owner = f.owner().await;
    let (key, _) = f.key(&owner.user, &owner.project).create().await;
    let mut record = cost_record(&owner, "0.5");
    record.api_key_id = Some(key.id);
    s.insert_cost_records(&[record]).await.unwrap();
    for result in [
        s.delete_user(owner.user.id).await,
        s.delete_project(owner.project.id).await,
        s.delete_organization(owner.org.id).await,
    ] {
        match result {
            Err(StoreError::Conflict(message)) => assert!(message.contains("archive"), "{message}"),
            other => panic!("deleting an owner with history: {other:?}"),
        }
    }
    assert!(s.get_user(owner.user.id).await.is_ok());
    assert!(s.get_key(key.id).await.is_ok());

    // A record whose owner does not exist is refused for good (not retried forever).
    let mut orphan = cost_record(&owner, "1");
    orphan.user_id = Uuid::now_v7();
    let err = s.insert_cost_records(&[orphan]).await.unwrap_err();
    assert!(err.refuses_data(), "{err}");
}

async fn budgets_and_alert_configs_round_trip(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    let org_budget = f.budget(Scope::Organization, owner.org.id).limit("200").create().await;
    let project_budget =
        f.budget(Scope::Project, owner.project.id).limit("0.000001").period(Period::Daily).create().await;
    let user_budget =
        f.budget(Scope::User, owner.user.id).limit("5.5").period(Period::Total).soft().create().await;
    assert_eq!(project_budget.limit_usd, dec("0.000001"));
    assert_eq!(
        (user_budget.scope, user_budget.hard, user_budget.period),
        (Scope::User, false, Period::Total)
    );
    for b in [&org_budget, &project_budget, &user_budget] {
        assert_eq!(&s.get_budget(b.id).await.unwrap(), b);
        assert_eq!(s.budgets_of(b.scope, b.scope_id).await.unwrap(), vec![b.clone()]);
    }
    let all = s.list_budgets(None, &PageRequest::default()).await.unwrap();
    assert_eq!(all.data.len(), 3);
    let page = s.list_budgets(None, &PageRequest { cursor: None, limit: 2 }).await.unwrap();
    assert_eq!(page.data.len(), 2);
    assert!(page.next_cursor.is_some());
    assert_eq!(
        s.list_budgets(Some(owner.user.id), &PageRequest::default()).await.unwrap().data,
        vec![user_budget.clone()]
    );

    let patch = BudgetPatch { limit_usd: Some(dec("7.25")), hard: Some(true), ..BudgetPatch::default() };
    let changed = s.update_budget(user_budget.id, &patch).await.unwrap();
    assert_eq!((changed.limit_usd, changed.hard, changed.period), (dec("7.25"), true, Period::Total));

    let c1 = f.alert_config(&org_budget).threshold(50).webhook("http://127.0.0.1:9/hook").create().await;
    let c2 = f.alert_config(&user_budget).threshold(1000).create().await;
    assert_eq!(c1.webhook_url.as_deref(), Some("http://127.0.0.1:9/hook"));
    assert_eq!(s.get_alert_config(c2.id).await.unwrap(), c2);
    assert_eq!(s.list_alert_configs(Some(org_budget.id)).await.unwrap(), vec![c1.clone()]);
    assert_eq!(s.list_alert_configs(None).await.unwrap().len(), 2);
    s.delete_alert_config(c2.id).await.unwrap();
    assert!(matches!(s.delete_alert_config(c2.id).await, Err(StoreError::NotFound(_))));

    let deleted = s.delete_budget(org_budget.id).await.unwrap();
    assert_eq!(deleted.id, org_budget.id);
    assert_eq!(s.list_alert_configs(None).await.unwrap(), vec![], "alert config outlived its budget");
}

async fn an_alert_fires_once_per_config_and_window(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    let budget = f.budget(Scope::Project, owner.project.id).limit("10").period(Period::Daily).create().await;
    let hooked = f.alert_config(&budget).threshold(50).webhook("http://127.0.0.1:9/hook").create().await;
    let quiet = f.alert_config(&budget).threshold(80).create().await;
    let day = Period::Daily.start(Utc::now());
    let alert = s.insert_alert(&hooked, day, dec("10"), dec("5.0000001")).await.unwrap().unwrap();
    assert_eq!((alert.delivery_status.as_str(), alert.attempts), ("pending", 0));
    assert_eq!(alert.spent_usd, dec("5.0000001"));
    assert_eq!(alert.budget_id, budget.id);
    assert!(s.insert_alert(&hooked, day, dec("10"), dec("6")).await.unwrap().is_none(), "fired twice");
    let next_day = s.insert_alert(&hooked, day + Duration::days(1), dec("10"), dec("5")).await.unwrap();
    assert!(next_day.is_some());
    let silent = s.insert_alert(&quiet, day, dec("10"), dec("8")).await.unwrap().unwrap();
    assert_eq!(silent.delivery_status, "no_webhook");

    assert_eq!(s.pending_alerts().await.unwrap().len(), 2);
    s.record_delivery(alert.id, "delivered", 2, None).await.unwrap();
    let delivered = s.get_alert(alert.id).await.unwrap();
    assert_eq!((delivered.delivery_status.as_str(), delivered.attempts), ("delivered", 2));
    assert!(delivered.delivered_at.is_some());
    let next_day = next_day.unwrap();
    s.record_delivery(next_day.id, "failed", 4, Some("webhook answered 500")).await.unwrap();
    assert_eq!(s.pending_alerts().await.unwrap(), vec![]);
    let listed = s.list_alerts(Some(budget.id), &PageRequest::default()).await.unwrap().data;
    let ids: Vec<_> = listed.iter().map(|a| a.id).collect();
    assert_eq!(ids, [alert.id, next_day.id, silent.id], "oldest first");
    // Paged by id like every list.
    let first = s.list_alerts(None, &PageRequest { cursor: None, limit: 2 }).await.unwrap();
    assert_eq!(first.data.iter().map(|a| a.id).collect::<Vec<_>>(), [alert.id, next_day.id]);
    let cursor = first.next_cursor.as_deref().map(|c| uuid::Uuid::parse_str(c).unwrap());
    let rest = s.list_alerts(None, &PageRequest { cursor, limit: 2 }).await.unwrap();
    assert_eq!(
        (rest.data.iter().map(|a| a.id).collect::<Vec<_>>(), rest.next_cursor),
        (vec![silent.id], None)
    );
    assert_eq!(listed[1].last_error.as_deref(), Some("webhook answered 500"));
    // The dashboard's read: the newest of some configs, newest first, at most as many as asked.
    let latest = |configs: Vec<uuid::Uuid>, limit| async move {
        s.latest_alerts(&configs, limit).await.unwrap().into_iter().map(|a| a.id).collect::<Vec<_>>()
    };
    assert_eq!(latest(vec![hooked.id, quiet.id], 2).await, [silent.id, next_day.id]);
    assert_eq!(latest(vec![hooked.id], 20).await, [next_day.id, alert.id]);
    assert!(latest(vec![], 20).await.is_empty());
}

async fn a_pending_delivery_goes_to_one_claimant(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    let budget = f.budget(Scope::Project, owner.project.id).create().await;
    let hooked = f.alert_config(&budget).webhook("http://127.0.0.1:9/hook").create().await;
    let day = Period::Daily.start(Utc::now());
    let alert = s.insert_alert(&hooked, day, dec("10"), dec("9")).await.unwrap().unwrap();
    // The replica that fired it delivers it: nobody else may take it.
    assert_eq!(s.claim_pending_alerts().await.unwrap(), vec![]);
    // Its claim ran out (that replica stopped): two claimants at once, one gets it.
    let expire = "UPDATE ai_budget_alerts SET claimed_until = '2000-01-01T00:00:00.000000Z'";
    f.execute(expire).await;
    let (a, b) = tokio::join!(s.claim_pending_alerts(), s.claim_pending_alerts());
    let claimed: Vec<_> = [a.unwrap(), b.unwrap()].concat().into_iter().map(|x| x.id).collect();
    assert_eq!(claimed, vec![alert.id]);
    assert_eq!(s.claim_pending_alerts().await.unwrap(), vec![], "claimed twice");
    // A delivered alert is never claimed again.
    s.record_delivery(alert.id, "delivered", 1, None).await.unwrap();
    f.execute(expire).await;
    assert_eq!(s.claim_pending_alerts().await.unwrap(), vec![]);
}

async fn every_admin_write_moves_the_change_counter(f: Factory) {
    let s = &f.store;
    let mut seen = s.admin_version().await.unwrap();
    let mut moved = |now: i64, what: &str| {
        assert!(now > seen, "{what} did not move the admin change counter");
        seen = now;
    };
    let owner = f.owner().await;
    moved(s.admin_version().await.unwrap(), "creating entities");
    let (key, _) = f.key(&owner.user, &owner.project).create().await;
    moved(s.admin_version().await.unwrap(), "creating a key");
    s.revoke_key(key.id).await.unwrap();
    moved(s.admin_version().await.unwrap(), "revoking a key");
    let budget = f.budget(Scope::User, owner.user.id).create().await;
    moved(s.admin_version().await.unwrap(), "creating a budget");
    s.update_budget(budget.id, &BudgetPatch { limit_usd: Some(dec("3")), ..BudgetPatch::default() })
        .await
        .unwrap();
    moved(s.admin_version().await.unwrap(), "changing a budget");
    let config = f.alert_config(&budget).create().await;
    moved(s.admin_version().await.unwrap(), "creating an alert config");
    s.delete_alert_config(config.id).await.unwrap();
    moved(s.admin_version().await.unwrap(), "deleting an alert config");
    s.delete_budget(budget.id).await.unwrap();
    moved(s.admin_version().await.unwrap(), "deleting a budget");
    s.update_user(owner.user.id, &Patch { archived: Some(true), ..Patch::default() }).await.unwrap();
    moved(s.admin_version().await.unwrap(), "archiving a user");
    s.delete_user(owner.user.id).await.unwrap();
    moved(s.admin_version().await.unwrap(), "deleting a user");
}

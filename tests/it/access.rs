//! Keys: admin keys do everything in their account, widget keys only open tickets, and an id
//! from another account behaves exactly like one that does not exist.

use integration_tests::{Engine, TestApp, TestSmtp, error_code, on_both_engines};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(
    keys_are_required_and_widget_keys_only_open_tickets,
    another_accounts_ids_behave_as_missing
);

async fn keys_are_required_and_widget_keys_only_open_tickets(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow_id, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;

    for key in [None, Some("tk_admin_not-a-real-key"), Some("")] {
        let body = app.gql(key, FLOWS, json!({})).await;
        assert_eq!(
            error_code(&body),
            "UNAUTHENTICATED",
            "key {key:?}: {body:#}"
        );
        let body = app
            .gql(
                key,
                OPEN_TICKET,
                json!({ "input": { "stepId": step_id, "message": "hi" } }),
            )
            .await;
        assert_eq!(
            error_code(&body),
            "UNAUTHENTICATED",
            "key {key:?}: {body:#}"
        );
    }

    let widget = Some(app.widget_key.as_str());
    for (query, variables) in [
        (FLOWS, json!({})),
        (TOPIC_TAGS, json!({})),
        (RULES, json!({})),
        (AGENTS, json!({})),
        (TICKETS, json!({})),
        (FLOW, json!({ "id": flow_id })),
        (CREATE_FLOW, json!({ "name": "x" })),
        (DELETE_FLOW, json!({ "id": flow_id })),
        (
            CREATE_RULE,
            json!({ "tag": "*", "emails": ["a@example.com"] }),
        ),
        (
            CREATE_AGENT,
            json!({ "name": "a", "email": "a@example.com" }),
        ),
        (DELETE_STEP, json!({ "id": step_id })),
    ] {
        let body = app.gql(widget, query, variables).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body:#}");
    }
    // What the widget may do.
    let opened = open_ticket(&app, &app.widget_key, &step_id, "Merhaba").await;
    assert_eq!(opened["confirmationMessage"], "Talep alındı");
    // And nothing the refused calls would have changed did change.
    let flows = app.admin(FLOWS, json!({})).await;
    assert_eq!(flows["flows"].as_array().unwrap().len(), 1);
    assert_eq!(flows["flows"][0]["steps"].as_array().unwrap().len(), 2);
    assert!(
        app.admin(RULES, json!({})).await["routingRules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

async fn another_accounts_ids_behave_as_missing(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow_id, step_id) =
        flow_with_ticket_step(&app, "Destek", "offline_message", &["fwd@example.com"]).await;
    let rule = app
        .admin(
            CREATE_RULE,
            json!({ "tag": "*", "emails": ["a@example.com"] }),
        )
        .await;
    let rule_id = rule["createRoutingRule"]["id"].as_str().unwrap().to_owned();
    let ticket = open_ticket(&app, &app.widget_key, &step_id, "hi").await;
    let ticket_id = ticket["ticket"]["id"].as_str().unwrap().to_owned();

    let (other_admin, other_widget) = app.other_account().await;
    let other = Some(other_admin.as_str());
    let missing = "00000000-0000-7000-8000-000000000000";

    for id in [flow_id.as_str(), missing, "not-even-a-uuid"] {
        let body = app.gql(other, FLOW, json!({ "id": id })).await;
        assert!(
            body["errors"].is_null() && body["data"]["flow"].is_null(),
            "{body:#}"
        );
    }
    let body = app.gql(other, TICKET, json!({ "id": ticket_id })).await;
    assert!(
        body["errors"].is_null() && body["data"]["ticket"].is_null(),
        "{body:#}"
    );

    let step = json!({ "message": { "text": "hijack" } });
    for (query, variables) in [
        (DELETE_FLOW, json!({ "id": flow_id })),
        (ADD_STEP, json!({ "flowId": flow_id, "step": step })),
        (UPDATE_STEP, json!({ "id": step_id, "step": step })),
        (DELETE_STEP, json!({ "id": step_id })),
        (
            UPDATE_RULE,
            json!({ "id": rule_id, "tag": "*", "emails": ["evil@example.com"] }),
        ),
        (DELETE_RULE, json!({ "id": rule_id })),
        (DELETE_FLOW, json!({ "id": missing })),
    ] {
        let body = app.gql(other, query, variables).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{query}: {body:#}");
    }
    let body = app
        .gql(
            Some(&other_widget),
            OPEN_TICKET,
            json!({ "input": { "stepId": step_id, "message": "hi" } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");

    // The other account sees none of it, and ours is untouched.
    let other_view = app.gql(other, FLOWS, json!({})).await;
    assert_eq!(other_view["data"]["flows"], json!([]));
    let other_tags = app.gql(other, TOPIC_TAGS, json!({})).await;
    assert_eq!(other_tags["data"]["topicTags"], json!([]));
    let ours = app.admin(FLOWS, json!({})).await;
    assert_eq!(ours["flows"][0]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.admin(RULES, json!({})).await["routingRules"][0]["emails"],
        json!(["a@example.com"])
    );
    app.stop().await;
}

on_both_engines!(keys_are_created_listed_and_revoked);

const CREATE_KEY: &str = "mutation($kind: ApiKeyKind!) { createApiKey(kind: $kind) { secret key { id kind prefix createdAt lastUsedAt revokedAt } } }";
const KEYS: &str = "{ apiKeys { id kind prefix lastUsedAt revokedAt } }";
const REVOKE_KEY: &str = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }";

async fn keys_are_created_listed_and_revoked(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;

    let created = app.admin(CREATE_KEY, json!({ "kind": "WIDGET" })).await["createApiKey"].clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let key_id = created["key"]["id"].clone();
    assert!(
        secret.starts_with("tk_widget_") && secret.len() == "tk_widget_".len() + 43,
        "256 random bits"
    );
    assert!(secret.starts_with(created["key"]["prefix"].as_str().unwrap()));
    assert!(created["key"]["lastUsedAt"].is_null());

    open_ticket(&app, &secret, &step_id, "from the new key").await;
    let keys = app.admin(KEYS, json!({})).await["apiKeys"].clone();
    let listed = keys.as_array().unwrap();
    assert_eq!(
        listed.len(),
        3,
        "the first admin and widget keys and the new one"
    );
    let new = listed.iter().find(|k| k["id"] == key_id).unwrap();
    assert!(new["lastUsedAt"].is_string(), "{new:#}");
    assert!(
        !keys.to_string().contains(&secret[10..]),
        "secrets are never listed"
    );

    // Another account cannot revoke it; its own admin can, and it fails at once.
    let (other_admin, _) = app.other_account().await;
    let body = app
        .gql(Some(&other_admin), REVOKE_KEY, json!({ "id": key_id }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(Some(&app.widget_key), REVOKE_KEY, json!({ "id": key_id }))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let revoked = app.admin(REVOKE_KEY, json!({ "id": key_id })).await;
    assert!(revoked["revokeApiKey"]["revokedAt"].is_string());
    let refused = app
        .gql(
            Some(&secret),
            OPEN_TICKET,
            json!({ "input": { "stepId": step_id, "message": "again" } }),
        )
        .await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED");
    app.stop().await;
}

mod a_key_revoked_through_one_api_process_stops_working_on_the_others {
    /// Several API processes share a database only on PostgreSQL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_key_revoked_through_one_api_process_stops_working_on_the_others().await
    }
}

/// A new widget key on a PostgreSQL app whose processes trust a key they resolved for far
/// longer than a test waits, so only what the test is about can make them forget it in time;
/// with a ticket step to open tickets at: (app, step id, the key's secret, its id). `None`
/// without PostgreSQL.
async fn widget_key_trusted_for_long(
    smtp: &TestSmtp,
) -> Option<(TestApp, String, String, serde_json::Value)> {
    const CACHE: std::time::Duration = std::time::Duration::from_secs(120);
    let app = TestApp::spawn_with(Engine::Postgres, smtp, |c| c.key_cache_ttl = CACHE).await?;
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    let created = app.admin(CREATE_KEY, json!({ "kind": "WIDGET" })).await;
    let secret = created["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = created["createApiKey"]["key"]["id"].clone();
    Some((app, step_id, secret, key_id))
}

async fn a_key_revoked_through_one_api_process_stops_working_on_the_others() {
    let smtp = TestSmtp::start();
    let Some((app, step_id, secret, key_id)) = widget_key_trusted_for_long(&smtp).await else {
        return;
    };
    let (other_url, other) = app.start_another_api().await;
    let open_on_other = || {
        app.gql_at(
            &other_url,
            Some(&secret),
            OPEN_TICKET,
            json!({ "input": { "stepId": step_id, "message": "hi" } }),
        )
    };
    // The other process now knows the key.
    let opened = open_on_other().await;
    assert!(opened["errors"].is_null(), "{opened:#}");

    app.admin(REVOKE_KEY, json!({ "id": key_id })).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = open_on_other().await;
        if !body["errors"].is_null() {
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body:#}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other API process still accepts the revoked key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    other.stop().await;
    app.stop().await;
}

mod a_process_that_may_have_missed_a_revocation_forgets_its_cached_keys {
    /// The relay of revocations between processes exists only on PostgreSQL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_process_that_may_have_missed_a_revocation_forgets_its_cached_keys().await
    }
}

async fn a_process_that_may_have_missed_a_revocation_forgets_its_cached_keys() {
    let smtp = TestSmtp::start();
    let Some((app, step_id, secret, _)) = widget_key_trusted_for_long(&smtp).await else {
        return;
    };
    let open = || {
        app.gql(
            Some(&secret),
            OPEN_TICKET,
            json!({ "input": { "stepId": step_id, "message": "hi" } }),
        )
    };
    let opened = open().await;
    assert!(opened["errors"].is_null(), "{opened:#}");
    // Revoked without its notification (as if sent while the listener was away), then the
    // listener's connection drops: the process cannot know what it missed, so it forgets.
    app.db
        .execute_unprepared("UPDATE api_keys SET revoked_at = now() WHERE kind = 'widget'")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        app.db
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query ILIKE 'LISTEN%{}%' \
                 AND pid <> pg_backend_pid()",
                domain::infra::events::CHANNEL
            ))
            .await
            .unwrap();
        let body = open().await;
        if !body["errors"].is_null() {
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body:#}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process still trusts a key whose revocation it may have missed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop().await;
}

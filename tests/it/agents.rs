//! Agents as routing recipients: rules name agents by reference, so an agent's new address
//! applies to every rule at once and a deleted agent leaves the rules that named them; the
//! routing form reads its e-mail list in one query; older rules' agent addresses are turned
//! into references by a migration.

use std::time::Duration;

use chrono::Utc;
use integration_tests::{
    Engine, TestApp, TestDb, TestSmtp, error_code, error_field, on_both_engines,
};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(
    rules_follow_their_agents,
    a_migration_turns_agents_addresses_into_references
);

const RULE_WITH_AGENTS: &str = "mutation($tag: String!, $agentIds: [ID!], $emails: [String!]) {
  createRoutingRule(input: { tag: $tag, agentIds: $agentIds, emails: $emails }) {
    id agents { id } emails recipients hasRecipients
  }
}";

const RULES: &str =
    "{ routingRules { id tag agents { id name email } emails recipients hasRecipients } }";

const UPDATE_AGENT: &str = "mutation($id: ID!, $name: String, $email: String) {
  updateAgent(id: $id, input: { name: $name, email: $email }) { id name email }
}";

const DELETE_AGENT: &str = "mutation($id: ID!) { deleteAgent(id: $id) }";

const OPTIONS: &str = "{ recipientOptions { email agentId name } }";

async fn agent(app: &TestApp, name: &str, email: &str) -> String {
    let created = app
        .admin(CREATE_AGENT, json!({ "name": name, "email": email }))
        .await;
    created["createAgent"]["id"].as_str().unwrap().to_owned()
}

fn rule<'a>(rules: &'a Value, id: &str) -> &'a Value {
    rules["routingRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("rule {id} missing: {rules:#}"))
}

async fn rules_follow_their_agents(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) = flow_with_ticket_step(&app, "Destek", "billing", &[]).await;
    let ada = agent(&app, "Ada", "ada@example.com").await;
    let bo = agent(&app, "Bo", "bo@example.com").await;
    let only_ada = app
        .admin(
            RULE_WITH_AGENTS,
            json!({ "tag": "billing", "agentIds": [ada] }),
        )
        .await["createRoutingRule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = app
        .admin(
            RULE_WITH_AGENTS,
            json!({ "tag": "*", "agentIds": [ada, bo, ada],
                    "emails": ["desk@example.com", "ADA@example.com"] }),
        )
        .await;
    let everyone = created["createRoutingRule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Agents first, in the rule's order, each once; a typed copy of an agent's address too.
    assert_eq!(
        created["createRoutingRule"]["recipients"],
        json!(["ada@example.com", "bo@example.com", "desk@example.com"]),
        "{created:#}"
    );
    assert_eq!(
        created["createRoutingRule"]["agents"],
        json!([{ "id": ada }, { "id": bo }])
    );

    // The routing form's list: agents by name, then typed addresses no agent has.
    let options = app.admin(OPTIONS, json!({})).await;
    assert_eq!(
        options["recipientOptions"],
        json!([
            { "email": "ada@example.com", "agentId": ada, "name": "Ada" },
            { "email": "bo@example.com", "agentId": bo, "name": "Bo" },
            { "email": "desk@example.com", "agentId": null, "name": null },
        ])
    );

    // A new address applies to every rule at once, and the worker mails it; an address typed
    // in a rule stays typed, so the old one is mailed too.
    app.admin(
        UPDATE_AGENT,
        json!({ "id": ada, "email": "ada.new@example.com" }),
    )
    .await;
    let rules = app.admin(RULES, json!({})).await;
    assert_eq!(
        rule(&rules, &only_ada)["recipients"],
        json!(["ada.new@example.com"])
    );
    let opened = open_ticket(&app, &app.widget_key, &step, "hi").await;
    let id = opened["ticket"]["id"].as_str().unwrap().to_owned();
    let ticket = app
        .wait_for(Duration::from_secs(20), TICKET, json!({ "id": id }), |d| {
            d["ticket"]["deliveries"]
                .as_array()
                .is_some_and(|d| d.len() >= 4)
        })
        .await;
    let mut mailed: Vec<String> = ticket["ticket"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["recipient"].as_str().unwrap().to_owned())
        .collect();
    mailed.sort();
    assert_eq!(
        mailed,
        [
            "ADA@example.com",
            "ada.new@example.com",
            "bo@example.com",
            "desk@example.com"
        ]
    );

    // A deleted agent leaves every rule; a rule left with no one says so.
    app.admin(DELETE_AGENT, json!({ "id": ada })).await;
    let rules = app.admin(RULES, json!({})).await;
    assert_eq!(rule(&rules, &only_ada)["hasRecipients"], false, "{rules:#}");
    assert_eq!(rule(&rules, &only_ada)["recipients"], json!([]));
    assert_eq!(
        rule(&rules, &everyone)["agents"],
        json!([{ "id": bo, "name": "Bo", "email": "bo@example.com" }])
    );
    assert_eq!(rule(&rules, &everyone)["hasRecipients"], true);
    // Deliveries already planned keep the address they were planned for.
    let after = app.admin(TICKET, json!({ "id": id })).await;
    assert!(
        after["ticket"]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["recipient"] == "ada.new@example.com")
    );

    // Errors, each with its field; nothing is written.
    let (other_admin, _) = app.other_account().await;
    let theirs = app
        .admin_as(
            &other_admin,
            CREATE_AGENT,
            json!({ "name": "Eve", "email": "eve@example.com" }),
        )
        .await["createAgent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let too_many: Vec<String> = (0..50).map(|i| format!("a{i}@example.com")).collect();
    // Another account's agent, a deleted one, or no agent's id at all, is not found.
    for variables in [
        json!({ "tag": "x", "agentIds": [bo, theirs] }),
        json!({ "tag": "x", "agentIds": ["not-an-id"] }),
        json!({ "tag": "x", "agentIds": [ada] }),
    ] {
        let body = app
            .gql(Some(&app.admin_key), RULE_WITH_AGENTS, variables.clone())
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{variables}: {body:#}");
    }
    for (variables, field) in [
        (
            json!({ "tag": "x", "agentIds": [], "emails": [] }),
            "emails",
        ),
        (json!({ "tag": "x" }), "emails"),
        (
            json!({ "tag": "x", "agentIds": [bo], "emails": too_many }),
            "agentIds",
        ),
    ] {
        let body = app
            .gql(Some(&app.admin_key), RULE_WITH_AGENTS, variables.clone())
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{variables}: {body:#}");
        assert_eq!(error_field(&body), field, "{variables}: {body:#}");
    }
    let rules_now = app.admin(RULES, json!({})).await;
    assert_eq!(rules_now, rules, "a refused rule wrote something");
    let taken = app
        .gql(
            Some(&app.admin_key),
            UPDATE_AGENT,
            json!({ "id": bo, "email": "DESK@example.com" }),
        )
        .await;
    assert!(
        taken.get("errors").is_none(),
        "a typed address is no agent's: {taken:#}"
    );
    agent(&app, "Cy", "cy@example.com").await;
    let taken = app
        .gql(
            Some(&app.admin_key),
            UPDATE_AGENT,
            json!({ "id": bo, "email": "CY@example.com" }),
        )
        .await;
    assert_eq!(error_code(&taken), "BAD_USER_INPUT", "{taken:#}");
    assert_eq!(error_field(&taken), "email");
    // Another account's agent is not found, to read, change or delete.
    for (query, variables) in [
        (UPDATE_AGENT, json!({ "id": theirs, "name": "Mallory" })),
        (DELETE_AGENT, json!({ "id": theirs })),
        (DELETE_AGENT, json!({ "id": ada })),
    ] {
        let body = app.gql(Some(&app.admin_key), query, variables).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    }
    let still = app.admin_as(&other_admin, AGENTS, json!({})).await;
    assert_eq!(still["agents"][0]["name"], "Eve");
    app.stop().await;
}

/// Rules written before agents were references named them by address: the migration turns
/// each address of an agent of the rule's account (ignoring case) into a reference, keeps
/// other addresses typed, and touches no other account's rules.
async fn a_migration_turns_agents_addresses_into_references(engine: Engine) {
    use migration::MigratorTrait;

    let Some(test_db) = TestDb::create(engine).await else {
        return;
    };
    let config = domain::infra::config::DatabaseConfig {
        url: domain::infra::config::Secret::new(test_db.url.clone()),
        max_connections: 2,
    };
    let db = domain::infra::db::connect(&config).await.unwrap();
    // The schema as the release before references left it.
    migration::Migrator::up(&db, Some(16)).await.unwrap();
    let one = domain::keys::create_account(&db, "One").await.unwrap();
    let two = domain::keys::create_account(&db, "Two").await.unwrap();
    let ada = domain::agents::create_agent(&db, one.account_id, "Ada", "Ada@Example.com")
        .await
        .unwrap();
    let bo = domain::agents::create_agent(&db, one.account_id, "Bo", "bo@example.com")
        .await
        .unwrap();
    let old_rule = |account: Uuid, emails: &[&str]| entity::routing_rule::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account),
        tag: Set("*".into()),
        tag_key: Set("*".into()),
        emails: Set(emails
            .iter()
            .map(|e| (*e).to_owned())
            .collect::<Vec<_>>()
            .into()),
        created_at: Set(Utc::now()),
        locale: Set(None),
    };
    let mixed = old_rule(
        one.account_id,
        &[
            "desk@example.com",
            "bo@example.com",
            "ADA@example.com",
            "ada@example.com",
        ],
    )
    .insert(&db)
    .await
    .unwrap();
    let typed = old_rule(one.account_id, &["desk@example.com"])
        .insert(&db)
        .await
        .unwrap();
    // Another account typing the same address: not its agent, so it stays typed.
    let foreign = old_rule(two.account_id, &["ada@example.com"])
        .insert(&db)
        .await
        .unwrap();

    domain::infra::db::migrate(&db).await.unwrap();
    let read = |rule: entity::routing_rule::Model| {
        let db = db.clone();
        async move {
            let rule = entity::routing_rule::Entity::find_by_id(rule.id)
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            domain::rules::with_agents(&db, vec![rule])
                .await
                .unwrap()
                .remove(0)
        }
    };
    use sea_orm::EntityTrait;
    let mixed = read(mixed).await;
    assert_eq!(
        mixed.agents.iter().map(|a| a.id).collect::<Vec<_>>(),
        [bo.id, ada.id],
        "agents in the order the rule listed them, each once"
    );
    assert_eq!(*mixed.rule.emails, ["desk@example.com".to_owned()]);
    assert_eq!(
        mixed.addresses(),
        ["bo@example.com", "Ada@Example.com", "desk@example.com"]
    );
    let typed = read(typed).await;
    assert!(typed.agents.is_empty());
    assert_eq!(*typed.rule.emails, ["desk@example.com".to_owned()]);
    let foreign = read(foreign).await;
    assert!(foreign.agents.is_empty());
    assert_eq!(*foreign.rule.emails, ["ada@example.com".to_owned()]);
    db.close().await.ok();
    test_db.drop_database().await;
}

//! Tenant isolation, enumerated from the schema the code serves: every query and mutation is
//! called with another account's ids, so an operation added tomorrow is covered without anyone
//! listing it here.
//!
//! - With every id argument (also inside inputs, such as a step's `next`) set to an id of the
//!   other account, each operation answers `NOT_FOUND`, or `null` for the nullable single-object
//!   queries (`flow`, `ticket`, `conversation`), exactly as for an id that never existed.
//! - With one id of the other account among ids of the caller's own, the call is refused.
//! - Operations without id arguments return nothing of the other account.
//! - The widget key is `FORBIDDEN` on everything but the visitor operations.
//! - None of these calls changes a single row, in either account; the mutations without id
//!   arguments change nothing of the other account.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_graphql::parser::types::{
    BaseType, FieldDefinition, Type, TypeKind, TypeSystemDefinition,
};
use integration_tests::{Engine, Fault, TestApp, TestSmtp, on_both_engines};
use sea_orm::{FromQueryResult, JsonValue, Statement};
use serde_json::{Value, json};

use crate::ops::*;

/// What the public widget key may call: talking to chatbots, nothing else.
pub(crate) const VISITOR_OPERATIONS: [&str; 5] = [
    "openTicket",
    "startConversation",
    "sendVisitorMessage",
    "chooseOption",
    "conversation",
];

on_both_engines!(every_operation_keeps_accounts_apart);

/// One account's keys and every id it owns, as a client could learn them.
struct Account {
    admin: String,
    widget: String,
    ids: Vec<String>,
}

/// Fills an account with one of everything: a published flow with each kind of step, a
/// conversation waiting at a choice, rules, an agent, a spare key, and a ticket with one sent
/// and one failed delivery.
async fn populate(
    app: &TestApp,
    smtp: &TestSmtp,
    account_id: &str,
    admin: &str,
    widget: &str,
    label: &str,
) -> Account {
    let call = |key: &str, query: &str, variables: Value| {
        let key = key.to_owned();
        let query = query.to_owned();
        async move {
            let body = app.gql(Some(&key), &query, variables).await;
            assert!(body.get("errors").is_none(), "{query}: {body:#}");
            body["data"].clone()
        }
    };
    let id = |v: &Value| v.as_str().unwrap().to_owned();
    let flow = id(&call(
        admin,
        CREATE_FLOW,
        json!({ "name": format!("{label} flow") }),
    )
    .await["createFlow"]["id"]);
    let add = |step: Value| {
        let flow = flow.clone();
        async move {
            id(
                &call(admin, ADD_STEP, json!({ "flowId": flow, "step": step })).await["addStep"]["id"],
            )
        }
    };
    add(json!({ "message": { "text": format!("{label} says hello") } })).await;
    let choice = add(json!({ "choice": { "text": "?", "options": [{ "label": "a" }] } })).await;
    let ticket_step = add(json!({ "ticket": {
        "topic": format!("{label}_topic"), "confirmationMessage": "ok",
        "forwardEmails": [format!("fwd-{label}@example.com")] } }))
    .await;
    let end = add(json!({ "end": { "text": "bye" } })).await;
    call(
        admin,
        UPDATE_STEP,
        json!({ "id": choice, "step": { "choice": { "text": "?", "options": [
            { "label": "ticket", "next": ticket_step }, { "label": "bye", "next": end }] } } }),
    )
    .await;
    call(admin, PUBLISH_FLOW, json!({ "id": flow })).await;
    call(
        widget,
        &start_conversation(),
        json!({ "input": { "flowId": flow } }),
    )
    .await;
    for (tag, email) in [
        (
            format!("{label}_topic"),
            format!("rule-{label}@example.com"),
        ),
        ("*".to_owned(), format!("fail-{label}@example.com")),
    ] {
        call(admin, CREATE_RULE, json!({ "tag": tag, "emails": [email] })).await;
    }
    smtp.fail_rcpt(&format!("fail-{label}@example.com"), Fault::Permanent, 1000);
    call(
        admin,
        CREATE_AGENT,
        json!({ "name": format!("{label} agent"), "email": format!("agent-{label}@example.com") }),
    )
    .await;
    call(
        admin,
        "mutation { createApiKey(kind: WIDGET) { key { id } } }",
        json!({}),
    )
    .await;
    // A webhook whose event never happens here: its id is probed, no request is ever made.
    call(
        admin,
        "mutation($u: String!) { createWebhook(input: { url: $u, events: [TICKET_UNROUTED] }) { webhook { id } } }",
        json!({ "u": format!("https://hooks.example.com/{label}") }),
    )
    .await;
    call(
        widget,
        OPEN_TICKET,
        json!({ "input": { "stepId": ticket_step, "message": format!("{label} needs help") } }),
    )
    .await;
    app.wait_for_as(
        admin,
        Duration::from_secs(20),
        "{ tickets { edges { node { deliveries { status } } } } }",
        json!({}),
        |d| {
            let text = d.to_string();
            text.contains("SENT") && text.contains("FAILED") && !text.contains("PENDING")
        },
    )
    .await;

    // Every id the account's own reads reveal.
    let everything = call(
        admin,
        "{ routingRules { id } agents { id } apiKeys { id }
           tickets { edges { node { id conversation { id } deliveries { id } } } } }",
        json!({}),
    )
    .await;
    let mut ids = BTreeSet::from([account_id.to_owned()]);
    collect_ids(&everything, &mut ids);
    // A flow's steps are read one flow at a time: steps under `flows` cost too much.
    let steps = call(
        admin,
        "query($id: ID!) { flow(id: $id) { id steps { id ... on ChoiceStep { options { id } } } } }",
        json!({ "id": flow }),
    )
    .await;
    collect_ids(&steps, &mut ids);
    let versions = call(admin, PUBLISH_FLOW, json!({ "id": flow })).await;
    collect_ids(&versions, &mut ids);
    let conversation = call(
        widget,
        &start_conversation(),
        json!({ "input": { "flowId": flow } }),
    )
    .await;
    collect_ids(&conversation, &mut ids);
    Account {
        admin: admin.to_owned(),
        widget: widget.to_owned(),
        ids: ids.into_iter().collect(),
    }
}

fn collect_ids(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == "id" => {
                        into.insert(s.clone());
                    }
                    _ => collect_ids(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_ids(v, into)),
        _ => {}
    }
}

/// The served schema, parsed: enough of it to write a valid call of any operation.
pub(crate) struct Schema {
    pub(crate) types: BTreeMap<String, TypeKind>,
}

/// One operation as a ready-to-send document with its variables; `"__SLOT<n>__"` strings in
/// the variables stand for its id arguments.
struct Call {
    root: &'static str,
    field: String,
    nullable: bool,
    /// The same call selecting 3, 2 and 1 levels of the result: the first one under the
    /// query cost budget is sent (a refusal for cost happens before anything runs).
    queries: Vec<String>,
    variables: Value,
    slots: usize,
}

impl Call {
    fn with_ids(&self, ids: &[&str]) -> Value {
        let mut text = self.variables.to_string();
        for (i, id) in ids.iter().enumerate() {
            text = text.replace(&format!("__SLOT{i}__"), id);
        }
        serde_json::from_str(&text).unwrap()
    }
}

impl Schema {
    pub(crate) fn served() -> Schema {
        let document = async_graphql::parser::parse_schema(api::graphql::sdl()).unwrap();
        let types = document
            .definitions
            .into_iter()
            .filter_map(|d| match d {
                TypeSystemDefinition::Type(t) => Some((t.node.name.node.to_string(), t.node.kind)),
                _ => None,
            })
            .collect();
        Schema { types }
    }

    fn calls(&self) -> Vec<Call> {
        let mut calls = Vec::new();
        for (root, keyword) in [("Query", "query"), ("Mutation", "mutation")] {
            let TypeKind::Object(object) = &self.types[root] else {
                panic!("{root} is not an object type");
            };
            for field in &object.fields {
                let field = &field.node;
                let mut slots = 0;
                let mut params = Vec::new();
                let mut args = Vec::new();
                let mut variables = serde_json::Map::new();
                for arg in &field.arguments {
                    let arg = &arg.node;
                    let name = arg.name.node.as_str();
                    if arg.ty.node.nullable && !self.holds_id(&arg.ty.node, 0) {
                        continue;
                    }
                    params.push(format!("${name}: {}", arg.ty.node));
                    args.push(format!("{name}: ${name}"));
                    variables.insert(name.to_owned(), self.sample(&arg.ty.node, name, &mut slots));
                }
                let params = if params.is_empty() {
                    String::new()
                } else {
                    format!("({})", params.join(", "))
                };
                let args = if args.is_empty() {
                    String::new()
                } else {
                    format!("({})", args.join(", "))
                };
                let queries = (1..=3)
                    .rev()
                    .map(|depth| {
                        let selection = self.selection(type_name(&field.ty.node), depth);
                        format!(
                            "{keyword}{params} {{ {}{args} {selection} }}",
                            field.name.node
                        )
                    })
                    .collect();
                calls.push(Call {
                    root,
                    field: field.name.node.to_string(),
                    nullable: field.ty.node.nullable,
                    queries,
                    variables: Value::Object(variables),
                    slots,
                });
            }
        }
        calls
    }

    /// Whether a value of this type can carry an id (inputs are followed a few levels deep).
    fn holds_id(&self, ty: &Type, depth: usize) -> bool {
        let name = type_name(ty);
        name == "ID"
            || (depth < 4
                && matches!(&self.types.get(name), Some(TypeKind::InputObject(input))
                    if input.fields.iter().any(|f| self.holds_id(&f.node.ty.node, depth + 1))))
    }

    /// A valid value: required fields, and every field that can carry an id. An input with
    /// nothing required gets its first field only, which also satisfies `@oneOf`.
    fn sample(&self, ty: &Type, name: &str, slots: &mut usize) -> Value {
        if let BaseType::List(inner) = &ty.base {
            return json!([self.sample(inner, name, slots)]);
        }
        let named = type_name(ty);
        match (named, self.types.get(named)) {
            ("ID", _) => {
                *slots += 1;
                json!(format!("__SLOT{}__", *slots - 1))
            }
            ("String", _) => {
                let lower = name.to_lowercase();
                if lower.contains("email") {
                    json!("probe@example.com")
                } else if lower.contains("origin") {
                    json!("https://probe.example")
                } else if lower == "url" {
                    json!("https://hooks.example.com/probe")
                } else if lower.contains("tag") || lower.contains("topic") {
                    json!("probe_topic")
                } else {
                    json!("probe")
                }
            }
            ("Int", _) => json!(1),
            ("Boolean", _) => json!(false),
            ("DateTime", _) => json!("2020-01-01T00:00:00Z"),
            (_, Some(TypeKind::Enum(e))) => json!(e.values[0].node.value.node.as_str()),
            (_, Some(TypeKind::InputObject(input))) => {
                let required: Vec<_> = input
                    .fields
                    .iter()
                    .filter(|f| !f.node.ty.node.nullable && f.node.default_value.is_none())
                    .collect();
                let chosen: Vec<_> = if required.is_empty() {
                    input.fields.iter().take(1).collect()
                } else {
                    input
                        .fields
                        .iter()
                        .filter(|f| {
                            required.iter().any(|r| r.node.name == f.node.name)
                                || self.holds_id(&f.node.ty.node, 0)
                        })
                        .collect()
                };
                Value::Object(
                    chosen
                        .into_iter()
                        .map(|f| {
                            let name = f.node.name.node.to_string();
                            let value = self.sample(&f.node.ty.node, &name, slots);
                            (name, value)
                        })
                        .collect(),
                )
            }
            (other, _) => panic!("no sample value for type {other}: teach `sample` about it"),
        }
    }

    /// Every field without required arguments, `depth` object levels down: whatever another
    /// account's data would show up in.
    pub(crate) fn selection(&self, of: &str, depth: usize) -> String {
        let fields = match self.types.get(of) {
            Some(TypeKind::Object(o)) => &o.fields,
            Some(TypeKind::Interface(i)) => &i.fields,
            _ => return String::new(),
        };
        let mut parts = vec!["__typename".to_owned()];
        for field in fields {
            let field = &field.node;
            if needs_arguments(field) {
                continue;
            }
            let inner = type_name(&field.ty.node);
            match self.types.get(inner) {
                Some(TypeKind::Object(_) | TypeKind::Interface(_)) => {
                    if depth > 1 {
                        parts.push(format!(
                            "{} {}",
                            field.name.node,
                            self.selection(inner, depth - 1)
                        ));
                    }
                }
                Some(TypeKind::Union(_)) => {}
                _ => parts.push(field.name.node.to_string()),
            }
        }
        format!("{{ {} }}", parts.join(" "))
    }
}

/// Whether a field has an argument that must be given (required, without a default).
pub(crate) fn needs_arguments(field: &FieldDefinition) -> bool {
    field
        .arguments
        .iter()
        .any(|a| !a.node.ty.node.nullable && a.node.default_value.is_none())
}

pub(crate) fn type_name(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => type_name(inner),
    }
}

/// Every row of the product's tables (not the queue's, not the migrations'), as sorted JSON
/// lines per table; `last_used_at` is left out because a key's own use updates it.
async fn snapshot(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let backend = app.db.get_database_backend();
    let list = match app.engine {
        Engine::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        Engine::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    let tables = JsonValue::find_by_statement(Statement::from_string(backend, list))
        .all(&app.db)
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for table in tables {
        let name = table["name"].as_str().unwrap().to_owned();
        let lower = name.to_lowercase();
        if lower.starts_with("sqlite_")
            || lower.contains("migration")
            || ["jobs", "workers"].contains(&lower.as_str())
            // Folded by the workers at any time: compared below as the counts they make.
            || lower.starts_with("delivery_tall")
        {
            continue;
        }
        let rows = JsonValue::find_by_statement(Statement::from_string(
            backend,
            format!("SELECT * FROM \"{name}\""),
        ))
        .all(&app.db)
        .await
        .unwrap();
        let mut rows: Vec<String> = rows
            .into_iter()
            .map(|mut row| {
                if let Some(map) = row.as_object_mut() {
                    map.remove("last_used_at");
                }
                row.to_string()
            })
            .collect();
        rows.sort();
        out.insert(name, rows);
    }
    let counts = JsonValue::find_by_statement(Statement::from_string(
        backend,
        "SELECT account_id, status, CAST(SUM(n) AS BIGINT) AS n FROM (\
         SELECT account_id, status, n FROM delivery_tallies \
         UNION ALL SELECT account_id, status, delta AS n FROM delivery_tally_changes) AS t \
         GROUP BY account_id, status HAVING SUM(n) <> 0",
    ))
    .all(&app.db)
    .await
    .unwrap();
    let mut counts: Vec<String> = counts.iter().map(JsonValue::to_string).collect();
    counts.sort();
    out.insert("delivery counts".to_owned(), counts);
    out
}

/// The rows that mention any of `ids`.
fn rows_of(snapshot: &BTreeMap<String, Vec<String>>, ids: &[String]) -> Vec<String> {
    snapshot
        .iter()
        .flat_map(|(table, rows)| rows.iter().map(move |r| format!("{table}: {r}")))
        .filter(|r| ids.iter().any(|id| r.contains(id.as_str())))
        .collect()
}

/// Asserts the response shows nothing of `other`.
fn assert_no_trace(body: &Value, other: &Account, what: &str) {
    let text = body.to_string();
    assert!(!text.contains("other_account"), "{what} leaked: {body:#}");
    for id in &other.ids {
        assert!(!text.contains(id.as_str()), "{what} leaked {id}: {body:#}");
    }
}

/// What a call across accounts must answer.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// `NOT_FOUND`, or `null` from a nullable single-object query: as for an id that never
    /// existed.
    Missing,
    /// Any error.
    Refused,
    /// `FORBIDDEN`.
    Forbidden,
    /// Data (of the caller's own account), or `FORBIDDEN`.
    OwnDataOrForbidden,
}

/// One call of the enumeration.
struct Probe {
    what: String,
    field: String,
    nullable: bool,
    key: String,
    queries: Vec<String>,
    variables: Value,
    expect: Expect,
}

impl Probe {
    fn new(call: &Call, key: &str, ids: &[&str], expect: Expect) -> Probe {
        Probe {
            what: format!("{} with ids {ids:?} ({expect:?})", call.field),
            field: call.field.clone(),
            nullable: call.nullable,
            key: key.to_owned(),
            queries: call.queries.clone(),
            variables: call.with_ids(ids),
            expect,
        }
    }

    fn check(&self, body: &Value) {
        let code = body["errors"][0]["extensions"]["code"].as_str();
        let ok = body.get("errors").is_none();
        let fine = match self.expect {
            Expect::Missing => {
                code == Some("NOT_FOUND")
                    || (self.nullable && ok && body["data"][&self.field].is_null())
            }
            Expect::Refused => !ok,
            Expect::Forbidden => code == Some("FORBIDDEN"),
            Expect::OwnDataOrForbidden => ok || code == Some("FORBIDDEN"),
        };
        assert!(fine, "{}: {body:#}", self.what);
    }
}

async fn every_operation_keeps_accounts_apart(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let ours = populate(
        &app,
        &smtp,
        &app.account_id,
        &app.admin_key,
        &app.widget_key,
        "our_account",
    )
    .await;
    let other_account = domain::keys::create_account(&app.db, "Other")
        .await
        .unwrap();
    let theirs = populate(
        &app,
        &smtp,
        &other_account.account_id.to_string(),
        &other_account.admin_key,
        &other_account.widget_key,
        "other_account",
    )
    .await;

    let schema = Schema::served();
    let calls = schema.calls();
    assert!(
        calls.len() >= 30,
        "the schema lost operations? found {}",
        calls.len()
    );
    let before = snapshot(&app).await;

    let mut probes = Vec::new();
    for call in &calls {
        let visitor = VISITOR_OPERATIONS.contains(&call.field.as_str());
        let mut keys = vec![ours.admin.as_str()];
        if visitor {
            keys.push(ours.widget.as_str());
        }
        if call.slots == 0 && call.root == "Query" {
            // Lists and counts: scoped to the caller, or refused (the operator-only ones).
            probes.push(Probe::new(
                call,
                &ours.admin,
                &[],
                Expect::OwnDataOrForbidden,
            ));
        }
        // Every id argument holds the same id of the other account.
        for id in theirs.ids.iter().filter(|_| call.slots > 0) {
            for key in &keys {
                let ids = vec![id.as_str(); call.slots];
                probes.push(Probe::new(call, key, &ids, Expect::Missing));
            }
        }
        // One id of the other account among the caller's own, in each argument in turn.
        for target in (0..call.slots).filter(|_| call.slots > 1) {
            for their_id in &theirs.ids {
                for our_id in &ours.ids {
                    let ids: Vec<&str> = (0..call.slots)
                        .map(|i| {
                            if i == target {
                                their_id.as_str()
                            } else {
                                our_id.as_str()
                            }
                        })
                        .collect();
                    probes.push(Probe::new(call, &ours.admin, &ids, Expect::Refused));
                }
            }
        }
        // The widget key: nothing but the visitor operations, whatever the arguments.
        if !visitor {
            let ids = vec![ours.ids[0].as_str(); call.slots];
            probes.push(Probe::new(call, &ours.widget, &ids, Expect::Forbidden));
        }
    }
    let mut requests = probes.len();
    let client = reqwest::Client::new();
    let mut pending = probes.into_iter();
    loop {
        let batch: Vec<Probe> = pending.by_ref().take(8).collect();
        if batch.is_empty() {
            break;
        }
        let mut running = tokio::task::JoinSet::new();
        for probe in batch {
            let (client, url) = (client.clone(), app.url.clone());
            running.spawn(async move {
                let body = send(&client, &url, &probe.key, &probe.queries, &probe.variables).await;
                (probe, body)
            });
        }
        while let Some(done) = running.join_next().await {
            let (probe, body) = done.unwrap();
            probe.check(&body);
            assert_no_trace(&body, &theirs, &probe.what);
        }
    }
    let after = snapshot(&app).await;
    assert!(
        before == after,
        "refused calls changed rows:\n{}",
        diff(&before, &after)
    );

    // Mutations without ids act on the caller's account only.
    for call in calls
        .iter()
        .filter(|c| c.root == "Mutation" && c.slots == 0)
    {
        let body = send(
            &client,
            &app.url,
            &ours.admin,
            &call.queries,
            &call.with_ids(&[]),
        )
        .await;
        requests += 1;
        assert!(body.get("errors").is_none(), "{}: {body:#}", call.field);
        assert_no_trace(&body, &theirs, &call.field);
    }
    let last = snapshot(&app).await;
    assert_eq!(
        rows_of(&before, &theirs.ids),
        rows_of(&last, &theirs.ids),
        "the other account's rows changed"
    );
    assert!(requests > 500, "only {requests} calls were made");
    println!(
        "{} operations, {requests} calls across accounts",
        calls.len()
    );
    app.stop().await;
}

/// Sends the deepest of `queries` that is within the cost budget.
pub(crate) async fn send(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    queries: &[String],
    variables: &Value,
) -> Value {
    for query in queries {
        let body: Value = client
            .post(url)
            .bearer_auth(key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["errors"][0]["extensions"]["code"] != "QUERY_TOO_COMPLEX" {
            return body;
        }
    }
    panic!("even the shallowest selection is over the cost budget: {queries:?}")
}

fn diff(before: &BTreeMap<String, Vec<String>>, after: &BTreeMap<String, Vec<String>>) -> String {
    let lines = |s: &BTreeMap<String, Vec<String>>| -> BTreeSet<String> {
        s.iter()
            .flat_map(|(t, rows)| rows.iter().map(move |r| format!("{t}: {r}")))
            .collect()
    };
    let (b, a) = (lines(before), lines(after));
    let gone = b.difference(&a).map(|l| format!("- {l}"));
    let new = a.difference(&b).map(|l| format!("+ {l}"));
    gone.chain(new).collect::<Vec<_>>().join("\n")
}

//! Chatbots that run: a visitor walks a published flow to its ticket step.

use std::time::Duration;

use domain::conversations::{
    MAX_REASKS, MAX_VISITOR_TURNS, Notice, TICKET_TRANSCRIPT_CHARS, TICKET_TRANSCRIPT_LINES,
};
use domain::validate::MAX_MESSAGE_CHARS;
use domain::vocab::Locale;
use integration_tests::{Engine, TestApp, TestSmtp, error_code, error_field, on_both_engines};
use serde_json::{Value, json};

use crate::ops::*;

on_both_engines!(
    a_visitor_walks_a_published_flow_to_a_ticket,
    validate_flow_reports_every_problem_kind,
    idle_conversations_expire,
    conversations_belong_to_their_account,
    an_invalid_answer_is_asked_again_at_most_max_reasks_times,
    a_looping_conversation_completes_after_max_visitor_turns,
    the_longest_conversation_makes_a_bounded_ticket_and_mail
);

fn id(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

/// Appends `step` to the flow; its id.
pub(crate) async fn add(app: &TestApp, flow_id: &str, step: Value) -> String {
    id(&app
        .admin(ADD_STEP, json!({ "flowId": flow_id, "step": step }))
        .await["addStep"]["id"])
}

/// A support bot: greeting, a menu (orders -> e-mail and order number -> ticket -> goodbye;
/// other -> end). Returns (flow id, step ids in order).
async fn support_bot(app: &TestApp, topic: &str) -> (String, Vec<String>) {
    let flow_id =
        id(&app.admin(CREATE_FLOW, json!({ "name": "Destek" })).await["createFlow"]["id"]);
    let mut steps = Vec::new();
    steps.push(add(app, &flow_id, json!({ "message": { "text": "Merhaba!" } })).await);
    steps.push(
        add(app, &flow_id, json!({ "choice": { "text": "Konu nedir?", "options": [{ "label": "Sipariş" }, { "label": "Diğer" }] } })).await,
    );
    steps.push(
        add(
            app,
            &flow_id,
            json!({ "question": { "text": "E-posta adresiniz?", "field": "email" } }),
        )
        .await,
    );
    steps.push(
        add(
            app,
            &flow_id,
            json!({ "question": { "text": "Sipariş numaranız?", "field": "order_no" } }),
        )
        .await,
    );
    steps.push(
        add(
            app,
            &flow_id,
            json!({ "ticket": { "topic": topic, "confirmationMessage": "Talep alındı" } }),
        )
        .await,
    );
    steps.push(
        add(
            app,
            &flow_id,
            json!({ "end": { "text": "Görüşmek üzere" } }),
        )
        .await,
    );
    steps.push(
        add(
            app,
            &flow_id,
            json!({ "end": { "text": "Başka bir konuda yardımcı olamıyoruz." } }),
        )
        .await,
    );
    (flow_id, steps)
}

async fn link_menu(app: &TestApp, steps: &[String]) {
    app.admin(
        UPDATE_STEP,
        json!({ "id": steps[1], "step": { "choice": { "text": "Konu nedir?", "options": [
            { "label": "Sipariş", "next": steps[2] }, { "label": "Diğer", "next": steps[6] } ] } } }),
    )
    .await;
}

/// The support bot with its menu linked, published, and a conversation started on it: the
/// flow's id and the first turn.
pub(crate) async fn published_bot(app: &TestApp) -> (String, Value) {
    let (flow_id, steps) = support_bot(app, "orders").await;
    link_menu(app, &steps).await;
    app.admin(PUBLISH_FLOW, json!({ "id": flow_id })).await;
    let turn = widget(app, &start_conversation(), json!({ "flowId": flow_id })).await;
    (flow_id, turn)
}

pub(crate) async fn widget(app: &TestApp, query: &str, input: Value) -> Value {
    let body = app
        .gql(Some(&app.widget_key), query, json!({ "input": input }))
        .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone()
}

async fn widget_error(app: &TestApp, query: &str, input: Value) -> Value {
    let body = app
        .gql(Some(&app.widget_key), query, json!({ "input": input }))
        .await;
    assert!(body.get("errors").is_some(), "expected an error: {body:#}");
    body
}

async fn tags(app: &TestApp) -> Vec<String> {
    app.admin(TOPIC_TAGS, json!({})).await["topicTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| id(&t["tag"]))
        .collect()
}

async fn a_visitor_walks_a_published_flow_to_a_ticket(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow_id, steps) = support_bot(&app, "orders").await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "orders", "emails": ["ops@example.com"] }),
    )
    .await;

    // Not publishable while the menu's buttons lead nowhere.
    let problems = app.admin(VALIDATE_FLOW, json!({ "id": flow_id })).await;
    let codes: Vec<&str> = problems["validateFlow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"UNLINKED_OPTION"), "{problems:#}");
    let refused = app
        .gql(Some(&app.admin_key), PUBLISH_FLOW, json!({ "id": flow_id }))
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert_eq!(error_field(&refused), "id");
    let not_yet = widget_error(&app, &start_conversation(), json!({ "flowId": flow_id })).await;
    assert_eq!(error_field(&not_yet), "flowId", "no published version yet");

    link_menu(&app, &steps).await;
    assert_eq!(
        app.admin(VALIDATE_FLOW, json!({ "id": flow_id })).await["validateFlow"],
        json!([])
    );
    assert_eq!(
        app.admin(PUBLISH_FLOW, json!({ "id": flow_id })).await["publishFlow"]["number"],
        1
    );

    // The widget starts a conversation.
    let turn = widget(&app, &start_conversation(), json!({ "flowId": flow_id })).await;
    assert_eq!(turn["botMessages"], json!(["Merhaba!", "Konu nedir?"]));
    assert_eq!(turn["awaiting"], "CHOICE");
    let conversation_id = id(&turn["conversation"]["id"]);
    let orders_option = id(&turn["options"][0]["id"]);
    assert_eq!(turn["options"][0]["label"], "Sipariş");

    // Wrong input for the state is refused and changes nothing.
    let wrong = widget_error(
        &app,
        &send_visitor_message(),
        json!({ "conversationId": conversation_id, "text": "merhaba" }),
    )
    .await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT");
    let unknown = widget_error(
        &app,
        &choose_option(),
        json!({ "conversationId": conversation_id, "optionId": steps[0] }),
    )
    .await;
    assert_eq!(error_field(&unknown), "optionId");

    let turn = widget(
        &app,
        &choose_option(),
        json!({ "conversationId": conversation_id, "optionId": orders_option }),
    )
    .await;
    assert_eq!(turn["botMessages"], json!(["E-posta adresiniz?"]));
    assert_eq!(turn["awaiting"], "TEXT");
    let wrong = widget_error(
        &app,
        &choose_option(),
        json!({ "conversationId": conversation_id, "optionId": orders_option }),
    )
    .await;
    assert_eq!(
        error_field(&wrong),
        "optionId",
        "a button while text is awaited"
    );

    // An invalid e-mail is asked again.
    let turn = widget(
        &app,
        &send_visitor_message(),
        json!({ "conversationId": conversation_id, "text": "yok" }),
    )
    .await;
    assert_eq!(turn["awaiting"], "TEXT");
    assert_eq!(turn["botMessages"].as_array().unwrap().len(), 2);
    assert_eq!(turn["botMessages"][1], "E-posta adresiniz?");
    let turn = widget(
        &app,
        &send_visitor_message(),
        json!({ "conversationId": conversation_id, "text": "ayse@example.com" }),
    )
    .await;
    assert_eq!(turn["botMessages"], json!(["Sipariş numaranız?"]));

    // Editing and republishing the flow does not change the running conversation.
    app.admin(
        UPDATE_STEP,
        json!({ "id": steps[4], "step": { "ticket": { "topic": "orders_v2", "confirmationMessage": "DEĞİŞTİ" } } }),
    )
    .await;
    assert_eq!(
        app.admin(PUBLISH_FLOW, json!({ "id": flow_id })).await["publishFlow"]["number"],
        2
    );
    let known = tags(&app).await;
    assert!(
        known.contains(&"orders".to_owned()) && known.contains(&"orders_v2".to_owned()),
        "the running version keeps its tag: {known:?}"
    );

    // The ticket step: one ticket, even when the request is retried.
    let input =
        json!({ "conversationId": conversation_id, "text": "A-17", "clientMessageId": "msg-4" });
    let turn = widget(&app, &send_visitor_message(), input.clone()).await;
    assert_eq!(
        turn["botMessages"],
        json!(["Talep alındı", "Görüşmek üzere"])
    );
    assert_eq!(turn["awaiting"], "NOTHING");
    assert_eq!(turn["conversation"]["status"], "COMPLETED");
    let ticket_id = id(&turn["ticket"]["id"]);
    assert_eq!(
        app.admin(TICKET_CONTENT, json!({ "id": ticket_id })).await["ticket"]["topic"],
        "orders"
    );
    let again = widget(&app, &send_visitor_message(), input).await;
    assert_eq!(again["botMessages"], turn["botMessages"]);
    assert_eq!(again["ticket"]["id"], turn["ticket"]["id"]);
    assert_eq!(
        app.admin(TICKETS, json!({})).await["tickets"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ended = widget_error(
        &app,
        &send_visitor_message(),
        json!({ "conversationId": conversation_id, "text": "hâlâ orada mısınız?" }),
    )
    .await;
    assert_eq!(error_field(&ended), "conversationId");
    assert_eq!(
        tags(&app).await,
        ["orders_v2"],
        "no chatbot can open an `orders` ticket any more"
    );

    // The conversation and the ticket carry the transcript and the answers.
    let c = app
        .admin(CONVERSATION, json!({ "id": conversation_id }))
        .await["conversation"]
        .clone();
    assert_eq!(c["ticket"]["id"], json!(ticket_id));
    let t = app.admin(TICKET_CONTENT, json!({ "id": ticket_id })).await["ticket"].clone();
    assert_eq!(t["conversation"]["id"], json!(conversation_id));
    assert_eq!(
        t["conversation"]["answers"],
        json!({ "email": "ayse@example.com", "order_no": "A-17" })
    );
    let transcript: Vec<String> = c["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{}: {}", id(&l["sender"]), id(&l["text"])))
        .collect();
    assert_eq!(
        transcript.first().map(String::as_str),
        Some("BOT: Merhaba!")
    );
    assert!(transcript.contains(&"VISITOR: Sipariş".to_owned()));
    assert!(transcript.contains(&"VISITOR: A-17".to_owned()));
    assert_eq!(
        transcript.last().map(String::as_str),
        Some("BOT: Görüşmek üzere")
    );
    assert_eq!(t["answers"]["order_no"], "A-17");
    assert!(
        t["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"] == "A-17")
    );

    // The routed mailbox gets the transcript, with the visitor's address to reply to.
    assert!(
        smtp.wait_until(Duration::from_secs(15), |m| !m.is_empty())
            .await,
        "no mail"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = smtp.received_by("ops@example.com");
    assert_eq!(mails.len(), 1);
    let mail = mails[0].data.replace("=\r\n", "");
    assert!(mail.contains("order_no: A-17"), "{mail}");
    assert!(mail.contains("Visitor: ayse@example.com"), "{mail}");
    assert!(mail.contains("Reply-To: ayse@example.com"), "{mail}");
    app.stop().await;
}

async fn validate_flow_reports_every_problem_kind(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let problems = |flow_id: String| {
        let app = &app;
        async move {
            let data = app.admin(VALIDATE_FLOW, json!({ "id": flow_id })).await;
            data["validateFlow"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (id(&p["code"]), p["stepId"].as_str().map(str::to_owned)))
                .collect::<Vec<_>>()
        }
    };
    let new_flow = |name: &'static str| {
        let app = &app;
        async move { id(&app.admin(CREATE_FLOW, json!({ "name": name })).await["createFlow"]["id"]) }
    };

    let empty = new_flow("empty").await;
    assert_eq!(problems(empty).await, [("EMPTY_FLOW".to_owned(), None)]);

    // A dangling link: to a step deleted after the link was made (a link to a step that does
    // not exist when it is made is refused outright).
    let other = new_flow("other").await;
    let foreign = add(&app, &other, json!({ "end": {} })).await;
    let gone = add(&app, &other, json!({ "end": {} })).await;
    let f = new_flow("links").await;
    let dangling = add(
        &app,
        &f,
        json!({ "message": { "text": "a", "next": gone } }),
    )
    .await;
    app.admin(DELETE_STEP, json!({ "id": gone })).await;
    let refused = app
        .gql(
            Some(&app.admin_key),
            ADD_STEP,
            json!({ "flowId": f, "step": { "message": { "text": "x", "next": gone } } }),
        )
        .await;
    assert_eq!(error_code(&refused), "NOT_FOUND", "{refused:#}");
    let cross = add(
        &app,
        &f,
        json!({ "message": { "text": "b", "next": foreign } }),
    )
    .await;
    let found = problems(f.clone()).await;
    assert!(
        found.contains(&("DANGLING_LINK".to_owned(), Some(dangling.clone()))),
        "{found:?}"
    );
    assert!(
        found.contains(&("CROSS_FLOW_LINK".to_owned(), Some(cross.clone()))),
        "{found:?}"
    );
    assert!(
        found.contains(&("UNREACHABLE_STEP".to_owned(), Some(cross))),
        "{found:?}"
    );

    let f = new_flow("menu").await;
    let menu = add(
        &app,
        &f,
        json!({ "choice": { "text": "?", "options": [{ "label": "x" }] } }),
    )
    .await;
    add(&app, &f, json!({ "end": {} })).await;
    let found = problems(f).await;
    assert!(
        found.contains(&("UNLINKED_OPTION".to_owned(), Some(menu))),
        "{found:?}"
    );

    let f = new_flow("loop").await;
    let first = add(&app, &f, json!({ "message": { "text": "a" } })).await;
    add(
        &app,
        &f,
        json!({ "message": { "text": "b", "next": first } }),
    )
    .await;
    let found = problems(f).await;
    assert!(
        found.contains(&("LOOP_WITHOUT_WAIT".to_owned(), Some(first))),
        "{found:?}"
    );

    let f = new_flow("nowhere").await;
    add(&app, &f, json!({ "message": { "text": "a" } })).await;
    let last = add(
        &app,
        &f,
        json!({ "question": { "text": "b", "field": "name" } }),
    )
    .await;
    assert_eq!(
        problems(f).await,
        [("NO_TICKET_OR_END".to_owned(), Some(last))]
    );
    app.stop().await;
}

async fn idle_conversations_expire(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| {
        c.conversation_idle = Duration::from_millis(1500)
    })
    .await
    else {
        return;
    };
    let (_, turn) = published_bot(&app).await;
    let conversation_id = id(&turn["conversation"]["id"]);
    let option = id(&turn["options"][0]["id"]);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let expired = widget_error(
        &app,
        &choose_option(),
        json!({ "conversationId": conversation_id, "optionId": option }),
    )
    .await;
    assert_eq!(error_code(&expired), "CONVERSATION_EXPIRED", "{expired:#}");
    let c = app
        .admin(CONVERSATION, json!({ "id": conversation_id }))
        .await;
    assert_eq!(c["conversation"]["status"], "EXPIRED");
    assert_eq!(
        c["conversation"]["transcript"].as_array().unwrap().len(),
        2,
        "nothing was added"
    );
    app.stop().await;
}

async fn conversations_belong_to_their_account(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow_id, turn) = published_bot(&app).await;
    let conversation_id = id(&turn["conversation"]["id"]);

    // The widget key talks to chatbots and reads its conversations, nothing more.
    for (query, variables) in [
        (VALIDATE_FLOW, json!({ "id": flow_id })),
        (PUBLISH_FLOW, json!({ "id": flow_id })),
    ] {
        let body = app.gql(Some(&app.widget_key), query, variables).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    }
    let own = app
        .gql(
            Some(&app.widget_key),
            CONVERSATION,
            json!({ "id": conversation_id }),
        )
        .await;
    assert_eq!(own["data"]["conversation"]["id"], json!(conversation_id));

    let (other_admin, other_widget) = app.other_account().await;
    let body = app
        .gql(
            Some(&other_widget),
            &start_conversation(),
            json!({ "input": { "flowId": flow_id } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(
            Some(&other_widget),
            &send_visitor_message(),
            json!({ "input": { "conversationId": conversation_id, "text": "hi" } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(Some(&other_widget), &choose_option(), json!({ "input": { "conversationId": conversation_id, "optionId": turn["options"][0]["id"] } }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    for key in [&other_admin, &other_widget] {
        let body = app
            .gql(Some(key), CONVERSATION, json!({ "id": conversation_id }))
            .await;
        assert!(
            body["errors"].is_null() && body["data"]["conversation"].is_null(),
            "{body:#}"
        );
    }
    for (query, variables) in [
        (VALIDATE_FLOW, json!({ "id": flow_id })),
        (PUBLISH_FLOW, json!({ "id": flow_id })),
    ] {
        let body = app.gql(Some(&other_admin), query, variables).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    }
    app.stop().await;
}

const SET_DEFAULT_LOCALE: &str =
    "mutation($l: Locale!) { setDefaultLocale(locale: $l) { defaultLocale } }";

async fn an_invalid_answer_is_asked_again_at_most_max_reasks_times(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (flow_id, turn) = published_bot(&app).await;
    let conversation_id = id(&turn["conversation"]["id"]);
    let orders = id(&turn["options"][0]["id"]);
    widget(
        &app,
        &choose_option(),
        json!({ "conversationId": conversation_id, "optionId": orders }),
    )
    .await;
    let say = |text: &str| json!({ "conversationId": conversation_id, "text": text });

    for n in 1..=MAX_REASKS {
        let turn = widget(&app, &send_visitor_message(), say(&format!("yok {n}"))).await;
        assert_eq!(
            turn["botMessages"],
            json!([Notice::NotAnEmail.text(Locale::En), "E-posta adresiniz?"]),
            "re-ask {n}"
        );
        assert_eq!(turn["awaiting"], "TEXT");
    }
    // One more invalid answer: the bot goes on to the next step without an address.
    let turn = widget(&app, &send_visitor_message(), say("hâlâ yok")).await;
    assert_eq!(
        turn["botMessages"],
        json!([Notice::MovingOn.text(Locale::En), "Sipariş numaranız?"])
    );
    assert_eq!(turn["awaiting"], "TEXT");
    let turn = widget(&app, &send_visitor_message(), say("A-17")).await;
    assert_eq!(turn["conversation"]["status"], "COMPLETED");
    let t = app
        .admin(TICKET_CONTENT, json!({ "id": id(&turn["ticket"]["id"]) }))
        .await["ticket"]
        .clone();
    assert_eq!(
        t["answers"],
        json!({ "order_no": "A-17" }),
        "no e-mail stored"
    );
    assert!(t["visitor"]["email"].is_null(), "{t:#}");

    // The bot's own words follow the account's language.
    app.admin(SET_DEFAULT_LOCALE, json!({ "l": "TR" })).await;
    let turn = widget(&app, &start_conversation(), json!({ "flowId": flow_id })).await;
    let conversation_id = id(&turn["conversation"]["id"]);
    widget(
        &app,
        &choose_option(),
        json!({ "conversationId": conversation_id, "optionId": id(&turn["options"][0]["id"]) }),
    )
    .await;
    let turn = widget(
        &app,
        &send_visitor_message(),
        json!({ "conversationId": conversation_id, "text": "yok" }),
    )
    .await;
    assert_eq!(
        turn["botMessages"][0],
        "Üzgünüm, bu bir e-posta adresine benzemiyor (ad@example.com gibi)."
    );
    app.stop().await;
}

/// A menu whose first button leads back to itself, the second to an end step. Returns
/// (flow id, menu step id).
async fn looping_menu(app: &TestApp) -> String {
    let flow_id = id(&app.admin(CREATE_FLOW, json!({ "name": "Döngü" })).await["createFlow"]["id"]);
    let menu = add(
        app,
        &flow_id,
        json!({ "choice": { "text": "Tekrar?", "options": [{ "label": "Evet" }, { "label": "Hayır" }] } }),
    )
    .await;
    let end = add(app, &flow_id, json!({ "end": { "text": "Hoşça kalın" } })).await;
    app.admin(
        UPDATE_STEP,
        json!({ "id": menu, "step": { "choice": { "text": "Tekrar?", "options": [
            { "label": "Evet", "next": menu }, { "label": "Hayır", "next": end } ] } } }),
    )
    .await;
    assert_eq!(
        app.admin(VALIDATE_FLOW, json!({ "id": flow_id })).await["validateFlow"],
        json!([])
    );
    app.admin(PUBLISH_FLOW, json!({ "id": flow_id })).await;
    flow_id
}

async fn a_looping_conversation_completes_after_max_visitor_turns(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    app.admin(SET_DEFAULT_LOCALE, json!({ "l": "TR" })).await;
    let flow_id = looping_menu(&app).await;
    let turn = widget(&app, &start_conversation(), json!({ "flowId": flow_id })).await;
    let conversation_id = id(&turn["conversation"]["id"]);
    let again = json!({ "conversationId": conversation_id, "optionId": turn["options"][0]["id"] });
    for n in 1..MAX_VISITOR_TURNS {
        let turn = widget(&app, &choose_option(), again.clone()).await;
        assert_eq!(turn["botMessages"], json!(["Tekrar?"]), "turn {n}");
        assert_eq!(turn["awaiting"], "CHOICE");
    }
    let last = widget(&app, &choose_option(), again.clone()).await;
    assert_eq!(
        last["botMessages"],
        json!(["Tekrar?", Notice::TurnLimit.text(Locale::Tr)])
    );
    assert!(
        last["botMessages"][1]
            .as_str()
            .unwrap()
            .contains(&format!("{MAX_VISITOR_TURNS} mesaj sınırına")),
        "{last:#}"
    );
    assert_eq!(last["awaiting"], "NOTHING");
    assert_eq!(last["conversation"]["status"], "COMPLETED");
    assert!(last["ticket"].is_null());

    for _ in 0..2 {
        let refused = widget_error(&app, &choose_option(), again.clone()).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT");
        assert_eq!(error_field(&refused), "conversationId");
    }
    let c = app
        .admin(CONVERSATION, json!({ "id": conversation_id }))
        .await["conversation"]
        .clone();
    assert_eq!(c["status"], "COMPLETED");
    assert_eq!(
        c["transcript"].as_array().unwrap().len(),
        1 + 2 * MAX_VISITOR_TURNS as usize + 1,
        "greeting, then a button and the menu per turn, then the limit"
    );
    app.stop().await;
}

async fn the_longest_conversation_makes_a_bounded_ticket_and_mail(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    // A note, "more?" (yes: another note; no: the ticket), the ticket, goodbye.
    let flow_id =
        id(&app.admin(CREATE_FLOW, json!({ "name": "Notlar" })).await["createFlow"]["id"]);
    let note = add(
        &app,
        &flow_id,
        json!({ "question": { "text": "Notunuz?", "field": "note" } }),
    )
    .await;
    let more = add(
        &app,
        &flow_id,
        json!({ "choice": { "text": "Başka?", "options": [{ "label": "Evet" }, { "label": "Hayır" }] } }),
    )
    .await;
    let ticket_step = add(
        &app,
        &flow_id,
        json!({ "ticket": { "topic": "notes", "confirmationMessage": "Talep alındı" } }),
    )
    .await;
    add(
        &app,
        &flow_id,
        json!({ "end": { "text": "Görüşmek üzere" } }),
    )
    .await;
    app.admin(
        UPDATE_STEP,
        json!({ "id": more, "step": { "choice": { "text": "Başka?", "options": [
            { "label": "Evet", "next": note }, { "label": "Hayır", "next": ticket_step } ] } } }),
    )
    .await;
    app.admin(PUBLISH_FLOW, json!({ "id": flow_id })).await;
    app.admin(
        CREATE_RULE,
        json!({ "tag": "notes", "emails": ["ops@example.com"] }),
    )
    .await;

    let turn = widget(&app, &start_conversation(), json!({ "flowId": flow_id })).await;
    let conversation_id = id(&turn["conversation"]["id"]);
    // Every note at the largest size a message may have, until the last turn opens the ticket.
    let notes = (MAX_VISITOR_TURNS as usize - 1) / 2 + 1;
    let mut sent_chars = 0;
    let mut turn = turn;
    for n in 0..notes {
        let text = format!("{n:03} {}", "x".repeat(MAX_MESSAGE_CHARS - 4));
        sent_chars += text.len();
        turn = widget(
            &app,
            &send_visitor_message(),
            json!({ "conversationId": conversation_id, "text": text }),
        )
        .await;
        assert_eq!(turn["awaiting"], "CHOICE", "note {n}");
        let label = if n + 1 < notes { 0 } else { 1 };
        turn = widget(
            &app,
            &choose_option(),
            json!({ "conversationId": conversation_id, "optionId": turn["options"][label]["id"] }),
        )
        .await;
    }
    assert_eq!(turn["conversation"]["status"], "COMPLETED", "{turn:#}");
    let ticket_id = id(&turn["ticket"]["id"]);

    let t = app.admin(TICKET_CONTENT, json!({ "id": ticket_id })).await["ticket"].clone();
    let lines = t["transcript"].as_array().unwrap();
    let chars: usize = lines
        .iter()
        .map(|l| l["text"].as_str().unwrap().chars().count())
        .sum();
    assert!(lines.len() <= TICKET_TRANSCRIPT_LINES, "{}", lines.len());
    assert!(chars <= TICKET_TRANSCRIPT_CHARS, "{chars}");
    assert_eq!(
        lines.last().unwrap()["text"],
        "Hayır",
        "the latest lines are kept"
    );
    let message = t["message"].as_str().unwrap();
    assert!(message.chars().count() <= TICKET_TRANSCRIPT_CHARS);
    assert!(
        message.contains(&format!("{:03} ", notes - 1)),
        "the last note"
    );
    assert!(!message.contains("000 "), "the first note is left out");
    // The conversation itself keeps every line.
    let whole = t["conversation"]["transcript"].as_array().unwrap().len();
    assert_eq!(whole, 1 + notes * 4 + 1);

    assert!(
        smtp.wait_until(Duration::from_secs(15), |m| !m.is_empty())
            .await,
        "no mail"
    );
    let mails = smtp.received_by("ops@example.com");
    assert_eq!(mails.len(), 1);
    let size = mails[0].data.len();
    eprintln!(
        "visitor sent {sent_chars} characters in {notes} notes; the ticket keeps {} lines, \
         {chars} characters; the mail is {size} bytes",
        lines.len()
    );
    // Message and transcript (30,000 characters each), once as text and once as HTML, with
    // room for the encoding.
    assert!(size < 4 * 2 * TICKET_TRANSCRIPT_CHARS, "{size} bytes");
    let mail = mails[0].data.replace("=\r\n", "");
    // The confirmation and the goodbye were said after the ticket was opened.
    let omitted = whole - 2 - lines.len();
    let flagged = app
        .admin(
            "query($id: ID!) { ticket(id: $id) { transcriptOmitted } }",
            json!({ "id": ticket_id }),
        )
        .await;
    assert_eq!(flagged["ticket"]["transcriptOmitted"], json!(omitted));
    assert!(
        mail.contains(&format!(
            "its first {omitted} lines are left out here; the latest are below."
        )),
        "{}",
        &mail[..2000.min(mail.len())]
    );
    app.stop().await;
}

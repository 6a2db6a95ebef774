//! The first minute: on the embedded default's first start (an empty SQLite database), beside
//! the demo account, a published demo flow (a greeting, an e-mail question, a ticket step
//! `offline_message` that says "Talep alındı", an end), a `*` rule to a demo address, and the
//! `demo` row the page at `/` reads. Never on PostgreSQL, never on a later start.

use entity::demo;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, TransactionTrait};

use crate::flows::StepInput;
use crate::keys::NewAccount;
use crate::{Result, now};

/// Where the demo's tickets are mailed (a reserved domain: with `SMTP_URL` set to a real
/// relay, change the rule first).
pub const MAIL_TO: &str = "demo@example.com";

/// Makes the demo flow, its rule and the `demo` row for the new `account`.
pub async fn create<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account: &NewAccount,
) -> Result<demo::Model> {
    let owner = account.account_id;
    let flow = crate::flows::create_flow(db, owner, "Demo").await?;
    let steps = [
        StepInput::Message {
            text: "Merhaba! This is the demo chatbot. Leave a message and it becomes a ticket."
                .to_owned(),
            next: None,
        },
        StepInput::Question {
            text: "What is your e-mail address?".to_owned(),
            field: "email".to_owned(),
            next: None,
        },
        StepInput::Question {
            text: "How can we help?".to_owned(),
            field: "message".to_owned(),
            next: None,
        },
        StepInput::Ticket {
            topic: "offline_message".to_owned(),
            confirmation_message: "Talep alındı".to_owned(),
            forward_emails: Vec::new(),
            next: None,
            confirm_visitor: false,
        },
        StepInput::End {
            text: Some("Görüşmek üzere!".to_owned()),
        },
    ];
    for step in &steps {
        crate::flows::add_step(db, owner, flow.id, step).await?;
    }
    crate::design::publish_flow(db, owner, flow.id).await?;
    crate::rules::create_rule(
        db,
        owner,
        &crate::rules::RuleInput {
            tag: "*".to_owned(),
            agent_ids: Vec::new(),
            emails: vec![MAIL_TO.to_owned()],
            locale: None,
        },
    )
    .await?;
    let row = demo::Model {
        id: 1,
        account_id: owner,
        flow_id: flow.id,
        widget_key: account.widget_key.clone(),
        mail_to: MAIL_TO.to_owned(),
        created_at: now(),
    };
    demo::Entity::insert(demo::ActiveModel {
        id: Set(row.id),
        account_id: Set(row.account_id),
        flow_id: Set(row.flow_id),
        widget_key: Set(row.widget_key.clone()),
        mail_to: Set(row.mail_to.clone()),
        created_at: Set(row.created_at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(row)
}

/// The demo, when this database has one.
pub async fn find(db: &impl ConnectionTrait) -> Result<Option<demo::Model>> {
    Ok(demo::Entity::find_by_id(1).one(db).await?)
}

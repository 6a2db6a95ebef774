//! Opening tickets (what a chatbot's ticket step does) and reading them back.

use std::collections::HashMap;

use entity::{account, delivery, flow, step, ticket};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use crate::events::{self, Event};
use crate::flows::{self, KIND_TICKET};
use crate::queue::{self, Job};
use crate::{Error, Result, now, validate};

/// Ticket status while nobody has handled it.
pub const STATUS_OPEN: &str = "OPEN";

/// Who left the message, as far as they told us.
#[derive(Clone, Debug, Default)]
pub struct VisitorInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// What the chat widget sends when a visitor reaches a ticket step.
#[derive(Clone, Debug)]
pub struct OpenTicket {
    pub step_id: Uuid,
    pub message: String,
    pub visitor: VisitorInput,
}

/// A freshly opened ticket and what the bot says back.
#[derive(Clone, Debug)]
pub struct Opened {
    pub ticket: ticket::Model,
    pub confirmation_message: String,
}

/// Everything a new ticket is made of, whichever way it was opened.
#[derive(Clone, Debug)]
pub struct NewTicket {
    pub flow_id: Uuid,
    pub flow_name: String,
    pub step_id: Uuid,
    pub topic: String,
    pub forward_emails: Vec<String>,
    /// Validated already.
    pub message: String,
    /// Validated already.
    pub visitor: VisitorInput,
    pub conversation_id: Option<Uuid>,
    pub transcript: Option<serde_json::Value>,
    pub answers: Option<serde_json::Value>,
}

/// Stores a ticket and queues its routing job on `txn`, the caller's transaction: either both
/// exist afterwards or neither does.
pub async fn insert_ticket(
    txn: &impl ConnectionTrait,
    account_id: Uuid,
    new: NewTicket,
) -> Result<ticket::Model> {
    let id = Uuid::now_v7();
    let created_at = now();
    let job = Job::RouteTicket { ticket_id: id };
    let job_key = format!("route:{id}");
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        return insert_ticket_postgres(txn, account_id, id, created_at, new, &job, &job_key).await;
    }
    // Every opening of the account waits for the account row from the counter update to the
    // commit, so that lock is taken as late as possible: the job, which needs nothing the
    // counter decides, goes first. On SQLite the first write takes the database's write lock
    // before anything is read, so concurrent openings queue instead of failing.
    queue::enqueue(txn, &job, &job_key, created_at).await?;
    // RETURNING saves a round trip on the hot path of every ticket.
    let number = account::Entity::update_many()
        .col_expr(
            account::Column::TicketSeq,
            Expr::col(account::Column::TicketSeq).add(1),
        )
        .filter(account::Column::Id.eq(account_id))
        .exec_with_returning(txn)
        .await?
        .first()
        .map(|a| a.ticket_seq)
        .ok_or(Error::NotFound("account"))?;
    Ok(ticket::ActiveModel {
        id: Set(id),
        account_id: Set(account_id),
        number: Set(number),
        flow_id: Set(Some(new.flow_id)),
        step_id: Set(Some(new.step_id)),
        flow_name: Set(new.flow_name),
        topic_key: Set(validate::tag_key(&new.topic)),
        topic: Set(new.topic),
        status: Set(STATUS_OPEN.to_owned()),
        message: Set(new.message),
        visitor_name: Set(new.visitor.name),
        visitor_email: Set(new.visitor.email),
        visitor_phone: Set(new.visitor.phone),
        forward_emails: Set(serde_json::json!(new.forward_emails)),
        conversation_id: Set(new.conversation_id),
        transcript: Set(new.transcript),
        answers: Set(new.answers),
        created_at: Set(created_at),
        routed_at: Set(None),
    }
    .insert(txn)
    .await?)
}

/// [`insert_ticket`] on PostgreSQL: the account's next number, the ticket and its job in one
/// statement. Every opening of the account waits for the account row's lock from the counter
/// update to the commit; here it is held for no network round trip at all, where a statement
/// each held it for two or three (`openTicket` at 16 connections: about 1,225 -> 1,330
/// requests/s; bench/README.md).
async fn insert_ticket_postgres(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    new: NewTicket,
    job: &Job,
    job_key: &str,
) -> Result<ticket::Model> {
    let mut values: Vec<sea_orm::Value> = vec![
        account_id.into(),
        id.into(),
        new.flow_id.into(),
        new.step_id.into(),
        new.flow_name.into(),
        validate::tag_key(&new.topic).into(),
        new.topic.into(),
        STATUS_OPEN.into(),
        new.message.into(),
        new.visitor.name.into(),
        new.visitor.email.into(),
        new.visitor.phone.into(),
        serde_json::json!(new.forward_emails).into(),
        new.conversation_id.into(),
        new.transcript.into(),
        new.answers.into(),
        created_at.into(),
    ];
    // The job is written for the inserted ticket only: none when the account is missing.
    let (insert_job, job_values) =
        queue::postgres_insert(job, job_key, created_at, values.len() + 1, Some("ticket"))?;
    values.extend(job_values);
    let sql = format!(
        "WITH number AS ( \
             UPDATE accounts SET ticket_seq = ticket_seq + 1 WHERE id = $1 RETURNING ticket_seq \
         ), ticket AS ( \
             INSERT INTO tickets (id, account_id, number, flow_id, step_id, flow_name, topic_key, \
                                  topic, status, message, visitor_name, visitor_email, \
                                  visitor_phone, forward_emails, conversation_id, transcript, \
                                  answers, created_at) \
             SELECT $2, $1, number.ticket_seq, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                    $14, $15, $16, $17 \
             FROM number \
             RETURNING * \
         ), job AS ({insert_job}) \
         SELECT * FROM ticket"
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            sql,
            values,
        ))
        .await?
        .ok_or(Error::NotFound("account"))?;
    Ok(ticket::Model::from_query_result(&row, "")?)
}

/// Validates a visitor's contact details.
pub fn validate_visitor(visitor: &VisitorInput) -> Result<VisitorInput> {
    Ok(VisitorInput {
        name: validate::optional(visitor.name.as_deref(), |v| {
            validate::name("visitor.name", v)
        })?,
        email: validate::optional(visitor.email.as_deref(), |v| {
            validate::email("visitor.email", v)
        })?,
        phone: validate::optional(visitor.phone.as_deref(), |v| {
            validate::phone("visitor.phone", v)
        })?,
    })
}

/// Opens a ticket from a ticket step of a flow's design (what `openTicket` does), with its
/// routing job in the same transaction.
pub async fn open_ticket<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    input: &OpenTicket,
) -> Result<Opened> {
    let message = validate::message("message", &input.message)?;
    let visitor = validate_visitor(&input.visitor)?;
    // The step and its flow in one query.
    let (step, flow) = step::Entity::find_by_id(input.step_id)
        .filter(step::Column::AccountId.eq(account_id))
        .find_also_related(flow::Entity)
        .one(db)
        .await?
        .ok_or(Error::NotFound("step"))?;
    let flow = flow.ok_or(Error::NotFound("flow"))?;
    if step.kind != KIND_TICKET {
        return Err(Error::invalid("stepId", "is not a ticket step"));
    }
    let txn = crate::db::begin(db).await?;
    let ticket = insert_ticket(
        &txn,
        account_id,
        NewTicket {
            flow_id: flow.id,
            flow_name: flow.name,
            step_id: step.id,
            topic: step.topic.clone().unwrap_or_default(),
            forward_emails: flows::forward_emails(&step),
            message,
            visitor,
            conversation_id: None,
            transcript: None,
            answers: None,
        },
    )
    .await?;
    txn.commit().await?;
    events::published(
        db,
        Event::TicketOpened {
            account_id,
            ticket_id: ticket.id,
        },
    );
    Ok(Opened {
        ticket,
        confirmation_message: step.confirmation_message.unwrap_or_default(),
    })
}

/// A page of tickets, newest first.
#[derive(Clone, Debug)]
pub struct TicketPage {
    pub tickets: Vec<ticket::Model>,
    pub has_next_page: bool,
}

/// Largest page a client may ask for.
pub const MAX_PAGE: u64 = 200;

/// Refuses a `first` outside 1..=[`MAX_PAGE`]; every paged list shares the bound.
pub fn check_page_size(first: u64) -> Result<()> {
    if first == 0 || first > MAX_PAGE {
        return Err(Error::invalid(
            "first",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(())
}

/// The account's tickets, newest first, optionally of one topic (ignoring case), after the
/// ticket numbered `after_number`.
pub async fn list_tickets(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    topic: Option<&str>,
    first: u64,
    after_number: Option<i64>,
) -> Result<TicketPage> {
    check_page_size(first)?;
    let mut query = ticket::Entity::find().filter(ticket::Column::AccountId.eq(account_id));
    if let Some(topic) = topic {
        query = query.filter(ticket::Column::TopicKey.eq(validate::tag_key(topic.trim())));
    }
    if let Some(after) = after_number {
        query = query.filter(ticket::Column::Number.lt(after));
    }
    let mut tickets = query
        .order_by_desc(ticket::Column::Number)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next_page = tickets.len() as u64 > first;
    tickets.truncate(first as usize);
    Ok(TicketPage {
        tickets,
        has_next_page,
    })
}

/// One ticket of the account, or `None`.
pub async fn find_ticket(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<ticket::Model>> {
    Ok(ticket::Entity::find_by_id(id)
        .filter(ticket::Column::AccountId.eq(account_id))
        .one(db)
        .await?)
}

/// One delivery of the account, or `None`.
pub async fn find_delivery(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<delivery::Model>> {
    Ok(delivery::Entity::find_by_id(id)
        .filter(delivery::Column::AccountId.eq(account_id))
        .one(db)
        .await?)
}

/// Tickets by id, for batch loading; the caller has checked the account.
pub async fn tickets_by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ticket::Model>> {
    Ok(ticket::Entity::find()
        .filter(ticket::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect())
}

/// The deliveries of each ticket, for batch loading.
pub async fn deliveries_of_tickets(
    db: &impl ConnectionTrait,
    ticket_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<delivery::Model>>> {
    let rows = delivery::Entity::find()
        .filter(delivery::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .order_by_asc(delivery::Column::CreatedAt)
        .order_by_asc(delivery::Column::Id)
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<delivery::Model>> = HashMap::new();
    for d in rows {
        out.entry(d.ticket_id).or_default().push(d);
    }
    Ok(out)
}

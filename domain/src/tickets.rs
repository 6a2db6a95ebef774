//! Opening tickets (what a chatbot's ticket step does) and reading them back.

use std::collections::HashMap;

use entity::{account, agent, delivery, flow, step, ticket};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionSession,
    TransactionTrait,
};
use uuid::Uuid;

use crate::infra::events::{self, Event};
use crate::infra::queue::{self, Job};
use crate::vocab::{Addresses, Answers, StepKind, TicketStatus, Transcript};
use crate::{Error, Result, now, validate};

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
    /// Mail the visitor a confirmation (the step's setting).
    pub confirm_visitor: bool,
    /// Validated already.
    pub message: String,
    /// Validated already.
    pub visitor: VisitorInput,
    pub conversation_id: Option<Uuid>,
    pub transcript: Option<Transcript>,
    /// Earlier conversation lines `transcript` leaves out (0 when whole).
    pub transcript_omitted: i32,
    pub answers: Option<Answers>,
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
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        let (design, visit) = new.split();
        return open_in_one_statement(txn, account_id, id, created_at, design, visit)
            .await?
            .map(|(ticket, _)| ticket)
            .ok_or(Error::NotFound("account"));
    }
    let (job, job_key) = routing_job(id);
    // The job takes its round from the account row (see `queue::ROUND_JOBS`), then the
    // counter gives the number. On SQLite the first write takes the database's write lock
    // before anything is read, so concurrent openings queue instead of failing.
    queue::enqueue(txn, &job, &job_key, created_at, account_id).await?;
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
        status: Set(TicketStatus::Open),
        message: Set(new.message),
        visitor_name: Set(new.visitor.name),
        visitor_email: Set(new.visitor.email),
        visitor_phone: Set(new.visitor.phone),
        forward_emails: Set(Addresses(new.forward_emails)),
        conversation_id: Set(new.conversation_id),
        transcript: Set(new.transcript),
        transcript_omitted: Set(new.transcript_omitted),
        answers: Set(new.answers),
        created_at: Set(created_at),
        routed_at: Set(None),
        erased_at: Set(None),
        assignee_id: Set(None),
        closing_note: Set(None),
        closed_at: Set(None),
        confirm_visitor: Set(new.confirm_visitor),
    }
    .insert(txn)
    .await?)
}

/// Where the design fields of a ticket opened in one PostgreSQL statement come from.
enum Design {
    /// From the caller: a conversation runs the design it started with.
    Given {
        flow_id: Uuid,
        step_id: Uuid,
        flow_name: String,
        topic: String,
        forward_emails: Vec<String>,
        confirm_visitor: bool,
    },
    /// The account's ticket step as it is now (`openTicket`); no ticket when it is not one.
    Step(Uuid),
}

/// What a ticket holds besides its design fields.
struct Visit {
    message: String,
    visitor: VisitorInput,
    conversation_id: Option<Uuid>,
    transcript: Option<Transcript>,
    transcript_omitted: i32,
    answers: Option<Answers>,
}

impl NewTicket {
    fn split(self) -> (Design, Visit) {
        let design = Design::Given {
            flow_id: self.flow_id,
            step_id: self.step_id,
            flow_name: self.flow_name,
            topic: self.topic,
            forward_emails: self.forward_emails,
            confirm_visitor: self.confirm_visitor,
        };
        let visit = Visit {
            message: self.message,
            visitor: self.visitor,
            conversation_id: self.conversation_id,
            transcript: self.transcript,
            transcript_omitted: self.transcript_omitted,
            answers: self.answers,
        };
        (design, visit)
    }
}

/// The idempotency key of a ticket's routing job.
pub fn routing_key(ticket_id: Uuid) -> String {
    format!("route:{ticket_id}")
}

/// A new ticket's routing job and its idempotency key.
fn routing_job(ticket_id: Uuid) -> (Job, String) {
    (Job::RouteTicket { ticket_id }, routing_key(ticket_id))
}

/// Opens a ticket on PostgreSQL in one statement: its design fields, the account's next number,
/// the ticket and its routing job; with the step's confirmation message. `None` when the step
/// is not a ticket step of the account, or the account is gone: nothing is written then.
///
/// Every opening of the account waits for the account row's lock from the counter update to
/// the commit; here it is held for no network round trip, where a statement each held it for
/// two or three, and `openTicket` makes one round trip instead of six (at 16 connections
/// about 1,225 -> 1,500-1,700 requests/s; bench/README.md).
async fn open_in_one_statement(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    design: Design,
    visit: Visit,
) -> Result<Option<(ticket::Model, Option<String>)>> {
    let mut values: Vec<sea_orm::Value> = vec![account_id.into(), id.into()];
    let mut bind = |value: sea_orm::Value| {
        values.push(value);
        format!("${}", values.len())
    };
    let design = match design {
        Design::Given {
            flow_id,
            step_id,
            flow_name,
            topic,
            forward_emails,
            confirm_visitor,
        } => format!(
            "SELECT {}::uuid AS flow_id, {}::uuid AS step_id, {}::text AS flow_name, \
                    {}::text AS topic_key, {}::text AS topic, {}::json AS forward_emails, \
                    NULL::text AS confirmation_message, {}::boolean AS confirm_visitor",
            bind(flow_id.into()),
            bind(step_id.into()),
            bind(flow_name.into()),
            bind(validate::tag_key(&topic).into()),
            bind(topic.into()),
            bind(Addresses(forward_emails).into()),
            bind(confirm_visitor.into()),
        ),
        Design::Step(step_id) => format!(
            "SELECT f.id AS flow_id, s.id AS step_id, f.name AS flow_name, \
                    COALESCE(s.topic_key, '') AS topic_key, COALESCE(s.topic, '') AS topic, \
                    s.forward_emails, s.confirmation_message, s.confirm_visitor \
             FROM steps s JOIN flows f ON f.id = s.flow_id \
             WHERE s.id = {} AND s.account_id = $1 AND s.kind = '{}'",
            bind(step_id.into()),
            StepKind::Ticket.as_str(),
        ),
    };
    let visit = [
        bind(TicketStatus::Open.as_str().into()),
        bind(visit.message.into()),
        bind(visit.visitor.name.into()),
        bind(visit.visitor.email.into()),
        bind(visit.visitor.phone.into()),
        bind(visit.conversation_id.into()),
        bind(visit.transcript.into()),
        bind(visit.transcript_omitted.into()),
        bind(visit.answers.into()),
        bind(created_at.into()),
    ]
    .join(", ");
    // The job is written for the inserted ticket only.
    let (job, job_key) = routing_job(id);
    let (insert_job, job_values) = queue::postgres_insert(
        &job,
        account_id,
        &job_key,
        created_at,
        values.len() + 1,
        Some("ticket, number"),
        "number.queue_round",
    )?;
    // The job's parameters start with the queue's name, which the round's head reads too.
    let queue_param = format!("${}", values.len() + 2);
    values.extend(job_values);
    let (round, head) = queue::next_round(DatabaseBackend::Postgres, &queue_param);
    let sql = format!(
        "WITH design AS ({design}), head AS MATERIALIZED ({head}), number AS ( \
             UPDATE accounts SET ticket_seq = ticket_seq + 1, {round} FROM head \
             WHERE id = $1 AND EXISTS (SELECT FROM design) RETURNING ticket_seq, queue_round \
         ), ticket AS ( \
             INSERT INTO tickets (id, account_id, number, flow_id, step_id, flow_name, topic_key, \
                                  topic, status, message, visitor_name, visitor_email, \
                                  visitor_phone, conversation_id, transcript, \
                                  transcript_omitted, answers, \
                                  created_at, forward_emails, confirm_visitor) \
             SELECT $2, $1, number.ticket_seq, design.flow_id, design.step_id, design.flow_name, \
                    design.topic_key, design.topic, {visit}, design.forward_emails, \
                    design.confirm_visitor \
             FROM number, design \
             RETURNING * \
         ), job AS ({insert_job}) \
         SELECT ticket.*, design.confirmation_message FROM ticket, design"
    );
    let Some(row) = conn
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            sql,
            values,
        ))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        ticket::Model::from_query_result(&row, "")?,
        row.try_get("", "confirmation_message")?,
    )))
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
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let visit = Visit {
            message,
            visitor,
            conversation_id: None,
            transcript: None,
            transcript_omitted: 0,
            answers: None,
        };
        let design = Design::Step(input.step_id);
        let opened =
            open_in_one_statement(db, account_id, Uuid::now_v7(), now(), design, visit).await?;
        let Some((ticket, confirmation)) = opened else {
            // Nothing was written; the step says why.
            find_ticket_step(db, account_id, input.step_id).await?;
            return Err(Error::NotFound("account"));
        };
        return Ok(Opened {
            ticket,
            confirmation_message: confirmation.unwrap_or_default(),
        });
    }
    let (step, flow) = find_ticket_step(db, account_id, input.step_id).await?;
    let txn = crate::infra::db::begin(db).await?;
    let ticket = insert_ticket(
        &txn,
        account_id,
        NewTicket {
            flow_id: flow.id,
            flow_name: flow.name,
            step_id: step.id,
            topic: step.topic.clone().unwrap_or_default(),
            forward_emails: step.forward_emails.0.clone(),
            confirm_visitor: step.confirm_visitor,
            message,
            visitor,
            conversation_id: None,
            transcript: None,
            transcript_omitted: 0,
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

/// The account's ticket step `step_id` with its flow (one query), or why it cannot open tickets.
async fn find_ticket_step(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    step_id: Uuid,
) -> Result<(step::Model, flow::Model)> {
    let (step, flow) = step::Entity::find_by_id(step_id)
        .filter(step::Column::AccountId.eq(account_id))
        .find_also_related(flow::Entity)
        .one(db)
        .await?
        .ok_or(Error::NotFound("step"))?;
    let flow = flow.ok_or(Error::NotFound("flow"))?;
    if step.kind != StepKind::Ticket {
        return Err(Error::invalid("stepId", "is not a ticket step"));
    }
    Ok((step, flow))
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

/// Cuts a page read with one row more than `first` (how every paged list tells whether more
/// follow) back to `first` rows; whether more followed.
pub fn cut_page<T>(rows: &mut Vec<T>, first: u64) -> bool {
    let more = rows.len() as u64 > first;
    rows.truncate(first as usize);
    more
}

/// Which of the account's tickets a list shows; `None`: any.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    /// A topic, ignoring case.
    pub topic: Option<String>,
    pub status: Option<TicketStatus>,
    /// An agent of the account (another account's is not found).
    pub assignee: Option<Uuid>,
}

/// The account's tickets matching `filter`, newest first, after the ticket numbered
/// `after_number`. Each filter has its index (`number` within account and topic, status or
/// assignee), so a page reads about `first` rows whatever the history holds.
pub async fn list_tickets(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    filter: &TicketFilter,
    first: u64,
    after_number: Option<i64>,
) -> Result<TicketPage> {
    check_page_size(first)?;
    let mut query = ticket::Entity::find().filter(ticket::Column::AccountId.eq(account_id));
    if let Some(topic) = &filter.topic {
        query = query.filter(ticket::Column::TopicKey.eq(validate::tag_key(topic.trim())));
    }
    if let Some(status) = filter.status {
        query = query.filter(ticket::Column::Status.eq(status));
    }
    if let Some(assignee) = filter.assignee {
        let known = agent::Entity::find_by_id(assignee)
            .filter(agent::Column::AccountId.eq(account_id))
            .count(db)
            .await?;
        if known == 0 {
            return Err(Error::NotFound("agent"));
        }
        query = query.filter(ticket::Column::AssigneeId.eq(assignee));
    }
    if let Some(after) = after_number {
        query = query.filter(ticket::Column::Number.lt(after));
    }
    let mut tickets = query
        .order_by_desc(ticket::Column::Number)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next_page = cut_page(&mut tickets, first);
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

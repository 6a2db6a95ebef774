//! Flow design checks and publishing: the step graph (explicit `next` links, the following
//! position by default, choice buttons), the problems `validateFlow` reports, and immutable
//! published versions that conversations run on.

use std::collections::{HashMap, HashSet, VecDeque};

use entity::{flow_version, live_topic, step};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use crate::vocab::{PublishedStep, StepKind};
use crate::{Error, Result, now, validate};

/// A step as it is published: everything a conversation needs, frozen.
fn published(s: &step::Model) -> PublishedStep {
    PublishedStep {
        id: s.id,
        position: s.position,
        kind: s.kind,
        text: s.text.clone(),
        field: s.field.clone(),
        topic: s.topic.clone(),
        confirmation_message: s.confirmation_message.clone(),
        forward_emails: s.forward_emails.0.clone(),
        next: s.next_step_id,
        options: s.options.clone().map(|o| o.0).unwrap_or_default(),
        confirm_visitor: s.confirm_visitor,
    }
}

/// Whether the conversation stops at this step to wait for the visitor.
pub fn waits(step: &PublishedStep) -> bool {
    step.kind == StepKind::Question || step.kind == StepKind::Choice
}

/// Where the conversation goes after step `index` through `next`: the linked step, or the
/// following position when `next` is unset. `None`: the flow ends (or the link is broken).
pub fn successor(steps: &[PublishedStep], index: usize, next: Option<Uuid>) -> Option<usize> {
    match next {
        Some(id) => steps.iter().position(|s| s.id == id),
        None => (index + 1 < steps.len()).then_some(index + 1),
    }
}

/// One thing that stops a flow from being published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `EMPTY_FLOW`, `DANGLING_LINK`, `CROSS_FLOW_LINK`, `UNLINKED_OPTION`, `UNREACHABLE_STEP`,
    /// `LOOP_WITHOUT_WAIT` or `NO_TICKET_OR_END`.
    pub code: &'static str,
    pub step_id: Option<Uuid>,
    pub message: String,
}

fn problem(code: &'static str, step: &PublishedStep, message: impl Into<String>) -> Problem {
    Problem {
        code,
        step_id: Some(step.id),
        message: message.into(),
    }
}

/// Every problem of a flow's steps (in order). `elsewhere` holds the ids of the account's
/// steps in other flows, to tell a cross-flow link from a dangling one.
pub fn check(steps: &[PublishedStep], elsewhere: &HashSet<Uuid>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if steps.is_empty() {
        return vec![Problem {
            code: "EMPTY_FLOW",
            step_id: None,
            message: "the flow has no steps".into(),
        }];
    }
    let index: HashMap<Uuid, usize> = steps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let link = |from: &PublishedStep, target: Uuid, what: &str| -> Option<Problem> {
        if index.contains_key(&target) {
            None
        } else if elsewhere.contains(&target) {
            Some(problem(
                "CROSS_FLOW_LINK",
                from,
                format!("{what} leads to a step of another flow"),
            ))
        } else {
            Some(problem(
                "DANGLING_LINK",
                from,
                format!("{what} leads to a step that does not exist"),
            ))
        }
    };
    // Edges of the graph, per step: where the conversation can go next.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        match s.kind {
            StepKind::Choice => {
                for o in &s.options {
                    match o.next {
                        Some(target) => {
                            problems.extend(link(s, target, &format!("option \"{}\"", o.label)));
                            edges[i].extend(index.get(&target));
                        }
                        None => problems.push(problem(
                            "UNLINKED_OPTION",
                            s,
                            format!("option \"{}\" does not lead anywhere yet", o.label),
                        )),
                    }
                }
            }
            StepKind::End => {}
            _ => {
                if let Some(target) = s.next {
                    problems.extend(link(s, target, "its next link"));
                }
                edges[i].extend(successor(steps, i, s.next));
            }
        }
    }

    let mut reached = vec![false; steps.len()];
    let mut queue = VecDeque::from([0]);
    reached[0] = true;
    while let Some(i) = queue.pop_front() {
        for &j in &edges[i] {
            if !reached[j] {
                reached[j] = true;
                queue.push_back(j);
            }
        }
    }
    for (i, s) in steps.iter().enumerate() {
        if !reached[i] {
            problems.push(problem(
                "UNREACHABLE_STEP",
                s,
                "no path from the first step leads here",
            ));
        }
    }

    // Steps that do not wait have at most one way on: following it from each of them either
    // stops, reaches a waiting step, or comes back round - a loop the visitor can never leave.
    let mut reported: HashSet<usize> = HashSet::new();
    for start in 0..steps.len() {
        if waits(&steps[start]) || !reached[start] {
            continue;
        }
        let mut path = vec![start];
        let mut at = start;
        while let Some(&next) = edges[at].first() {
            if waits(&steps[next]) {
                break;
            }
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let cycle = &path[pos..];
                let first = *cycle
                    .iter()
                    .min_by_key(|&&c| steps[c].position)
                    .unwrap_or(&next);
                if reported.insert(first) {
                    problems.push(problem(
                        "LOOP_WITHOUT_WAIT",
                        &steps[first],
                        "the conversation would loop here forever without waiting for the visitor",
                    ));
                }
                break;
            }
            path.push(next);
            at = next;
        }
    }

    // Every way through must open a ticket or reach an end step before the flow runs out.
    let mut seen: HashSet<(usize, bool)> = HashSet::new();
    let mut queue = VecDeque::from([(0usize, false)]);
    let mut flagged: HashSet<usize> = HashSet::new();
    while let Some((i, done)) = queue.pop_front() {
        if !seen.insert((i, done)) {
            continue;
        }
        let s = &steps[i];
        let done = done || s.kind == StepKind::Ticket || s.kind == StepKind::End;
        if s.kind == StepKind::End {
            continue;
        }
        let runs_out =
            s.kind != StepKind::Choice && successor(steps, i, s.next).is_none() && s.next.is_none();
        if runs_out && !done && flagged.insert(i) {
            problems.push(problem(
                "NO_TICKET_OR_END",
                s,
                "a path ends here without a ticket step or an end step",
            ));
        }
        for &j in &edges[i] {
            queue.push_back((j, done));
        }
    }
    problems
}

/// The account's step ids outside `flow_id` among `targets`.
async fn steps_elsewhere(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    flow_id: Uuid,
    targets: HashSet<Uuid>,
) -> Result<HashSet<Uuid>> {
    if targets.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<Uuid> = step::Entity::find()
        .select_only()
        .column(step::Column::Id)
        .filter(step::Column::AccountId.eq(account_id))
        .filter(step::Column::FlowId.ne(flow_id))
        .filter(step::Column::Id.is_in(targets))
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().collect())
}

async fn draft(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    flow_id: Uuid,
) -> Result<Vec<PublishedStep>> {
    crate::flows::find_flow(db, account_id, flow_id)
        .await?
        .ok_or(Error::NotFound("flow"))?;
    let steps = step::Entity::find()
        .filter(step::Column::FlowId.eq(flow_id))
        .order_by_asc(step::Column::Position)
        .all(db)
        .await?;
    Ok(steps.iter().map(published).collect())
}

async fn problems_of(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    flow_id: Uuid,
    steps: &[PublishedStep],
) -> Result<Vec<Problem>> {
    let targets: HashSet<Uuid> = steps
        .iter()
        .flat_map(|s| {
            s.next
                .into_iter()
                .chain(s.options.iter().filter_map(|o| o.next))
        })
        .collect();
    let elsewhere = steps_elsewhere(db, account_id, flow_id, targets).await?;
    Ok(check(steps, &elsewhere))
}

/// Every problem of the flow's draft.
pub async fn validate_flow(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    flow_id: Uuid,
) -> Result<Vec<Problem>> {
    let steps = draft(db, account_id, flow_id).await?;
    problems_of(db, account_id, flow_id, &steps).await
}

/// Publishes the draft as the flow's next version; refused while it has problems. New
/// conversations start on it; running ones keep theirs.
pub async fn publish_flow<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    flow_id: Uuid,
) -> Result<flow_version::Model> {
    // The draft is read and published under the flow's lock: a deletion, or a step added, in
    // between cannot slip past it.
    // (Another account's flow is locked for a moment and then not found by `draft`.)
    let txn = crate::infra::db::begin(db).await?;
    crate::flows::lock_flow(&txn, flow_id).await?;
    let steps = draft(&txn, account_id, flow_id).await?;
    let problems = problems_of(&txn, account_id, flow_id, &steps).await?;
    if let Some(first) = problems.first() {
        return Err(Error::invalid(
            "id",
            format!(
                "the flow has {} problem(s) (first: {}); see validateFlow",
                problems.len(),
                first.message
            ),
        ));
    }
    let last: Option<i32> = flow_version::Entity::find()
        .select_only()
        .column_as(flow_version::Column::Number.max(), "number")
        .filter(flow_version::Column::FlowId.eq(flow_id))
        .into_tuple::<Option<i32>>()
        .one(&txn)
        .await?
        .flatten();
    let version = flow_version::ActiveModel {
        id: Set(Uuid::now_v7()),
        flow_id: Set(flow_id),
        account_id: Set(account_id),
        number: Set(last.unwrap_or(0) + 1),
        steps: Set(steps.clone().into()),
        published_at: Set(now()),
    }
    .insert(&txn)
    .await?;
    live_topic::Entity::delete_many()
        .filter(live_topic::Column::FlowId.eq(flow_id))
        .exec(&txn)
        .await?;
    let mut seen = HashSet::new();
    let topics: Vec<live_topic::ActiveModel> = steps
        .iter()
        .filter(|s| s.kind == StepKind::Ticket)
        .filter_map(|s| Some((s.id, s.topic.clone()?)))
        .filter(|(id, _)| seen.insert(*id))
        .map(|(step_id, topic)| live_topic::ActiveModel {
            flow_id: Set(flow_id),
            step_id: Set(step_id),
            account_id: Set(account_id),
            topic_key: Set(validate::tag_key(&topic)),
            topic: Set(topic),
        })
        .collect();
    if !topics.is_empty() {
        live_topic::Entity::insert_many(topics).exec(&txn).await?;
    }
    txn.commit().await?;
    Ok(version)
}

/// The latest published version of a flow of the account.
pub async fn live_version(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    flow_id: Uuid,
) -> Result<Option<flow_version::Model>> {
    Ok(flow_version::Entity::find()
        .filter(flow_version::Column::FlowId.eq(flow_id))
        .filter(flow_version::Column::AccountId.eq(account_id))
        .order_by_desc(flow_version::Column::Number)
        .one(db)
        .await?)
}

/// The published versions of flows, newest first, for batch loading.
pub async fn versions_of_flows(
    db: &impl ConnectionTrait,
    flow_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<flow_version::Model>>> {
    let rows = flow_version::Entity::find()
        .filter(flow_version::Column::FlowId.is_in(flow_ids.iter().copied()))
        .order_by_desc(flow_version::Column::Number)
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<flow_version::Model>> = HashMap::new();
    for v in rows {
        out.entry(v.flow_id).or_default().push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ChoiceOption;

    fn s(n: u128, kind: StepKind, next: Option<u128>) -> PublishedStep {
        PublishedStep {
            id: Uuid::from_u128(n),
            position: n as i32,
            kind,
            text: Some("t".into()),
            field: (kind == StepKind::Question).then(|| "name".into()),
            topic: (kind == StepKind::Ticket).then(|| "offline_message".into()),
            confirmation_message: None,
            forward_emails: vec![],
            next: next.map(Uuid::from_u128),
            options: vec![],
            confirm_visitor: false,
        }
    }

    fn choice(n: u128, nexts: &[Option<u128>]) -> PublishedStep {
        let mut step = s(n, StepKind::Choice, None);
        step.options = nexts
            .iter()
            .enumerate()
            .map(|(i, next)| ChoiceOption {
                id: Uuid::from_u128(1000 + i as u128),
                label: format!("option {i}"),
                next: next.map(Uuid::from_u128),
            })
            .collect();
        step
    }

    fn codes(steps: &[PublishedStep]) -> Vec<(&'static str, u128)> {
        check(steps, &HashSet::from([Uuid::from_u128(99)]))
            .into_iter()
            .map(|p| (p.code, p.step_id.map_or(0, |id| id.as_u128())))
            .collect()
    }

    #[test]
    fn a_linear_flow_to_a_ticket_is_fine() {
        assert!(
            codes(&[
                s(0, StepKind::Message, None),
                s(1, StepKind::Question, None),
                s(2, StepKind::Ticket, None)
            ])
            .is_empty()
        );
    }

    #[test]
    fn each_problem_kind_is_reported_at_its_step() {
        assert_eq!(codes(&[]), [("EMPTY_FLOW", 0)]);
        assert!(
            codes(&[s(0, StepKind::Message, Some(42)), s(1, StepKind::End, None)])
                .contains(&("DANGLING_LINK", 0))
        );
        assert!(
            codes(&[s(0, StepKind::Message, Some(99)), s(1, StepKind::End, None)])
                .contains(&("CROSS_FLOW_LINK", 0))
        );
        assert!(
            codes(&[choice(0, &[Some(1), None]), s(1, StepKind::End, None)])
                .contains(&("UNLINKED_OPTION", 0))
        );
        assert_eq!(
            codes(&[s(0, StepKind::End, None), s(1, StepKind::Message, None)]),
            [("UNREACHABLE_STEP", 1)]
        );
        assert_eq!(
            codes(&[
                s(0, StepKind::Message, None),
                s(1, StepKind::Message, Some(0))
            ]),
            [("LOOP_WITHOUT_WAIT", 0)]
        );
        assert_eq!(
            codes(&[
                s(0, StepKind::Message, None),
                s(1, StepKind::Question, None)
            ]),
            [("NO_TICKET_OR_END", 1)]
        );
    }

    #[test]
    fn loops_through_a_waiting_step_are_fine() {
        // A menu the visitor can come back to: message -> choice -> (message -> choice | end).
        let steps = [
            s(0, StepKind::Message, None),
            choice(1, &[Some(2), Some(3)]),
            s(2, StepKind::Message, Some(1)),
            s(3, StepKind::End, None),
        ];
        assert!(codes(&steps).is_empty(), "{:?}", codes(&steps));
    }

    #[test]
    fn one_branch_without_ticket_or_end_is_reported() {
        let steps = [
            choice(0, &[Some(1), Some(2)]),
            s(1, StepKind::Ticket, Some(3)),
            s(2, StepKind::Message, Some(4)),
            s(3, StepKind::End, None),
            s(4, StepKind::Message, Some(5)),
            s(5, StepKind::Question, None),
        ];
        // step 5 is the last position and has no next: the branch through 2 runs out there.
        let found = codes(&steps);
        assert!(found.contains(&("NO_TICKET_OR_END", 5)), "{found:?}");
        assert_eq!(found.len(), 1, "{found:?}");
    }
}

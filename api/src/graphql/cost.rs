//! What a query costs before it runs, so one request cannot ask for millions of objects.
//!
//! Every field costs 1 plus what is selected under it. A list field multiplies what is under
//! it by how many items it can return: its `first` for paged lists, otherwise a documented
//! bound (the per-account caps of `domain::limits`, or the most a row can hold). The schema's
//! description of each list field names its multiplier; the README lists them. async-graphql
//! adds the costs up and the `Limits` extension refuses a query over [`BUDGET`] with
//! `QUERY_TOO_COMPLEX`, naming its cost and the budget.
//!
//! Lists held inside their parent's row and never longer than a handful (a delivery's
//! sources, a rule's addresses) are not multiplied: they cost no query of their own.

/// The most a query may cost. About a quarter of a million objects: the largest admin
/// screens at the per-account caps (a page of 100 flows with all their steps, 1,000 topic
/// tags with 50 steps each, 50 tickets with 200 deliveries each) fit; lists nested in lists
/// nested in lists do not.
pub const BUDGET: usize = 250_000;

/// Costs above this are all "far over budget". Keeping each field's cost below it means the
/// sum over all fields of any request that fits in the body limit cannot overflow.
const CEILING: usize = 1 << 40;

/// Steps of a flow (`domain::limits::STEPS_PER_FLOW`).
pub const STEPS: usize = domain::limits::STEPS_PER_FLOW as usize;
/// Routing rules of an account.
pub const RULES: usize = domain::limits::ROUTING_RULES as usize;
/// Agents of an account.
pub const AGENTS: usize = domain::limits::AGENTS as usize;
/// API keys of an account.
pub const API_KEYS: usize = domain::limits::API_KEYS as usize;
/// Webhooks of an account.
pub const WEBHOOKS: usize = domain::limits::WEBHOOKS as usize;
/// Distinct topic tags of an account (`domain::limits::TOPIC_TAGS`).
pub const TOPIC_TAGS: usize = domain::limits::TOPIC_TAGS as usize;
/// Buttons of a choice step.
pub const CHOICE_OPTIONS: usize = domain::flows::MAX_OPTIONS;
/// Lines of a conversation's transcript: the most a conversation can hold under its turn and
/// re-ask caps (`domain::conversations::TRANSCRIPT_LINES`).
pub const TRANSCRIPT_LINES: usize = domain::conversations::TRANSCRIPT_LINES;
/// Lines of a ticket's transcript (`domain::conversations::TICKET_TRANSCRIPT_LINES`).
pub const TICKET_TRANSCRIPT_LINES: usize = domain::conversations::TICKET_TRANSCRIPT_LINES;
/// Attempts kept per webhook delivery.
pub const WEBHOOK_ATTEMPTS: usize = domain::infra::config::MAX_WEBHOOK_ATTEMPTS as usize;

/// Worker processes listed (the most recently seen).
pub const WORKERS: usize = domain::ops::MAX_WORKERS_LISTED as usize;
/// Addresses of a routing rule.
pub const RULE_EMAILS: usize = domain::validate::MAX_EMAILS;
/// Problems `validateFlow` reports: at most one per step and button.
pub const FLOW_PROBLEMS: usize = STEPS * (CHOICE_OPTIONS + 1);

/// The largest `first` of a paged list.
pub const MAX_FIRST: usize = domain::tickets::MAX_PAGE as usize;

/// The cost of a list of at most `bound` items, each costing `child` (at least 1).
pub fn list(bound: usize, child: usize) -> usize {
    bound
        .saturating_mul(child.max(1))
        .saturating_add(1)
        .min(CEILING)
}

/// The cost of a paged list returning at most `first` items; a `first` out of range is
/// refused when the field runs, so it is counted at the largest allowed.
pub fn page(first: Option<i32>, child: usize) -> usize {
    let first = first.map_or(MAX_FIRST, |f| {
        usize::try_from(f).map_or(MAX_FIRST, |f| f.min(MAX_FIRST))
    });
    list(first, child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_multiply_and_never_overflow() {
        assert_eq!(list(200, 3), 601);
        assert_eq!(list(20, 0), 21, "a list of scalars costs its bound");
        assert_eq!(page(Some(10), 5), 51);
        assert_eq!(page(Some(-1), 1), list(super::MAX_FIRST, 1));
        assert_eq!(page(Some(1_000_000), 1), list(super::MAX_FIRST, 1));
        let deep = (0..12).fold(1, |child, _| list(STEPS, child));
        assert_eq!(deep, CEILING);
        assert!(
            deep.checked_mul(100_000).is_some(),
            "sums of capped costs fit"
        );
    }
}

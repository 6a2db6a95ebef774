//! The conversation's script, apart from storage: walking the steps, what the bot says on its
//! own (re-asks, moving on, the turn limit) in the conversation's language, checking answers,
//! and the bounds of a conversation and of the transcript a ticket keeps. Pure functions, so
//! they are tested without a database.

use crate::design::successor;
use crate::limits::STEPS_PER_FLOW;
use crate::validate;
use crate::vocab::{Line, Locale, PublishedStep, StepKind};

/// Visitor turns (messages and button presses) one conversation takes. The turn that reaches
/// it is answered, then the bot says [`Notice::TurnLimit`] and the conversation completes;
/// a flow whose buttons lead in a circle cannot run forever.
pub const MAX_VISITOR_TURNS: i32 = 50;
/// Times the bot asks one question again after an invalid answer. The next invalid answer is
/// not stored: the bot says [`Notice::MovingOn`] and goes on to the question's next step.
pub const MAX_REASKS: i32 = 3;
/// The most lines one walk says: one per step, each step at most once (a published flow has
/// no loop without a waiting step, and [`walk`] stops after as many steps as a flow may have).
pub const MAX_WALK_LINES: usize = STEPS_PER_FLOW as usize;
/// The most bot lines one visitor turn adds: a walk, a notice before it (an invalid answer's
/// [`Notice::MovingOn`]) and one after it ([`Notice::TurnLimit`]). A re-ask says two.
pub const MAX_BOT_LINES_PER_TURN: usize = MAX_WALK_LINES + 2;
/// The most lines a conversation holds: the walk that greets, then per visitor turn its own
/// line and the bot's. What a transcript list is costed at in GraphQL.
pub const TRANSCRIPT_LINES: usize =
    MAX_WALK_LINES + MAX_VISITOR_TURNS as usize * (1 + MAX_BOT_LINES_PER_TURN);
/// The latest lines of its conversation a ticket keeps (and its mail shows).
pub const TICKET_TRANSCRIPT_LINES: usize = 100;
/// The most characters of text the lines a ticket keeps hold together. The ticket's message
/// is the visitor's lines among them, so it is within this bound too.
pub const TICKET_TRANSCRIPT_CHARS: usize = 30_000;

/// What a walk through the steps produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// What the bot says, in order.
    pub bot: Vec<String>,
    /// The step now waiting for the visitor, if any.
    pub waiting_at: Option<usize>,
    /// The first ticket step passed, and how many bot lines came before it.
    pub ticket_at: Option<(usize, usize)>,
}

/// Walks from step `from` until a step waits for the visitor or the flow ends. Published
/// flows have no loop without a waiting step, so a walk visits each step at most once; the
/// step budget guards anyway and bounds a walk's lines by [`MAX_WALK_LINES`].
pub fn walk(steps: &[PublishedStep], from: Option<usize>) -> Walk {
    let mut out = Walk::default();
    let mut at = from;
    let mut budget = steps.len().min(MAX_WALK_LINES);
    while let Some(i) = at {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let step = &steps[i];
        match step.kind {
            StepKind::Question | StepKind::Choice => {
                out.bot.extend(step.text.clone());
                out.waiting_at = Some(i);
                return out;
            }
            StepKind::Ticket => {
                if out.ticket_at.is_none() {
                    out.ticket_at = Some((i, out.bot.len()));
                }
                out.bot.extend(step.confirmation_message.clone());
                at = successor(steps, i, step.next);
            }
            StepKind::End => {
                out.bot.extend(step.text.clone());
                return out;
            }
            _ => {
                debug_assert_eq!(step.kind, StepKind::Message);
                out.bot.extend(step.text.clone());
                at = successor(steps, i, step.next);
            }
        }
    }
    out
}

/// What the bot says on its own, in the conversation's language (the account's default locale
/// when it started); the flow's texts are the designer's and are said as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// An answer to a `name` question that is not a name; the question follows again.
    NotAName,
    /// An answer to an `email` question that is not an address; the question follows again.
    NotAnEmail,
    /// An answer to a `phone` question that is not a number; the question follows again.
    NotAPhone,
    /// Any other answer that could not be taken; the question follows again.
    NotTaken,
    /// The invalid answer after [`MAX_REASKS`] re-asks: the question stays unanswered and the
    /// flow goes on.
    MovingOn,
    /// The conversation reached [`MAX_VISITOR_TURNS`] and is completed.
    TurnLimit,
}

impl Notice {
    /// What the bot says, in `locale`.
    pub fn text(self, locale: Locale) -> String {
        match (self, locale) {
            (Notice::NotAName, Locale::En) => "Sorry, that does not look like a name.".to_owned(),
            (Notice::NotAName, Locale::Tr) => "Üzgünüm, bu bir isme benzemiyor.".to_owned(),
            (Notice::NotAnEmail, Locale::En) => {
                "Sorry, that does not look like an e-mail address (like name@example.com)."
                    .to_owned()
            }
            (Notice::NotAnEmail, Locale::Tr) => {
                "Üzgünüm, bu bir e-posta adresine benzemiyor (ad@example.com gibi).".to_owned()
            }
            (Notice::NotAPhone, Locale::En) => {
                "Sorry, that does not look like a phone number.".to_owned()
            }
            (Notice::NotAPhone, Locale::Tr) => {
                "Üzgünüm, bu bir telefon numarasına benzemiyor.".to_owned()
            }
            (Notice::NotTaken, Locale::En) => "Sorry, I could not take that answer.".to_owned(),
            (Notice::NotTaken, Locale::Tr) => "Üzgünüm, bu yanıtı alamadım.".to_owned(),
            (Notice::MovingOn, Locale::En) => {
                "Sorry, I still could not take that answer, so we go on without it.".to_owned()
            }
            (Notice::MovingOn, Locale::Tr) => {
                "Üzgünüm, bu yanıtı yine alamadım; onsuz devam ediyoruz.".to_owned()
            }
            (Notice::TurnLimit, Locale::En) => format!(
                "This conversation has reached its limit of {MAX_VISITOR_TURNS} messages and is \
                 closed. Please start a new one if you still need help."
            ),
            (Notice::TurnLimit, Locale::Tr) => format!(
                "Bu konuşma {MAX_VISITOR_TURNS} mesaj sınırına ulaştı ve kapandı. Hâlâ yardıma \
                 ihtiyacınız varsa lütfen yeni bir konuşma başlatın."
            ),
        }
    }
}

/// Checks a question's answer; `Err` names what the bot says before asking again.
pub(super) fn check_answer(field: &str, text: &str) -> std::result::Result<String, Notice> {
    let checked = match field {
        "name" => validate::name("text", text),
        "email" => validate::email("text", text),
        "phone" => validate::phone("text", text),
        _ => validate::message("text", text),
    };
    checked.map_err(|_| match field {
        "name" => Notice::NotAName,
        "email" => Notice::NotAnEmail,
        "phone" => Notice::NotAPhone,
        _ => Notice::NotTaken,
    })
}

/// What the bot does with an invalid answer to the question at `at`, asked again `reasks`
/// times so far: asks once more, or after [`MAX_REASKS`] re-asks goes on without the answer
/// (a visitor who cannot or will not answer is not stuck, and cannot fill the transcript).
/// Returns the walk and the re-asks counted at the step the conversation then waits at.
pub(super) fn after_invalid(
    steps: &[PublishedStep],
    at: usize,
    notice: Notice,
    reasks: i32,
    locale: Locale,
) -> (Walk, i32) {
    let step = &steps[at];
    if reasks < MAX_REASKS {
        // Ask again: the conversation stays at the question.
        let again = Walk {
            bot: [Some(notice.text(locale)), step.text.clone()]
                .into_iter()
                .flatten()
                .collect(),
            waiting_at: Some(at),
            ticket_at: None,
        };
        return (again, reasks + 1);
    }
    let mut on = walk(steps, successor(steps, at, step.next));
    on.bot.insert(0, Notice::MovingOn.text(locale));
    on.ticket_at = on.ticket_at.map(|(i, before)| (i, before + 1));
    (on, 0)
}

/// Ends the conversation on the turn that reaches [`MAX_VISITOR_TURNS`], if it still waits:
/// the bot says so instead of waiting.
pub(super) fn close_at_turn_limit(walked: &mut Walk, visitor_turns: i32, locale: Locale) {
    if visitor_turns >= MAX_VISITOR_TURNS && walked.waiting_at.is_some() {
        walked.bot.push(Notice::TurnLimit.text(locale));
        walked.waiting_at = None;
    }
}

/// Where the lines a ticket keeps start in `lines` (the conversation's latest lines, oldest
/// first): the latest [`TICKET_TRANSCRIPT_LINES`] that hold [`TICKET_TRANSCRIPT_CHARS`]
/// characters together. A line is never cut in the middle; one line alone always fits, as
/// texts are shorter than the bound.
pub(super) fn ticket_window(lines: &[Line]) -> usize {
    let mut chars = 0;
    let mut start = lines.len();
    while start > 0 && lines.len() - start < TICKET_TRANSCRIPT_LINES {
        let len = lines[start - 1].text.chars().count();
        if chars + len > TICKET_TRANSCRIPT_CHARS && start < lines.len() {
            break;
        }
        chars += len;
        start -= 1;
    }
    start
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::now;

    fn step(n: u128, kind: StepKind, text: &str, next: Option<u128>) -> PublishedStep {
        PublishedStep {
            id: Uuid::from_u128(n),
            position: n as i32,
            kind,
            text: Some(text.into()),
            field: Some("email".into()),
            topic: Some("offline_message".into()),
            confirmation_message: Some("Talep alındı".into()),
            forward_emails: vec![],
            next: next.map(Uuid::from_u128),
            options: vec![],
            confirm_visitor: false,
        }
    }

    #[test]
    fn a_walk_says_messages_until_a_step_waits() {
        let steps = [
            step(0, StepKind::Message, "Merhaba", None),
            step(1, StepKind::Question, "E-posta?", None),
            step(2, StepKind::Ticket, "", None),
        ];
        let w = walk(&steps, Some(0));
        assert_eq!(w.bot, ["Merhaba", "E-posta?"]);
        assert_eq!(w.waiting_at, Some(1));
        assert_eq!(w.ticket_at, None);
        let w = walk(&steps, Some(2));
        assert_eq!(w.bot, ["Talep alındı"]);
        assert_eq!(w.ticket_at, Some((2, 0)));
        assert_eq!(w.waiting_at, None);
    }

    #[test]
    fn a_loop_without_waiting_is_cut_short() {
        let steps = [
            step(0, StepKind::Message, "a", Some(1)),
            step(1, StepKind::Message, "b", Some(0)),
        ];
        let w = walk(&steps, Some(0));
        assert!(w.bot.len() <= 6, "{:?}", w.bot);
        assert_eq!(w.waiting_at, None);
    }

    #[test]
    fn an_invalid_answer_is_asked_again_then_left_unanswered() {
        let steps = [
            step(0, StepKind::Question, "E-posta?", None),
            step(1, StepKind::Ticket, "", None),
            step(2, StepKind::End, "Görüşürüz", None),
        ];
        for reasks in 0..MAX_REASKS {
            let (w, after) = after_invalid(&steps, 0, Notice::NotAnEmail, reasks, Locale::Tr);
            assert_eq!(
                w.bot,
                [Notice::NotAnEmail.text(Locale::Tr), "E-posta?".into()]
            );
            assert_eq!((w.waiting_at, after), (Some(0), reasks + 1));
        }
        let (w, after) = after_invalid(&steps, 0, Notice::NotAnEmail, MAX_REASKS, Locale::Tr);
        assert_eq!(
            w.bot,
            [
                Notice::MovingOn.text(Locale::Tr),
                "Talep alındı".into(),
                "Görüşürüz".into()
            ]
        );
        assert_eq!(
            w.ticket_at,
            Some((1, 1)),
            "the ticket comes after the notice"
        );
        assert_eq!((w.waiting_at, after), (None, 0));
    }

    #[test]
    fn the_turn_that_reaches_the_limit_closes_the_conversation() {
        let waiting = || Walk {
            bot: vec!["?".into()],
            waiting_at: Some(0),
            ticket_at: None,
        };
        let mut w = waiting();
        close_at_turn_limit(&mut w, MAX_VISITOR_TURNS - 1, Locale::En);
        assert_eq!(w, waiting());
        close_at_turn_limit(&mut w, MAX_VISITOR_TURNS, Locale::En);
        assert_eq!(w.waiting_at, None);
        assert_eq!(w.bot.last(), Some(&Notice::TurnLimit.text(Locale::En)));
        assert!(w.bot.len() <= MAX_BOT_LINES_PER_TURN);
    }

    #[test]
    fn notices_speak_both_languages() {
        for notice in [
            Notice::NotAName,
            Notice::NotAnEmail,
            Notice::NotAPhone,
            Notice::NotTaken,
            Notice::MovingOn,
            Notice::TurnLimit,
        ] {
            let (en, tr) = (notice.text(Locale::En), notice.text(Locale::Tr));
            assert!(en.starts_with("Sorry") || en.starts_with("This"), "{en}");
            assert_ne!(en, tr);
        }
        assert!(Notice::TurnLimit.text(Locale::Tr).contains("50 mesaj"));
    }

    #[test]
    fn a_ticket_keeps_the_latest_lines_within_its_bounds() {
        let line = |n: usize| Line {
            sender: crate::vocab::Sender::Visitor,
            text: "x".repeat(n),
            at: now(),
        };
        let short: Vec<Line> = (0..TICKET_TRANSCRIPT_LINES + 20).map(|_| line(5)).collect();
        assert_eq!(ticket_window(&short), 20, "by lines");
        let long: Vec<Line> = (0..10).map(|_| line(validate::MAX_MESSAGE_CHARS)).collect();
        let start = ticket_window(&long);
        let chars: usize = long[start..].iter().map(|l| l.text.len()).sum();
        assert_eq!((start, chars), (7, 30_000), "by characters");
        let huge = [line(TICKET_TRANSCRIPT_CHARS + 1)];
        assert_eq!(ticket_window(&huge), 0, "the latest line is always kept");
        assert_eq!(ticket_window(&[]), 0);
    }

    #[test]
    fn the_transcript_bound_follows_from_the_caps() {
        assert_eq!(MAX_BOT_LINES_PER_TURN, 202);
        assert_eq!(TRANSCRIPT_LINES, 200 + 50 * 203);
        let steps: Vec<PublishedStep> = (0..STEPS_PER_FLOW as u128 + 50)
            .map(|n| step(n, StepKind::Message, "m", None))
            .collect();
        assert_eq!(walk(&steps, Some(0)).bot.len(), MAX_WALK_LINES);
    }

    #[test]
    fn answers_to_contact_fields_are_checked() {
        assert!(check_answer("email", "ayse@example.com").is_ok());
        assert!(check_answer("email", "ayse at example").is_err());
        assert!(check_answer("phone", "+90 212 555 01 02").is_ok());
        assert!(check_answer("phone", "yok").is_err());
        assert!(check_answer("order_no", "A-17").is_ok());
    }
}

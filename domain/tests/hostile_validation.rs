//! Property tests: hostile input (`hostile/`) against validation (`domain::validate`). For
//! such input these tests guarantee:
//!
//! - no validator panics; each returns the trimmed value or `Error::Invalid` naming the field
//!   it was given (`emails[i]` for the first bad entry of a list);
//! - each validator accepts exactly what its doc comment describes, so what it accepts stays
//!   within the `MAX_*` limits, and names, topics and rule tags hold no control characters;
//!   accepted addresses hold no CR or LF;
//!
//! These properties found that validation let through quoted local parts, domain literals,
//! Unicode line separators and lone CRs; validation now refuses or normalises them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test should stop loudly at the first assumption that does not hold"
)]

mod hostile;

use std::collections::HashSet;

use domain::validate::{
    self, MAX_EMAIL_CHARS, MAX_EMAILS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS,
    MAX_TOPIC_CHARS, WILDCARD,
};
use domain::{Error, Result};
use hostile::*;
use lettre::Address;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------------------------

/// `None` when accepted, the named field when refused; any other error fails the test, since
/// the API maps only `Error::Invalid` to BAD_USER_INPUT.
fn refused_field<T: std::fmt::Debug>(result: &Result<T>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(Error::Invalid { field, .. }) => Some(field.clone()),
        Err(other) => panic!("validation failed with a non-validation error: {other:?}"),
    }
}

/// Checks `result` against an oracle: accepted means the trimmed input comes back, refused
/// means `Error::Invalid` naming `field`.
fn accepts_exactly(
    result: &Result<String>,
    field: &str,
    raw: &str,
    should_accept: bool,
) -> Result<(), TestCaseError> {
    if should_accept {
        prop_assert_eq!(result.as_ref().ok().map(String::as_str), Some(raw.trim()));
    } else {
        prop_assert_eq!(refused_field(result), Some(field.to_owned()));
    }
    Ok(())
}

/// A text with line breaks: accepted when non-empty, within `max` and free of other control
/// characters and Unicode line separators; stored with every line ending as LF, so no lone CR
/// reaches a mail body.
fn multiline_accepts_exactly(
    result: &Result<String>,
    field: &str,
    raw: &str,
    max: usize,
) -> Result<(), TestCaseError> {
    let t = raw.trim();
    let ok = !t.is_empty()
        && chars(t) <= max
        && t.chars().all(|c| {
            (!c.is_control() || matches!(c, '\n' | '\r' | '\t'))
                && !matches!(c, '\u{2028}' | '\u{2029}')
        });
    if ok {
        let expected = t.replace("\r\n", "\n").replace('\r', "\n");
        prop_assert_eq!(result.as_ref().ok(), Some(&expected));
        prop_assert!(chars(&expected) <= max && !expected.contains('\r'));
    } else {
        prop_assert_eq!(refused_field(result), Some(field.to_owned()));
    }
    Ok(())
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn is_topic_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn names_are_trimmed_bounded_and_control_free(field in field(), raw in input(MAX_NAME_CHARS)) {
        let result = validate::name(field, &raw);
        let t = raw.trim();
        let ok = !t.is_empty()
            && chars(t) <= MAX_NAME_CHARS
            && !t.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
        accepts_exactly(&result, field, &raw, ok)?;
        if let Ok(name) = result {
            prop_assert!(chars(&name) <= MAX_NAME_CHARS);
            prop_assert!(!name.chars().any(char::is_control), "{name:?}");
        }
    }

    #[test]
    fn texts_are_bounded_and_only_break_lines(field in field(), raw in input(MAX_TEXT_CHARS)) {
        let result = validate::text(field, &raw);
        multiline_accepts_exactly(&result, field, &raw, MAX_TEXT_CHARS)?;
    }

    #[test]
    fn messages_are_bounded_and_only_break_lines(field in field(), raw in input(MAX_MESSAGE_CHARS)) {
        let result = validate::message(field, &raw);
        multiline_accepts_exactly(&result, field, &raw, MAX_MESSAGE_CHARS)?;
    }

    #[test]
    fn topics_are_short_plain_tags_and_never_the_wildcard(field in field(), raw in topic_like()) {
        let result = validate::topic(field, &raw);
        let t = raw.trim();
        let ok = !t.is_empty() && chars(t) <= MAX_TOPIC_CHARS && t.chars().all(is_topic_char);
        accepts_exactly(&result, field, &raw, ok)?;
        if let Ok(topic) = result {
            prop_assert!((1..=MAX_TOPIC_CHARS).contains(&chars(&topic)));
            prop_assert_ne!(topic.as_str(), WILDCARD);
            prop_assert!(!topic.chars().any(|c| c.is_control() || c.is_whitespace()), "{topic:?}");
        }
    }

    #[test]
    fn rule_tags_are_topics_or_exactly_the_wildcard(field in field(), raw in topic_like()) {
        let result = validate::rule_tag(field, &raw);
        if raw.trim() == WILDCARD {
            prop_assert_eq!(result.ok(), Some(WILDCARD.to_owned()));
        } else {
            let topic = validate::topic(field, &raw);
            prop_assert_eq!(refused_field(&result), refused_field(&topic));
            prop_assert_eq!(result.ok(), topic.ok());
        }
    }

    #[test]
    fn emails_are_bare_bounded_addresses_without_cr_or_lf(
        field in field(),
        raw in prop_oneof![3 => email_like(), 1 => input(MAX_EMAIL_CHARS)],
    ) {
        let result = validate::email(field, &raw);
        match result {
            Ok(email) => {
                prop_assert_eq!(email.as_str(), raw.trim());
                prop_assert!((1..=MAX_EMAIL_CHARS).contains(&chars(&email)));
                prop_assert!(!email.contains(['\r', '\n']), "{email:?}");
                let address: Address = email.parse().expect("accepted but lettre refuses it");
                prop_assert!(address.domain().contains('.') || address.domain() == "localhost");
                prop_assert_eq!(address.to_string(), email);
            }
            Err(_) => prop_assert_eq!(refused_field(&result), Some(field.to_owned())),
        }
    }

    #[test]
    fn email_lists_are_checked_entry_by_entry_and_deduplicated(
        field in field(),
        values in prop_oneof![
            prop::collection::vec(email_like(), 0..8),
            prop::collection::vec(
                prop::sample::select(
                    &["ops@example.com", "OPS@example.com", " Ops@Example.com ", "b@example.com"][..],
                ).prop_map(str::to_owned),
                0..3 * MAX_EMAILS,
            ),
            prop::collection::vec(email_like(), MAX_EMAILS - 2..=MAX_EMAILS + 2),
        ],
        require_one in any::<bool>(),
    ) {
        let result = validate::emails(field, &values, require_one);
        if (require_one && values.is_empty()) || values.len() > MAX_EMAILS {
            prop_assert_eq!(refused_field(&result), Some(field.to_owned()));
            return Ok(());
        }
        let mut seen = HashSet::new();
        let mut expected = Vec::new();
        for (i, value) in values.iter().enumerate() {
            match validate::email("e", value) {
                Ok(address) => {
                    if seen.insert(address.to_lowercase()) {
                        expected.push(address);
                    }
                }
                Err(_) => {
                    let entry = format!("{field}[{i}]");
                    prop_assert_eq!(refused_field(&result), Some(entry));
                    return Ok(());
                }
            }
        }
        prop_assert!(expected.len() <= MAX_EMAILS);
        prop_assert_eq!(result.ok(), Some(expected));
    }

    #[test]
    fn field_keys_are_short_ascii_words(field in field(), raw in field_key_like()) {
        let result = validate::field_key(field, &raw);
        let t = raw.trim();
        let ok = (1..=64).contains(&chars(t))
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        accepts_exactly(&result, field, &raw, ok)?;
    }

    #[test]
    fn phones_are_digits_with_separators(field in field(), raw in phone_like()) {
        let result = validate::phone(field, &raw);
        let t = raw.trim();
        let ok = chars(t) <= 32
            && t.chars().filter(char::is_ascii_digit).count() >= 3
            && t.chars().all(|c| c.is_ascii_digit() || "+ -().".contains(c));
        accepts_exactly(&result, field, &raw, ok)?;
    }

    #[test]
    fn optional_treats_blank_as_absent_and_checks_the_rest(
        value in prop::option::of(input(MAX_NAME_CHARS)),
    ) {
        let result = validate::optional(value.as_deref(), |v| validate::name("visitor.name", v));
        match value.as_deref().map(str::trim) {
            None | Some("") => prop_assert!(matches!(result, Ok(None))),
            Some(v) => {
                let direct = validate::name("visitor.name", v);
                prop_assert_eq!(refused_field(&result), refused_field(&direct));
                prop_assert_eq!(result.ok().flatten(), direct.ok());
            }
        }
    }

    #[test]
    fn names_hold_no_unicode_line_breaks(raw in hostile()) {
        if let Ok(name) = validate::name("name", &raw) {
            prop_assert!(!name.contains(LINE_BREAKS), "{name:?}");
        }
    }

    #[test]
    fn emails_hold_no_whitespace_controls_or_line_breaks(raw in email_like()) {
        if let Ok(email) = validate::email("email", &raw) {
            prop_assert!(
                !email.chars().any(|c| c.is_control() || c.is_whitespace()),
                "{email:?}"
            );
        }
    }
}

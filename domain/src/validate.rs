//! Validation and normalisation of everything people type: names, texts, topic tags, rule tags
//! and e-mail addresses. Each function returns the value to store, or an [`Error::Invalid`]
//! naming the field.

use std::collections::HashSet;
use std::str::FromStr;

use lettre::Address;

use crate::{Error, Result};

/// Longest flow, agent or visitor name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest bot text or confirmation message.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// Longest visitor message.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Longest topic tag.
pub const MAX_TOPIC_CHARS: usize = 64;
/// Longest e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Most addresses on one rule or one ticket step.
pub const MAX_EMAILS: usize = 50;
/// The rule tag that matches every new ticket.
pub const WILDCARD: &str = "*";

/// A one-line name: trimmed, non-empty, bounded, no control characters (it may end up in a
/// mail header).
pub fn name(field: &str, value: &str) -> Result<String> {
    let value = non_empty(field, value, MAX_NAME_CHARS)?;
    if value.chars().any(breaks_line) {
        return Err(Error::invalid(
            field,
            "must be a single line without control characters",
        ));
    }
    Ok(value)
}

/// A text the bot says: trimmed, non-empty, bounded; line breaks allowed.
pub fn text(field: &str, value: &str) -> Result<String> {
    multiline(field, value, MAX_TEXT_CHARS)
}

/// A visitor's message: trimmed, non-empty, bounded; line breaks allowed.
pub fn message(field: &str, value: &str) -> Result<String> {
    multiline(field, value, MAX_MESSAGE_CHARS)
}

/// Control characters and Unicode's own line and paragraph separators: whatever some reader
/// could take for the end of a line.
fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

fn multiline(field: &str, value: &str, max: usize) -> Result<String> {
    let value = non_empty(field, value, max)?;
    if value
        .chars()
        .any(|c| breaks_line(c) && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    // One line ending, so a lone CR never reaches a mail body (RFC 5322 forbids it there).
    Ok(value.replace("\r\n", "\n").replace('\r', "\n"))
}

fn non_empty(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A ticket step's topic tag: 1-64 letters, digits, `_`, `-`, `.` or `:`. Never `*`.
pub fn topic(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_TOPIC_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_TOPIC_CHARS} characters"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(Error::invalid(
            field,
            "may contain only letters, digits, '_', '-', '.' and ':'",
        ));
    }
    Ok(value.to_owned())
}

/// A routing rule's tag: a topic tag, or exactly `*`.
pub fn rule_tag(field: &str, value: &str) -> Result<String> {
    if value.trim() == WILDCARD {
        return Ok(WILDCARD.to_owned());
    }
    topic(field, value)
}

/// The key that topic matching and aggregation compare: tags ignore case.
pub fn tag_key(tag: &str) -> String {
    tag.to_lowercase()
}

/// One bare e-mail address (`local@domain`, no display name, no line breaks).
pub fn email(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_EMAIL_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_EMAIL_CHARS} characters"),
        ));
    }
    // lettre also accepts quoted local parts ("a b"@x) and domain literals (a@[127.0.0.1]),
    // which it then cannot put on an envelope; and whitespace or controls have no place in
    // an address that ends up in a header.
    if value
        .chars()
        .any(|c| c.is_whitespace() || breaks_line(c) || matches!(c, '"' | '[' | ']' | '\\'))
    {
        return Err(Error::invalid(
            field,
            "must be an e-mail address like name@example.com",
        ));
    }
    // lettre accepts only a bare address here; display names are refused.
    match Address::from_str(value) {
        Ok(address) if address.domain().contains('.') || address.domain() == "localhost" => {
            Ok(value.to_owned())
        }
        _ => Err(Error::invalid(
            field,
            "must be an e-mail address like name@example.com",
        )),
    }
}

/// A list of addresses: each validated, de-duplicated ignoring case (first spelling kept).
pub fn emails(field: &str, values: &[String], require_one: bool) -> Result<Vec<String>> {
    if require_one && values.is_empty() {
        return Err(Error::invalid(field, "needs at least one e-mail address"));
    }
    if values.len() > MAX_EMAILS {
        return Err(Error::invalid(
            field,
            format!("may hold at most {MAX_EMAILS} addresses"),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let address = email(&format!("{field}[{i}]"), value)?;
        if seen.insert(address.to_lowercase()) {
            out.push(address);
        }
    }
    Ok(out)
}

/// The key a question stores its answer under: 1-64 ASCII letters, digits or `_`.
pub fn field_key(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty()
        || value.len() > 64
        || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::invalid(
            field,
            "must be 1-64 letters, digits or '_' (like name, email, phone, order_no)",
        ));
    }
    Ok(value.to_owned())
}

/// A visitor's phone number: digits with the usual separators, 3-32 characters.
pub fn phone(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    let digits = value.chars().filter(char::is_ascii_digit).count();
    if value.chars().count() > 32
        || digits < 3
        || !value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
    {
        return Err(Error::invalid(
            field,
            "must be a phone number like +90 212 555 01 02",
        ));
    }
    Ok(value.to_owned())
}

/// Most browser origins on one key.
pub const MAX_ORIGINS: usize = 20;

/// A web origin as browsers send it in `Origin`: `http(s)://host[:port]`, lower case, without
/// a path and without the scheme's default port, so a stored origin compares equal to the
/// header byte for byte. Wildcards are refused: a key names the sites it belongs to.
pub fn origin(field: &str, value: &str) -> Result<String> {
    let bad = || {
        Error::invalid(
            field,
            "must be a web origin like https://shop.example or http://localhost:3000",
        )
    };
    let value = value.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = value.split_once("://").ok_or_else(bad)?;
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return Err(bad()),
    };
    // An IPv6 literal keeps its brackets; the port, if any, follows the last colon.
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty()
            && v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !host.is_empty()
            && host.len() <= 253
            && !host.starts_with(['.', '-'])
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if !host_ok {
        return Err(bad());
    }
    match port {
        None => Ok(format!("{scheme}://{host}")),
        Some(p) if p == default_port => Ok(format!("{scheme}://{host}")),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok_and(|n| n > 0) => {
            Ok(format!("{scheme}://{host}:{p}"))
        }
        Some(_) => Err(bad()),
    }
}

/// A key's origins: each validated, duplicates dropped.
pub fn origins(field: &str, values: &[String]) -> Result<Vec<String>> {
    if values.len() > MAX_ORIGINS {
        return Err(Error::invalid(
            field,
            format!("may hold at most {MAX_ORIGINS} origins"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let origin = origin(&format!("{field}[{i}]"), value)?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

/// An optional field: `None` and blank strings are both "not given".
pub fn optional<T>(
    value: Option<&str>,
    check: impl FnOnce(&str) -> Result<T>,
) -> Result<Option<T>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => check(v).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn topics_accept_the_seed_examples_and_refuse_the_wildcard() {
        assert_eq!(topic("t", " offline_message ").unwrap(), "offline_message");
        assert_eq!(
            topic("t", "TICKET_TOPIC_FOO_BAR").unwrap(),
            "TICKET_TOPIC_FOO_BAR"
        );
        assert_eq!(
            topic("t", "billing.v2:eu-west").unwrap(),
            "billing.v2:eu-west"
        );
        assert_eq!(topic("t", "şikayet").unwrap(), "şikayet");
        assert_eq!(field_of(topic("t", "*")), "t");
        assert_eq!(field_of(topic("t", "a b")), "t");
        assert_eq!(field_of(topic("t", "")), "t");
        assert!(topic("t", &"x".repeat(64)).is_ok());
        assert!(topic("t", &"x".repeat(65)).is_err());
    }

    #[test]
    fn origins_are_normalised_to_what_browsers_send() {
        for (typed, stored) in [
            ("https://Shop.Example/", "https://shop.example"),
            ("https://shop.example:443", "https://shop.example"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:80", "http://127.0.0.1"),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ] {
            assert_eq!(origin("o", typed).unwrap(), stored, "{typed}");
        }
        for bad in [
            "*",
            "shop.example",
            "ftp://shop.example",
            "javascript:alert(1)",
            "https://shop.example/path",
            "https://user@shop.example",
            "https://shop.example:0",
            "https://shop.example:99999",
            "https://shop.example?q",
            "https://",
            "https://sh op.example",
            "https://shop.example\r\nX-Evil: 1",
        ] {
            assert_eq!(field_of(origin("o", bad)), "o", "{bad}");
        }
        assert_eq!(
            origins(
                "os",
                &["https://a.example".into(), "https://A.example/".into()]
            )
            .unwrap(),
            ["https://a.example"]
        );
        assert_eq!(
            field_of(origins("os", &["https://a.example".into(), "x".into()])),
            "os[1]"
        );
    }

    #[test]
    fn rule_tags_are_topics_or_the_wildcard() {
        assert_eq!(rule_tag("tag", " * ").unwrap(), "*");
        assert_eq!(
            rule_tag("tag", "offline_message").unwrap(),
            "offline_message"
        );
        assert!(rule_tag("tag", "**").is_err());
        assert!(rule_tag("tag", "a*").is_err());
    }

    #[test]
    fn addresses_refuse_display_names_and_line_breaks() {
        assert_eq!(
            email("e", " ayse@example.com ").unwrap(),
            "ayse@example.com"
        );
        for bad in [
            "Ayse <ayse@example.com>",
            "ayse@example.com\r\nBcc: x@example.com",
            "ayse",
            "ayse@",
            "@example.com",
            "a b@example.com",
            "ayse@example",
        ] {
            assert!(email("e", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn address_lists_dedupe_ignoring_case_and_name_the_bad_entry() {
        let list = vec![
            "Ops@Example.com".to_owned(),
            "ops@example.com".to_owned(),
            "b@example.com".to_owned(),
        ];
        assert_eq!(
            emails("emails", &list, true).unwrap(),
            vec!["Ops@Example.com", "b@example.com"]
        );
        assert_eq!(field_of(emails("emails", &[], true)), "emails");
        let bad = vec!["a@example.com".to_owned(), "nope".to_owned()];
        assert_eq!(field_of(emails("emails", &bad, true)), "emails[1]");
    }

    #[test]
    fn names_are_single_lines_and_texts_may_span_lines() {
        assert_eq!(name("n", "  Destek  ").unwrap(), "Destek");
        assert!(name("n", "a\nb").is_err());
        assert!(name("n", "   ").is_err());
        assert!(name("n", &"x".repeat(201)).is_err());
        assert_eq!(
            text("t", "Talep alındı\nTeşekkürler").unwrap(),
            "Talep alındı\nTeşekkürler"
        );
        assert!(text("t", "bell\u{7}").is_err());
    }

    #[test]
    fn phones_allow_separators_only() {
        assert!(phone("p", "+90 (212) 555-01-02").is_ok());
        assert!(phone("p", "call me").is_err());
        assert!(phone("p", "12").is_err());
    }
}

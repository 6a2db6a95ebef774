//! Snapshots of the notification e-mail in every language: the subject, the text part and the
//! HTML part as agents get them. A template change shows up here as a reviewable diff
//! (`cargo insta review`, or `INSTA_UPDATE=always` to accept).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test fails"
)]

use chrono::{TimeZone, Utc};
use domain::mail;
use domain::templates::{self, Kind};
use domain::vocab::{
    Addresses, Answers, DeliveryStatus, Line, Locale, Sender, Source, TicketStatus,
};
use entity::{delivery, ticket};
use uuid::Uuid;

fn ticket() -> ticket::Model {
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 30, 0).unwrap();
    ticket::Model {
        id: Uuid::from_u128(1),
        account_id: Uuid::from_u128(2),
        number: 42,
        flow_id: None,
        step_id: None,
        flow_name: "Destek <bot>".into(),
        topic: "TICKET_TOPIC_FOO_BAR".into(),
        topic_key: "ticket_topic_foo_bar".into(),
        status: TicketStatus::Open,
        message: "Siparişim gelmedi.\nNumara: A-17 & <b>acil</b>".into(),
        visitor_name: Some("Ali Veli".into()),
        visitor_email: Some("ali@example.net".into()),
        visitor_phone: Some("+90 555 000 00 00".into()),
        forward_emails: Addresses::default(),
        conversation_id: Some(Uuid::from_u128(3)),
        transcript: Some(
            vec![
                Line {
                    sender: Sender::Bot,
                    text: "Konu nedir?".into(),
                    at,
                },
                Line {
                    sender: Sender::Visitor,
                    text: "Sipariş\nikinci satır".into(),
                    at,
                },
            ]
            .into(),
        ),
        transcript_omitted: 0,
        answers: Some(Answers(
            [
                ("email".to_owned(), "ali@example.net".to_owned()),
                ("order_no".to_owned(), "A-17".to_owned()),
            ]
            .into(),
        )),
        created_at: at,
        routed_at: Some(at),
        erased_at: None,
        assignee_id: None,
        closing_note: None,
        closed_at: None,
        confirm_visitor: false,
    }
}

fn delivery(locale: Locale, sources: &[Source]) -> delivery::Model {
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 30, 1).unwrap();
    delivery::Model {
        id: Uuid::from_u128(4),
        ticket_id: Uuid::from_u128(1),
        account_id: Uuid::from_u128(2),
        recipient: "ayse@example.com".into(),
        recipient_key: "ayse@example.com".into(),
        sources: sources.to_vec().into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        message_id: "m".into(),
        smtp_response: None,
        next_attempt_at: None,
        locked_until: None,
        sent_at: None,
        created_at: at,
        updated_at: at,
        locale: Some(locale),
    }
}

fn sources() -> Vec<Source> {
    vec![
        Source::Rule {
            rule_id: Uuid::from_u128(5),
            tag: "TICKET_TOPIC_FOO_BAR".into(),
        },
        Source::Wildcard {
            rule_id: Uuid::from_u128(6),
        },
        Source::Forward,
    ]
}

fn snapshot(name: &str, mail: &templates::Rendered) {
    insta::assert_snapshot!(format!("{name}.subject"), mail.subject);
    insta::assert_snapshot!(format!("{name}.txt"), mail.text);
    insta::assert_snapshot!(format!("{name}.html"), mail.html);
}

#[test]
fn ticket_opened_in_every_language() {
    for &locale in Locale::ALL {
        let mail = templates::render(
            Kind::TicketOpened,
            locale,
            mail::notification(&ticket(), &delivery(locale, &sources())),
        )
        .unwrap();
        snapshot(&format!("ticket_opened_{}", locale.as_str()), &mail);
    }
}

#[test]
fn the_visitors_confirmation_in_every_language() {
    let t = ticket();
    for &locale in Locale::ALL {
        let mail = templates::confirmation(locale, t.number, t.created_at).unwrap();
        assert!(!mail.text.contains(&t.topic), "the topic is internal");
        snapshot(&format!("ticket_received_{}", locale.as_str()), &mail);
    }
}

#[test]
fn a_rules_test_mail_says_it_is_one() {
    for &locale in Locale::ALL {
        let mut t = ticket();
        t.transcript = None;
        t.answers = None;
        t.visitor_name = None;
        t.visitor_email = None;
        t.visitor_phone = None;
        let d = delivery(locale, &sources()[..1]);
        let mut view = mail::notification(&t, &d);
        view.test = Some("TICKET_TOPIC_FOO_BAR");
        let mail = templates::render(Kind::TicketOpened, locale, view).unwrap();
        snapshot(&format!("rule_test_{}", locale.as_str()), &mail);
    }
}

#[test]
fn html_escapes_what_visitors_and_admins_typed() {
    let mail = templates::render(
        Kind::TicketOpened,
        Locale::En,
        mail::notification(&ticket(), &delivery(Locale::En, &sources())),
    )
    .unwrap();
    assert!(
        mail.html.contains("&lt;b&gt;acil&lt;/b&gt;"),
        "{}",
        mail.html
    );
    assert!(mail.html.contains("Destek &lt;bot&gt;"), "{}", mail.html);
    assert!(!mail.html.contains("<b>acil"));
    assert!(mail.text.contains("<b>acil</b>"), "text stays as typed");
}

//! Hostile input for the property tests (`hostile_validation`, `hostile_mail`): arbitrary
//! Unicode, C0 and C1 control characters, header-looking text, HTML, and strings up to three
//! times each `MAX_*` limit.

#![allow(dead_code, reason = "each test file uses the generators it needs")]

use domain::validate::MAX_TOPIC_CHARS;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

/// Text that has injected mail headers, MIME parts or HTML elsewhere.
pub const INJECTIONS: &[&str] = &[
    "\r\nBcc: evil@x.com",
    "\r\nBcc: evil@x.com\r\n\r\n",
    "\nTo: evil@x.com",
    "\rCc: evil@x.com",
    "\r\n Bcc: folded@x.com",
    "\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<b>",
    "=?utf-8?b?QmNjOg==?=",
    "=\r\n",
    "=3D",
    "\r\n.\r\n",
    "<script>alert(1)</script>",
    "<SCRIPT src=//x>",
    "<img src=x onerror=alert(1)>",
    "\"'&<>",
    "&amp;",
    "&lt;",
    "&#39;",
    "&ldquo;",
    "&",
    "evil@x.com",
    "\"a b\"@x.com",
];

/// Characters that trimming, counting or line splitting get wrong.
pub const ODD: &[&str] = &[
    "\0", "\t", "\u{b}", "\u{c}", "\u{7f}", "\u{85}", "\u{2028}", "\u{2029}", "\u{feff}",
    "\u{200b}", "\u{ad}", "\u{202e}", " ", "*", "@", "ş", "İ", "😀", "e\u{301}",
];

/// Characters a long run is made of: wide, narrow, trimmable and markup.
pub const FILL: &[char] = &['x', 'ş', '😀', ' ', '\n', '<', '\u{85}'];

/// What the validators are told the field is called.
pub const FIELDS: &[&str] = &[
    "name",
    "visitor.name",
    "step.ticket.topic",
    "emails",
    "x[0]",
    "",
];

/// Characters that end a line for some reader: ASCII ones, NEL, and the Unicode separators.
pub const LINE_BREAKS: &[char] = &[
    '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}',
];

pub fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        // `any::<String>()` is this regex; compiled once here.
        3 => regex("\\PC*"),
        2 => regex("\\PC{0,16}"),
        4 => prop::sample::select(INJECTIONS).prop_map(str::to_owned),
        2 => prop::sample::select(ODD).prop_map(str::to_owned),
        // `any::<String>()` and `\PC` never yield control characters; `any::<char>()` does.
        2 => prop::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
        1 => prop::collection::vec(prop::char::range('\0', '\u{1f}'), 1..4)
            .prop_map(String::from_iter),
        2 => regex("[a-zA-Z0-9_.:-]{1,12}"),
    ]
}

/// Short hostile text.
pub fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..8).prop_map(|parts| parts.concat())
}

/// Hostile text around a run of one character, up to three times `max` long and often right
/// at `max`, where off-by-one and trimming mistakes show.
pub fn hostile_long(max: usize) -> impl Strategy<Value = String> {
    let run = prop_oneof![0..=3 * max, max.saturating_sub(2)..=max + 2];
    (hostile(), run, prop::sample::select(FILL), hostile())
        .prop_map(|(head, n, c, tail)| format!("{head}{}{tail}", String::from(c).repeat(n)))
}

/// Hostile text for a field limited to `max` characters.
pub fn input(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![2 => hostile(), 1 => hostile_long(max)]
}

/// A regex strategy compiled once: a `&str` strategy compiles its regex for every value, which
/// made these tests several times slower.
pub fn regex(pattern: &str) -> impl Strategy<Value = String> + use<> {
    proptest::string::string_regex(pattern).unwrap()
}

pub fn field() -> impl Strategy<Value = &'static str> {
    prop::sample::select(FIELDS)
}

pub fn topic_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => regex("[\\p{L}\\p{N}_.:-]{1,70}"),
        1 => prop::sample::select(&[" * ", "*", "**", "a*", "\u{2028}*"][..]).prop_map(str::to_owned),
        1 => (0..=3 * MAX_TOPIC_CHARS).prop_map(|n| "t".repeat(n)),
        2 => hostile(),
    ]
}

/// Mostly well-formed addresses with hostile local parts, domains, padding and tails.
pub fn email_like() -> impl Strategy<Value = String> {
    let local = prop_oneof![
        3 => regex("[a-z0-9._+-]{1,16}"),
        2 => regex(r#""[ !#-\[\]-~]{1,12}""#),
        2 => regex("[\\p{L}\\p{N}]{1,8}"),
        2 => prop::collection::vec(any::<char>(), 1..6).prop_map(String::from_iter),
        2 => hostile(),
    ];
    let domain = prop_oneof![
        3 => prop::sample::select(&["example.com", "localhost", "örnek.com.tr", "x", "[127.0.0.1]"][..])
            .prop_map(str::to_owned),
        2 => regex("[a-z]{1,10}\\.[a-z]{2,6}"),
        // Long enough to cross MAX_EMAIL_CHARS with a valid local part.
        1 => (1..=12usize).prop_map(|n| format!("{}.com", vec!["d".repeat(30); n].join("."))),
        2 => hostile(),
    ];
    let pad = prop::sample::select(&["", "", " ", "\t", "\r\n", "\u{85}"][..]);
    let tail = prop_oneof![
        6 => Just(""),
        1 => prop::sample::select(&["\r\nBcc: evil@x.com", ">", " <evil@x.com>", "\u{85}x"][..]),
    ];
    (pad.clone(), local, domain, tail, pad)
        .prop_map(|(head, local, domain, tail, end)| format!("{head}{local}@{domain}{tail}{end}"))
}

/// A recipient or visitor address as stored: `render` parses it untrimmed, so plain
/// addresses must be common for the rest of the message to be built at all.
pub fn address_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => regex("[a-z0-9._+-]{1,16}@example\\.com"),
        3 => email_like(),
        1 => hostile(),
    ]
}

pub fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => regex("[0-9 +().-]{0,96}"),
        1 => hostile(),
    ]
}

pub fn field_key_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => regex("[A-Za-z0-9_]{0,70}"),
        1 => prop::sample::select(&["name", "email", "phone"][..]).prop_map(str::to_owned),
        1 => regex("[\\p{L}]{1,4}"),
        1 => hostile(),
    ]
}

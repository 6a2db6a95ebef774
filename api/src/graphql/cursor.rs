//! Opaque paging cursors: `<kind>:<value>` in URL-safe base64, so clients cannot depend on
//! what is inside and a cursor of one list is refused by another.

use std::fmt::Display;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The cursor of `value` in a list of `kind`.
pub fn encode(kind: &str, value: impl Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{value}"))
}

fn decode<T: FromStr>(kind: &str, cursor: &str) -> Option<T> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix(kind)?
        .strip_prefix(':')?
        .parse()
        .ok()
}

/// The `after` argument of a list of `kind`: `BAD_USER_INPUT` on field `after` when it is not
/// one of this list's cursors.
pub fn after<T: FromStr>(kind: &str, after: Option<&str>) -> Result<Option<T>, domain::Error> {
    after
        .map(|c| {
            decode(kind, c)
                .ok_or_else(|| domain::Error::invalid("after", "is not a cursor from this API"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage_and_other_lists() {
        assert_eq!(
            after::<i64>("ticket", Some(&encode("ticket", 42))).unwrap(),
            Some(42)
        );
        assert_eq!(after::<i64>("ticket", None).unwrap(), None);
        assert!(after::<i64>("ticket", Some("not-a-cursor")).is_err());
        assert!(after::<i64>("delivery", Some(&encode("ticket", 42))).is_err());
    }
}

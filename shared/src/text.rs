//! Text the database cannot store: PostgreSQL's `text` refuses the NUL character
//! (U+0000), so a client that sends one gets a 400 (or an error frame) naming the
//! field, never a server error from the insert.

use serde_json::Value;

/// The message every adapter gives for it.
pub const NUL_MESSAGE: &str = "Text may not contain the NUL character (\\u0000).";

/// Where a JSON document holds a NUL character, as a path (`description`,
/// `options[2].text`, `.` for the top level), or `None`. Cheap when there is none: JSON
/// can only carry it escaped, so the document is parsed only if the escape appears.
pub fn nul_in_json(bytes: &[u8]) -> Option<String> {
    let escaped = bytes.windows(6).any(|w| w == b"\\u0000");
    if !escaped {
        return None;
    }
    let value: Value = serde_json::from_slice(bytes).ok()?;
    find(&value, String::new())
}

fn find(v: &Value, path: String) -> Option<String> {
    let here = || {
        if path.is_empty() {
            ".".to_owned()
        } else {
            path.clone()
        }
    };
    match v {
        Value::String(s) => s.contains('\0').then(here),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(p)
            } else {
                find(item, p)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_holding_a_nul_is_named() {
        assert_eq!(nul_in_json(br#"{"a": "fine"}"#), None);
        assert_eq!(nul_in_json(br#"{"a": "not \\u0000 one"}"#), None);
        assert_eq!(nul_in_json(br#"{"a": "x\u0000"}"#).as_deref(), Some("a"));
        assert_eq!(
            nul_in_json(br#"{"a": {"b": ["ok", "\u0000"]}}"#).as_deref(),
            Some("a.b[1]")
        );
        assert_eq!(nul_in_json(br#""\u0000""#).as_deref(), Some("."));
        assert_eq!(nul_in_json(br#"{"k\u0000": 1}"#).as_deref(), Some("k\0"));
    }
}

//! Logging with `tracing`: human-readable text by default, JSON lines when
//! `LOG_FORMAT=json`. The filter comes from `RUST_LOG` (default `info`).
//!
//! In JSON lines a field that holds a list is a JSON array, not a string: `tracing`
//! records a `?list` field as its Debug text (`"[1, 2]"`), so each line whose field
//! looks like one is rewritten with the array in its place ([`arrays_in_line`]) when
//! that text is valid JSON. Other lines go out as formatted.

use std::io::{self, IsTerminal, Write};

use serde_json::Value;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(JsonArrays(io::stdout)),
            )
            .try_init(),
        // Colours only for a terminal: piped into a file or a collector, escape codes
        // are noise.
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(std::io::stdout().is_terminal()))
            .try_init(),
    };
}

/// `line` (one JSON object) with every string field whose text is a JSON array (the
/// Debug text of a list) replaced by that array, at the top level and in `span`; `None`
/// when there is none, so the line goes out unchanged.
pub fn arrays_in_line(line: &str) -> Option<String> {
    // Most lines have no such field: a quick look before parsing.
    if !line.contains(":\"[") {
        return None;
    }
    let mut v: Value = serde_json::from_str(line).ok()?;
    let mut changed = false;
    let mut fix = |map: &mut serde_json::Map<String, Value>| {
        for value in map.values_mut() {
            if let Value::String(s) = value
                && s.starts_with('[')
                && s.ends_with(']')
                && let Ok(array @ Value::Array(_)) = serde_json::from_str::<Value>(s)
            {
                *value = array;
                changed = true;
            }
        }
    };
    let map = v.as_object_mut()?;
    fix(map);
    if let Some(Value::Object(span)) = map.get_mut("span") {
        fix(span);
    }
    changed.then(|| v.to_string())
}

/// The writer of JSON lines: each event's line through [`arrays_in_line`].
struct JsonArrays<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for JsonArrays<M> {
    type Writer = Lines<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Lines {
            inner: self.0.make_writer(),
            buf: Vec::new(),
        }
    }
}

/// Collects what the formatter writes for one event and sends it on, rewritten, when
/// the formatter is done with it (dropped) or flushes.
struct Lines<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Lines<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let rewritten = std::str::from_utf8(&buf).ok().and_then(|text| {
            let line = text.strip_suffix('\n').unwrap_or(text);
            // One event, one line: a newline inside would be another event's.
            (!line.contains('\n'))
                .then(|| arrays_in_line(line))
                .flatten()
        });
        match rewritten {
            Some(mut line) => {
                line.push('\n');
                self.inner.write_all(line.as_bytes())
            }
            None => self.inner.write_all(&buf),
        }
    }
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Lines<W> {
    fn drop(&mut self) {
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_field_becomes_a_json_array() {
        let line = r#"{"timestamp":"t","level":"WARN","message":"m","rows":"[1, 2]","jobs":"[\"email:01A\", \"push:01B\"]","why":"[not json","span":{"ids":"[3]","name":"s"}}"#;
        let v: Value = serde_json::from_str(&arrays_in_line(line).unwrap()).unwrap();
        assert_eq!(v["rows"], serde_json::json!([1, 2]));
        assert_eq!(v["jobs"], serde_json::json!(["email:01A", "push:01B"]));
        assert_eq!(
            v["why"], "[not json",
            "text that is not an array stays text"
        );
        assert_eq!(v["span"]["ids"], serde_json::json!([3]));
        assert_eq!(v["message"], "m");
        // Lines without such a field are not touched (nor re-ordered).
        assert_eq!(arrays_in_line(r#"{"b":"x","a":"[x"}"#), None);
        assert_eq!(arrays_in_line(r#"{"a":"plain"}"#), None);
    }

    #[test]
    fn the_writer_sends_each_event_once_rewritten() {
        let mut out = Vec::new();
        {
            let mut w = Lines {
                inner: &mut out,
                buf: Vec::new(),
            };
            w.write_all(br#"{"message":"m","#).unwrap();
            w.write_all(b"\"ids\":\"[1]\"}\n").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ids\":[1],\"message\":\"m\"}\n"
        );
    }
}

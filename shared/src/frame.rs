//! The frame every party socket speaks (`docs/api-conventions.md`, Realtime): one JSON
//! object per frame, `{"type", "timestamp" (Unix ms), "data"}`, and the `error` frame
//! answered to a bad frame. In `shared` because the API publishes frames to party rooms
//! too (a kick, a deleted chat message).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest text frame accepted from a client, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// One frame, either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix milliseconds: the sender's clock on client frames, the server's on server
    /// frames.
    pub timestamp: i64,
    #[serde(default)]
    pub data: Value,
}

impl Frame {
    /// A server frame stamped with the server's clock.
    pub fn server(kind: &str, data: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            timestamp: chrono::Utc::now().timestamp_millis(),
            data,
        }
    }

    /// The `error` frame: `{"type": "error", "data": {"code", "message"}}`.
    pub fn error(code: &str, message: &str) -> Self {
        Self::server(
            "error",
            serde_json::json!({ "code": code, "message": message }),
        )
    }

    /// Parses a client text frame. A bad frame yields the `error` frame to send back
    /// (the socket stays open).
    pub fn parse(text: &str) -> Result<Self, Self> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(Self::error(
                "frame_too_large",
                &format!("Frames are limited to {MAX_FRAME_BYTES} bytes."),
            ));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Self::error("invalid_json", &format!("Malformed JSON: {e}")))?;
        if let Some(path) = crate::text::nul_in(&value) {
            let refused = Self::error(
                "invalid_data",
                &format!("{path}: {}", crate::text::NUL_MESSAGE),
            );
            return Err(match value.get("type").and_then(Value::as_str) {
                Some(k) => refused.in_reply_to(k),
                None => refused,
            });
        }
        if !value.is_object() {
            return Err(Self::error("invalid_frame", "A frame is a JSON object."));
        }
        // A client may leave `timestamp` out: it then reads as the time of arrival.
        #[derive(Deserialize)]
        struct Incoming {
            #[serde(rename = "type")]
            kind: String,
            timestamp: Option<i64>,
            #[serde(default)]
            data: Value,
        }
        let kind = value.get("type").and_then(Value::as_str).map(str::to_owned);
        let frame: Incoming = serde_json::from_value(value).map_err(|e| {
            let refused = Self::error("invalid_frame", &format!("Invalid frame: {e}"));
            match &kind {
                Some(k) => refused.in_reply_to(k),
                None => refused,
            }
        })?;
        if frame.kind.is_empty() {
            return Err(Self::error("invalid_frame", "`type` may not be empty."));
        }
        Ok(Self {
            kind: frame.kind,
            timestamp: frame
                .timestamp
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            data: frame.data,
        })
    }

    /// An `error` frame naming the type of the client frame it refuses
    /// (`data.in_reply_to`, at most 64 characters); any other frame as it is.
    pub fn in_reply_to(mut self, kind: &str) -> Self {
        if self.kind == "error"
            && let Some(data) = self.data.as_object_mut()
            && !data.contains_key("in_reply_to")
        {
            data.insert(
                "in_reply_to".to_owned(),
                Value::String(kind.chars().take(64).collect()),
            );
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_good_frame() {
        let f = Frame::parse(
            r#"{"type":"chat_message","timestamp":1764230400123,"data":{"content":"hi"}}"#,
        )
        .unwrap();
        assert_eq!(f.kind, "chat_message");
        assert_eq!(f.timestamp, 1_764_230_400_123);
        assert_eq!(f.data["content"], "hi");
    }

    #[test]
    fn a_frame_without_a_timestamp_reads_as_arriving_now() {
        let before = chrono::Utc::now().timestamp_millis();
        let f = Frame::parse(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(f.kind, "ping");
        assert!(f.timestamp >= before, "{}", f.timestamp);
    }

    #[test]
    fn a_refusal_names_the_frame_it_refuses() {
        let e = Frame::parse(r#"{"type":"chat_message","timestamp":"soon"}"#).unwrap_err();
        assert_eq!(e.data["in_reply_to"], "chat_message");
        let e = Frame::error("x", "y").in_reply_to(&"t".repeat(100));
        assert_eq!(e.data["in_reply_to"].as_str().unwrap().len(), 64);
        let pong = Frame::server("pong", serde_json::json!({})).in_reply_to("ping");
        assert!(pong.data.get("in_reply_to").is_none());
    }

    #[test]
    fn bad_frames_get_error_frames() {
        for (text, code) in [
            ("not json", "invalid_json"),
            ("[1,2]", "invalid_frame"),
            (r#"{"timestamp":1}"#, "invalid_frame"),
            (r#"{"type":"x","timestamp":"soon"}"#, "invalid_frame"),
            (r#"{"type":"x","data":1,"timestamp":[]}"#, "invalid_frame"),
            (r#"{"type":"","timestamp":1}"#, "invalid_frame"),
        ] {
            let err = Frame::parse(text).unwrap_err();
            assert_eq!(err.kind, "error");
            assert_eq!(err.data["code"], code, "{text}");
        }
        let big = format!(
            r#"{{"type":"x","timestamp":1,"data":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(
            Frame::parse(&big).unwrap_err().data["code"],
            "frame_too_large"
        );
    }

    #[test]
    fn error_frame_shape() {
        let v = serde_json::to_value(Frame::error("c", "m")).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["data"], serde_json::json!({"code": "c", "message": "m"}));
        assert!(v["timestamp"].as_i64().unwrap() > 0);
    }
}

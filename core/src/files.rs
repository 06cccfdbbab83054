//! What an uploaded file is, read from its first bytes (never from its name or the
//! type the client claims).

/// An image's type and extension: PNG, JPEG, GIF or WebP.
pub fn sniff_image(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(("image/png", "png"))
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(("image/jpeg", "jpg"))
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(("image/gif", "gif"))
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(("image/webp", "webp"))
    } else {
        None
    }
}

/// A document's type and extension: an image ([`sniff_image`]), a PDF, or plain text
/// (a log: valid UTF-8 without NUL bytes or other control characters than tab, line
/// feed, carriage return and escape).
pub fn sniff_document(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if let Some(image) = sniff_image(bytes) {
        return Some(image);
    }
    if bytes.starts_with(b"%PDF-") {
        return Some(("application/pdf", "pdf"));
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{1b}'));
    plain.then_some(("text/plain; charset=utf-8", "txt"))
}

/// A file name safe for a `Content-Disposition` header and any file system: the
/// client's name without its directory, letters, digits, `.`, `-` and `_` kept (others
/// become `_`), at most 100 characters, ending in `.ext` (the type read from the bytes).
pub fn safe_filename(name: Option<&str>, ext: &str) -> String {
    let base = name.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    let mut clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100 - ext.len() - 1)
        .collect();
    let trimmed = clean.trim_matches(['.', '_']).to_owned();
    clean = if trimmed.is_empty() {
        "attachment".to_owned()
    } else {
        trimmed
    };
    format!("{clean}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_come_from_the_bytes() {
        assert_eq!(
            sniff_image(b"\x89PNG\r\n\x1a\nrest").unwrap().0,
            "image/png"
        );
        assert_eq!(sniff_image(b"\xff\xd8\xff\xe0").unwrap().0, "image/jpeg");
        assert_eq!(sniff_image(b"GIF89a...").unwrap().0, "image/gif");
        assert_eq!(
            sniff_image(b"RIFF\0\0\0\0WEBPVP8 ").unwrap().0,
            "image/webp"
        );
        assert!(sniff_image(b"<svg onload=alert(1)>").is_none());
        assert!(sniff_image(b"").is_none());
    }

    #[test]
    fn documents_are_images_pdfs_or_plain_text() {
        assert_eq!(sniff_document(b"%PDF-1.7\n...").unwrap().1, "pdf");
        assert_eq!(
            sniff_document(b"2026-12-02 ERROR sync lost\n\tat x\r\n")
                .unwrap()
                .1,
            "txt"
        );
        assert_eq!(sniff_document(b"GIF89a...").unwrap().1, "gif");
        assert!(sniff_document(b"MZ\x90\0\x03\0").is_none(), "an executable");
        assert!(sniff_document(b"text\0with nul").is_none());
        assert!(sniff_document(b"\xff\xfe broken utf-8").is_none());
        assert!(sniff_document(b"").is_none());
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(safe_filename(Some("../../etc/passwd"), "txt"), "passwd.txt");
        assert_eq!(
            safe_filename(Some("C:\\logs\\app log (1).exe"), "txt"),
            "app_log__1.txt"
        );
        assert_eq!(
            safe_filename(Some("screenshot.png"), "jpg"),
            "screenshot.jpg"
        );
        assert_eq!(safe_filename(None, "pdf"), "attachment.pdf");
        assert_eq!(safe_filename(Some("\"; x=.pdf"), "pdf"), "x.pdf");
        assert!(safe_filename(Some(&"a".repeat(300)), "pdf").len() <= 100);
    }
}

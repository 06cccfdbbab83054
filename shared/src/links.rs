//! Absolute links to this API in answers (an avatar's URL), for types that are built far
//! from the configuration. The public base URL is the process's `PUBLIC_URL`, set when
//! the configuration is read ([`crate::config::Config::from_lookup`]).

use std::sync::RwLock;

static PUBLIC_URL: RwLock<String> = RwLock::new(String::new());

/// Sets the base every [`absolute`] link starts with (no trailing slash).
pub fn set_public_url(url: &str) {
    let mut base = PUBLIC_URL.write().unwrap_or_else(|e| e.into_inner());
    url.trim_end_matches('/').clone_into(&mut base);
}

/// `path` (starting with `/`) under the public base URL; a link that is already absolute
/// is returned as it is.
pub fn absolute(path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_owned();
    }
    let base = PUBLIC_URL.read().unwrap_or_else(|e| e.into_inner());
    format!("{base}{path}")
}

/// Serializes an optional path as an absolute link (`#[serde(serialize_with)]`).
pub fn serialize_absolute<S: serde::Serializer>(
    path: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => s.serialize_some(&absolute(p)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_under_the_base_and_absolute_links_stay() {
        set_public_url("https://api.example/");
        assert_eq!(absolute("/api/x/"), "https://api.example/api/x/");
        assert_eq!(absolute("http://other/y"), "http://other/y");
    }
}

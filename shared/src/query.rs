//! Query strings parsed into typed parameters, naming the parameter at fault: the API's
//! `Query` extractor and the socket upgrades answer a bad parameter the same way.

use serde::de::DeserializeOwned;

/// A query string that does not fit `T`: the parameter at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    pub field: String,
    pub message: String,
}

/// Parses `raw` (without the `?`) into `T`.
pub fn parse<T: DeserializeOwned>(raw: &str) -> Result<T, BadParam> {
    if let Some((k, _)) =
        form_urlencoded::parse(raw.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(BadParam {
            field: k.into_owned(),
            message: crate::text::NUL_MESSAGE.to_owned(),
        });
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = if path == "." || path.is_empty() {
            message
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .unwrap_or("query")
                .to_owned()
        } else {
            path
        };
        BadParam { field, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Q {
        page: u32,
    }

    #[test]
    fn the_parameter_at_fault_is_named() {
        assert_eq!(parse::<Q>("page=3").unwrap().page, 3);
        assert_eq!(parse::<Q>("page=x").unwrap_err().field, "page");
        assert_eq!(parse::<Q>("").unwrap_err().field, "page");
        let e = parse::<Q>("page=1&q=a%00b").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("q", crate::text::NUL_MESSAGE)
        );
    }
}

//! The Watch Party domain, between the infrastructure (`wp_shared`: configuration,
//! database and Redis access, jobs, the outbox, storage) and the adapters that serve it
//! (`api` over HTTP, `realtime` over sockets, `workers` from the queues).
//!
//! One module per aggregate: its typed model (closed sets of values are enums; an
//! unknown value read from the database is an error, never a default), its queries,
//! the one rule that says who may see or act on it, and an error enum that each adapter
//! renders its own way (HTTP status and body, socket error frame).

pub mod account;
pub mod analytics;
pub mod audit;
pub mod comment;
pub mod device;
pub mod event;
pub mod events;
pub mod exports;
pub mod files;
pub mod group;
pub mod mobile;
pub mod moderation;
pub mod notify;
pub mod party;
pub mod search;
pub mod social;
pub mod support;
pub mod sync;
pub mod video;

/// `s` trimmed, if it has `min` to `max` characters; else the message that says so.
pub fn trimmed_text(s: &str, min: usize, max: usize) -> Result<String, String> {
    let v = s.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(format!("{min} to {max} characters (after trimming)."));
    }
    Ok(v.to_owned())
}

/// `s` for a LIKE pattern, its wildcards (`%`, `_`) and `\` taken literally.
pub fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The `%words%` pattern of a search box: trimmed, `None` when empty.
pub fn contains_pattern(search: Option<&str>) -> Option<String> {
    search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", like_literal(s)))
}

/// A database value outside the closed set its enum allows (a migration and the code
/// disagree): an internal error wherever it surfaces.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} value {value:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// Declares a closed set of values stored as TEXT: serde, sqlx and `FromStr` use the
/// same names, declaration order is the order (`Ord`), and a database value outside the
/// set fails to decode instead of turning into some default.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident as $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

        // Written out: the derive does not see `rename` through the macro's literal and
        // would document the variant names instead of the values on the wire.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::UnknownValue { what: $what, value: other.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                Ok(s.parse::<$name>()?)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'_, sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

/// A short version of a stored file, from its storage key: every upload (an avatar, a
/// thumbnail) is stored under a new key, so a new file is a new version (a URL's `?v=`,
/// an `ETag`).
pub fn stored_version(key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_patterns_take_wildcards_literally() {
        assert_eq!(super::like_literal(r"50%_a\b"), r"50\%\_a\\b");
        assert_eq!(
            super::contains_pattern(Some("  film ")).as_deref(),
            Some("%film%")
        );
        assert_eq!(super::contains_pattern(Some("  ")), None);
        assert_eq!(super::trimmed_text(" ab ", 1, 2).as_deref(), Ok("ab"));
        assert!(super::trimmed_text(" ", 1, 2).is_err());
    }
}

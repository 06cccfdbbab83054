//! The Watch Party domain, between the infrastructure (`wp_shared`: configuration,
//! database and Redis access, jobs, the outbox, storage) and the adapters that serve it
//! (`api` over HTTP, `realtime` over sockets, `workers` from the queues).
//!
//! One module per aggregate: its typed model (closed sets of values are enums; an
//! unknown value read from the database is an error, never a default), its queries,
//! the one rule that says who may see or act on it, and an error enum that each adapter
//! renders its own way (HTTP status and body, socket error frame).

pub mod account;
pub mod comment;
pub mod event;
pub mod events;
pub mod group;
pub mod notify;
pub mod party;
pub mod social;
pub mod video;

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
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        $vis enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

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

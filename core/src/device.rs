//! Devices registered for push: who owns an app install, what a push token may look
//! like, and how many devices one account keeps.
//!
//! An install (`device_id`, the app's own stable id) belongs to one account. Another
//! account takes it over only by presenting the push token the install has now (the
//! app was signed in again on the same phone: the provider gives the same token), so
//! knowing someone's `device_id` is not enough to receive their notifications.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

crate::text_enum! {
    /// Where a device's pushes go: APNs for `ios`, FCM for `android` and `web`.
    pub enum Platform as "platform" {
        Ios = "ios",
        Android = "android",
        Web = "web",
    }
}

/// Devices one account keeps; registering one more forgets the least recently
/// refreshed (an install not opened for long, most likely gone).
pub const MAX_PER_USER: i64 = 20;

/// A device registered for push.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Device {
    pub device_id: String,
    /// `ios`, `android` or `web`.
    pub platform: String,
    pub app_version: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a push token cannot be right for its platform, or `None`. APNs device tokens are
/// hexadecimal (32 bytes today; Apple allows longer), and they go into the request path
/// of APNs, so nothing else may pass; FCM registration tokens use the URL-safe
/// alphabet and `:`.
pub fn token_problem(platform: Platform, token: &str) -> Option<&'static str> {
    match platform {
        Platform::Ios => {
            let ok = (64..=200).contains(&token.len())
                && token.len().is_multiple_of(2)
                && token.bytes().all(|b| b.is_ascii_hexdigit());
            (!ok).then_some("An APNs device token: 64 to 200 hexadecimal digits.")
        }
        Platform::Android | Platform::Web => {
            let ok = (1..=4096).contains(&token.len())
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b));
            (!ok).then_some(
                "An FCM registration token: 1 to 4096 letters, digits, '-', '_', ':' or '.'.",
            )
        }
    }
}

/// What a registration did.
#[derive(Debug)]
pub enum Registered {
    /// A new install for this account.
    Created(Device),
    /// A known install: its token, platform and version refreshed (or taken over from
    /// another account with the install's current token).
    Refreshed(Device),
    /// The install belongs to another account and the token does not prove it is the
    /// same one.
    Taken,
}

/// The fields of a registration, checked by the caller.
pub struct NewDevice<'a> {
    pub device_id: &'a str,
    pub platform: Platform,
    pub push_token: &'a str,
    pub app_version: &'a str,
}

/// Registers or refreshes `d` for `user` (see the module's rule on ownership). The same
/// token under another `device_id` is the same install registered before under an id
/// the app has since changed: that row goes, so the phone is not pushed twice. Past
/// [`MAX_PER_USER`] the least recently refreshed devices go.
pub async fn register(db: &PgPool, user: Uuid, d: &NewDevice<'_>) -> sqlx::Result<Registered> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        device: Device,
        inserted: bool,
    }
    let mut tx = db.begin().await?;
    let row: Option<Row> = sqlx::query_as(
        "INSERT INTO devices (id, user_id, device_id, platform, push_token, app_version)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (device_id) DO UPDATE
         SET user_id = EXCLUDED.user_id, platform = EXCLUDED.platform,
             push_token = EXCLUDED.push_token, app_version = EXCLUDED.app_version,
             updated_at = now()
         WHERE devices.user_id = EXCLUDED.user_id OR devices.push_token = EXCLUDED.push_token
         RETURNING device_id, platform, app_version, created_at, updated_at, xmax = 0 AS inserted",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(d.device_id)
    .bind(d.platform.as_str())
    .bind(d.push_token)
    .bind(d.app_version)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Registered::Taken);
    };
    sqlx::query("DELETE FROM devices WHERE push_token = $1 AND device_id <> $2")
        .bind(d.push_token)
        .bind(d.device_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM devices WHERE id IN (
             SELECT id FROM devices WHERE user_id = $1
             ORDER BY updated_at DESC, id DESC OFFSET $2)",
    )
    .bind(user)
    .bind(MAX_PER_USER)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(if row.inserted {
        Registered::Created(row.device)
    } else {
        Registered::Refreshed(row.device)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_their_platform() {
        let apns = "a1".repeat(32);
        assert_eq!(token_problem(Platform::Ios, &apns), None);
        assert_eq!(token_problem(Platform::Ios, &"AB".repeat(50)), None);
        for bad in [
            "a1".repeat(31),
            format!("{}/../x", "a1".repeat(32)),
            format!("{}?x", "a1".repeat(32)),
            format!("{}a", "a1".repeat(32)),
            "g".repeat(64),
        ] {
            assert!(token_problem(Platform::Ios, &bad).is_some(), "{bad}");
        }
        let fcm = "dQw4w9WgXcQ:APA91bH-x_y.z";
        assert_eq!(token_problem(Platform::Android, fcm), None);
        assert_eq!(token_problem(Platform::Web, fcm), None);
        for bad in ["", "a b", "a/b", "a?b", "é"] {
            assert!(token_problem(Platform::Android, bad).is_some(), "{bad:?}");
        }
        assert!(token_problem(Platform::Web, &"a".repeat(4097)).is_some());
    }
}

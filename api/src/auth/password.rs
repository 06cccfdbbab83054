//! Password hashing (argon2id) and the password policy.
//!
//! Parameters: argon2id, m = 19 MiB, t = 2, p = 1 (the OWASP recommendation for
//! argon2id). One hash costs about 25 ms of one core here (docs/benchmarks.md); hashing
//! runs on the blocking pool so it never stalls the async workers.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};

use crate::error::AppError;

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 128;

fn argon2() -> Argon2<'static> {
    // Constant, valid parameters.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (PHC string) on the blocking pool.
pub async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("argon2: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
}

/// Checks a password against a stored hash on the blocking pool. With no hash (an
/// unknown account) it still spends the same time, so timing does not tell whether an
/// account exists.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let (stored, real) = match stored {
            Some(s) => (s, true),
            None => (dummy_hash(), false),
        };
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
        let ok = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(real && ok)
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon2()
                .hash_password(b"no account has this password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// The password policy: length, not the username or email, not easy to guess
/// (zxcvbn score of at least 2: rejects common passwords, keyboard walks, dates,
/// repeats and dictionary words with trivial changes). Errors name `password`.
pub fn check_policy(password: &str, username: &str, email: &str) -> Result<(), AppError> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(AppError::field(
            "password",
            format!("This password is too short. It must contain at least {MIN_LEN} characters."),
        ));
    }
    if len > MAX_LEN {
        return Err(AppError::field(
            "password",
            format!("This password is too long. It may contain at most {MAX_LEN} characters."),
        ));
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if (!username.is_empty() && lower.contains(&username.to_lowercase()))
        || (local.len() >= 3 && lower.contains(&local))
    {
        return Err(AppError::field(
            "password",
            "The password is too similar to the username or email.",
        ));
    }
    let entropy = zxcvbn::zxcvbn(password, &[username, email]);
    if u8::from(entropy.score()) < 2 {
        let hint = entropy
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" {w}"))
            .unwrap_or_default();
        return Err(AppError::field(
            "password",
            format!("This password is too common or too easy to guess.{hint}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(pw: &str) -> bool {
        matches!(check_policy(pw, "alice_w", "alice@example.com"), Err(AppError::Validation(e)) if e.contains_key("password"))
    }

    #[test]
    fn the_policy_rejects_weak_passwords() {
        assert!(rejected("short"));
        assert!(rejected(&"x".repeat(MAX_LEN + 1)));
        assert!(rejected("password123"));
        assert!(rejected("qwertyuiop"));
        assert!(rejected("1234567890"));
        assert!(rejected("alice_w-2024!"), "contains the username");
        assert!(
            rejected("xx-alice-xx-99"),
            "contains the email's local part"
        );
    }

    #[test]
    fn the_policy_accepts_a_reasonable_passphrase() {
        assert!(
            check_policy(
                "correct horse battery staple",
                "alice_w",
                "alice@example.com"
            )
            .is_ok()
        );
        assert!(check_policy("Tr0ub4dor&3-xyzzy", "alice_w", "alice@example.com").is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() {
        let h = hash("a fine long passphrase".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            verify("a fine long passphrase".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("another passphrase".into(), Some(h)).await.unwrap());
        assert!(
            !verify("no account has this password".into(), None)
                .await
                .unwrap()
        );
    }
}

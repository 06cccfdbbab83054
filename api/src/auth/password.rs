//! Password hashing (argon2id) and the password policy.
//!
//! Parameters: argon2id, m = 19 MiB, t = 2, p = 1 (the OWASP recommendation for
//! argon2id). One hash costs about 25 ms of one core here (docs/benchmarks.md).
//!
//! Hashing is bounded: at most `PASSWORD_HASH_CONCURRENCY` hashes run at once (default:
//! the number of cores), each on the blocking pool with a 19 MiB block of memory that is
//! allocated once and reused, so the process never holds more than that many blocks
//! however many requests arrive. A request that cannot start hashing within
//! `PASSWORD_HASH_WAIT_MS` gets 503 `server_busy` with `Retry-After` instead of
//! queueing without end. (Before this, every concurrent hash allocated its own 19 MiB
//! on a thread of the blocking pool and the allocator kept it: 2.1 GB after 300
//! registrations, docs/benchmarks.md.)

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, SaltString},
};
use tokio::sync::Semaphore;

use crate::error::AppError;

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 128;

fn params() -> Params {
    // Constant, valid parameters.
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// The hashes that may run at once, and the memory they reuse.
struct Pool {
    permits: Arc<Semaphore>,
    /// One block of argon2 memory per permit (made on first use).
    memory: Mutex<Vec<Vec<Block>>>,
    wait: Duration,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Sets how many hashes run at once and how long a request waits to start one. The
/// first call wins (the API calls it at start); without it the defaults apply.
pub fn configure(concurrency: usize, wait: Duration) {
    let _ = POOL.set(Pool::new(concurrency, wait));
}

impl Pool {
    fn new(concurrency: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memory: Mutex::new(Vec::new()),
            wait,
        }
    }

    fn get() -> &'static Self {
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            Self::new(cores, Duration::from_secs(2))
        })
    }

    fn take_memory(&self) -> Vec<Block> {
        let reused = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        reused.unwrap_or_else(|| vec![Block::default(); params().block_count()])
    }

    fn give_back(&self, memory: Vec<Block>) {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(memory);
    }

    /// Runs `work` on the blocking pool with a block of memory, once a permit is free
    /// (503 `server_busy` if none frees up in time). The permit and the memory are held
    /// until `work` is done, even if the request is dropped meanwhile.
    async fn run<T: Send + 'static>(
        &'static self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit =
            match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err(AppError::Internal(e.into())),
                Err(_) => {
                    return Err(AppError::Busy {
                        what: "password checks",
                        retry_after: Duration::from_secs(1),
                    });
                }
            };
        tokio::task::spawn_blocking(move || {
            let mut memory = self.take_memory();
            let out = work(&mut memory);
            self.give_back(memory);
            drop(permit);
            out
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))
    }
}

/// Hashes a password (PHC string).
pub async fn hash(password: String) -> Result<String, AppError> {
    Pool::get()
        .run(move |memory| hash_with(password.as_bytes(), memory))
        .await?
        .map_err(|e| AppError::Internal(anyhow::anyhow!("argon2: {e}")))
}

fn hash_with(password: &[u8], memory: &mut [Block]) -> Result<String, argon2::Error> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|_| argon2::Error::SaltTooShort)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2().hash_password_into_with_memory(password, salt_bytes, &mut out, memory)?;
    let output = Output::new(&out).map_err(|_| argon2::Error::OutputTooShort)?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${output}",
        params().m_cost(),
        params().t_cost(),
        params().p_cost(),
        salt.as_str()
    ))
}

/// Checks a password against a stored hash. With no hash (an unknown account) it still
/// spends the same time, so timing does not tell whether an account exists.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, AppError> {
    Pool::get()
        .run(move |memory| {
            let (stored, real) = match stored {
                Some(s) => (s, true),
                None => (dummy_hash(memory), false),
            };
            verify_with(password.as_bytes(), &stored, memory).map(|ok| real && ok)
        })
        .await?
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored hash unreadable: {e}")))
}

/// Whether `password` matches the PHC string `stored` (any argon2 variant and cost it
/// names; the pooled memory serves when it is big enough).
fn verify_with(
    password: &[u8],
    stored: &str,
    memory: &mut [Block],
) -> Result<bool, argon2::password_hash::Error> {
    let parsed = PasswordHash::new(stored)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(argon2::password_hash::Error::PhcStringField);
    };
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let needed = params.block_count();
    let hasher = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    match memory.get_mut(..needed) {
        Some(m) => hasher.hash_password_into_with_memory(password, salt_bytes, &mut out, m)?,
        None => hasher.hash_password_into(password, salt_bytes, &mut out)?,
    }
    // `Output`'s equality is constant-time.
    Ok(Output::new(&out)? == expected)
}

fn dummy_hash(memory: &mut [Block]) -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_with(b"no account has this password", memory).unwrap_or_default())
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

    #[test]
    fn pooled_hashes_are_standard_phc_strings_both_ways() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut memory = vec![Block::default(); params().block_count()];
        // Ours verifies with the crate's own verifier...
        let ours = hash_with(b"a fine long passphrase", &mut memory).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2()
                .verify_password(b"a fine long passphrase", &parsed)
                .is_ok()
        );
        // ...and a hash stored by the crate's own hasher (every account made before the
        // pool) verifies with ours, in reused memory, and a wrong password does not.
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = argon2()
            .hash_password(b"an older passphrase", &salt)
            .unwrap()
            .to_string();
        assert!(verify_with(b"an older passphrase", &theirs, &mut memory).unwrap());
        assert!(!verify_with(b"an older passphrasf", &theirs, &mut memory).unwrap());
        // A hash with a bigger memory cost than the pool's still verifies.
        let big = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"bigger", &salt)
        .unwrap()
        .to_string();
        assert!(verify_with(b"bigger", &big, &mut memory).unwrap());
    }

    #[tokio::test]
    async fn a_full_pool_answers_busy_instead_of_queueing_without_end() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(1, Duration::from_millis(50))));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn(pool.run(move |_| {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }));
        started_rx.await.unwrap();
        let second = pool.run(|_| ()).await;
        assert!(matches!(second, Err(AppError::Busy { .. })), "{second:?}");
        release_tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        // The memory is back for the next hash: one block made, one kept.
        pool.run(|m| assert_eq!(m.len(), params().block_count()))
            .await
            .unwrap();
        assert_eq!(pool.memory.lock().unwrap().len(), 1);
    }
}

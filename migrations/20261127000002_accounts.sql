-- Accounts: users, sessions with rotating refresh tokens, one-time email tokens,
-- TOTP recovery codes.

CREATE TABLE users (
    id                  UUID        PRIMARY KEY,
    username            TEXT        NOT NULL CHECK (username ~ '^[A-Za-z0-9_.]{3,30}$'),
    email               TEXT        NOT NULL CHECK (position('@' IN email) > 1),
    email_verified_at   TIMESTAMPTZ,
    password_hash       TEXT        NOT NULL,
    display_name        TEXT        NOT NULL DEFAULT '' CHECK (length(display_name) <= 80),
    bio                 TEXT        NOT NULL DEFAULT '' CHECK (length(bio) <= 1000),
    avatar_path         TEXT,
    locale              TEXT        NOT NULL DEFAULT 'en',
    timezone            TEXT        NOT NULL DEFAULT 'UTC',
    role                TEXT        NOT NULL DEFAULT 'user'
                        CHECK (role IN ('user', 'moderator', 'admin')),
    status              TEXT        NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'suspended', 'deleted')),
    suspended_reason    TEXT,
    -- NULL while suspended means "until lifted".
    suspended_until     TIMESTAMPTZ,
    -- Set when the owner asks for deletion; the account goes after the grace period.
    deletion_requested_at TIMESTAMPTZ,
    -- Base32 TOTP secret; `totp_enabled_at` set once a code confirmed it.
    totp_secret         TEXT,
    totp_enabled_at     TIMESTAMPTZ,
    failed_logins       INT         NOT NULL DEFAULT 0,
    locked_until        TIMESTAMPTZ,
    last_login_at       TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Usernames and emails are unique whatever their case.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- User search by username prefix.
CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops);

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per login (a device). Its refresh tokens form one rotation family: reuse of
-- a spent token revokes the session.
CREATE TABLE sessions (
    id              UUID        PRIMARY KEY,
    user_id         UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent      TEXT        NOT NULL DEFAULT '',
    ip              TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ,
    revoked_reason  TEXT
);

CREATE INDEX sessions_user_idx ON sessions (user_id, created_at DESC);

-- Refresh tokens, stored as SHA-256 of the random token. Single use: `used_at` set
-- when exchanged.
CREATE TABLE refresh_tokens (
    token_hash  BYTEA       PRIMARY KEY,
    session_id  UUID        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at     TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- One-time tokens sent by email (verify address, reset password, confirm a new
-- address), stored hashed, short-lived.
CREATE TABLE email_tokens (
    token_hash  BYTEA       PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    -- The address the token is for (the new one, for `change_email`).
    email       TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);

CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);

-- TOTP recovery codes, shown once, stored hashed, each usable once.
CREATE TABLE recovery_codes (
    code_hash   BYTEA       PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    used_at     TIMESTAMPTZ
);

CREATE INDEX recovery_codes_user_idx ON recovery_codes (user_id);

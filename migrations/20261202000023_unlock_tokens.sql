-- The lockout notice carries a way back in: an `unlock_account` token whose link lifts
-- the lock at once (the owner proves the mailbox instead of waiting it out).
ALTER TABLE email_tokens DROP CONSTRAINT email_tokens_purpose_check;
ALTER TABLE email_tokens ADD CONSTRAINT email_tokens_purpose_check
    CHECK (purpose IN ('verify_email', 'reset_password', 'change_email', 'revert_email', 'unlock_account'));

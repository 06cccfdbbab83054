-- A confirmed email change sends the old address a way back: a `revert_email` token
-- (its `email` is the old address) that restores it and signs out every session.
ALTER TABLE email_tokens DROP CONSTRAINT email_tokens_purpose_check;
ALTER TABLE email_tokens ADD CONSTRAINT email_tokens_purpose_check
    CHECK (purpose IN ('verify_email', 'reset_password', 'change_email', 'revert_email'));

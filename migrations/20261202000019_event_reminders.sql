-- The reminders sent before an event starts (`24h`, `15m`): one row each, so a reminder
-- goes out once however many schedulers run and across restarts. Moving an event's start
-- deletes its rows, so the reminders follow the new time.
CREATE TABLE event_reminders (
    event_id UUID        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    lead     TEXT        NOT NULL CHECK (lead IN ('24h', '15m')),
    sent_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, lead)
);

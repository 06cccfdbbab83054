-- Reminder leads chosen per user (minutes before an event's start, from a fixed menu in
-- wp_core::event::REMINDER_LEADS); NULL means the default, 24 h and 15 min.
ALTER TABLE notification_settings ADD COLUMN event_reminder_minutes INT[];

-- The default leads, written once for every query that reads a user's leads.
CREATE FUNCTION default_event_reminder_minutes() RETURNS INT[]
    LANGUAGE sql IMMUTABLE AS $$ SELECT '{1440,15}'::INT[] $$;

-- A reminder is now recorded per event and lead in minutes.
ALTER TABLE event_reminders DROP CONSTRAINT event_reminders_pkey;
ALTER TABLE event_reminders ADD COLUMN lead_minutes INT;
UPDATE event_reminders SET lead_minutes = CASE lead WHEN '24h' THEN 1440 ELSE 15 END;
ALTER TABLE event_reminders DROP COLUMN lead;
ALTER TABLE event_reminders ALTER COLUMN lead_minutes SET NOT NULL;
ALTER TABLE event_reminders ADD PRIMARY KEY (event_id, lead_minutes);

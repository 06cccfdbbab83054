-- Delta sync for the mobile apps (`POST /api/mobile/sync/`): what changed for whom.
-- Triggers note, in the writer's own transaction, that object `object_id` of `kind`
-- changed for `user_id`; the sync reads the notes of transactions a client may not have
-- seen (by transaction id: `txid >= the xmin of the client's last snapshot`) and answers
-- each noted object from its current row — present and the user's: upserted; gone or
-- no longer theirs: a tombstone. Notes are kept `SYNC_RETENTION` (30 days, pruned by the
-- scheduler); an older cursor gets a full resync.
CREATE TABLE sync_changes (
    id        BIGSERIAL   PRIMARY KEY,
    user_id   UUID        NOT NULL,
    kind      TEXT        NOT NULL CHECK (kind IN ('notification', 'friend', 'party', 'event', 'group')),
    object_id UUID        NOT NULL,
    txid      xid8        NOT NULL DEFAULT pg_current_xact_id(),
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sync_changes_user ON sync_changes (user_id, txid);
CREATE INDEX sync_changes_age ON sync_changes (at);

ALTER TABLE devices ADD COLUMN last_sync_at TIMESTAMPTZ;

CREATE FUNCTION sync_notifications() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_changes (user_id, kind, object_id) VALUES (OLD.user_id, 'notification', OLD.id);
        RETURN OLD;
    END IF;
    INSERT INTO sync_changes (user_id, kind, object_id) VALUES (NEW.user_id, 'notification', NEW.id);
    RETURN NEW;
END $$;
CREATE TRIGGER notifications_sync AFTER INSERT OR UPDATE OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION sync_notifications();

CREATE FUNCTION sync_friendships() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    INSERT INTO sync_changes (user_id, kind, object_id)
        VALUES (r.user_a, 'friend', r.user_b), (r.user_b, 'friend', r.user_a);
    RETURN r;
END $$;
CREATE TRIGGER friendships_sync AFTER INSERT OR DELETE ON friendships
    FOR EACH ROW EXECUTE FUNCTION sync_friendships();

-- Membership rows: the member's own view of the party, group or event changed.
CREATE FUNCTION sync_membership() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    -- TG_ARGV: the kind, and the column holding the object's id.
    INSERT INTO sync_changes (user_id, kind, object_id)
        VALUES (r.user_id, TG_ARGV[0], (to_jsonb(r) ->> TG_ARGV[1])::uuid);
    RETURN r;
END $$;
CREATE TRIGGER party_members_sync AFTER INSERT OR UPDATE OR DELETE ON party_members
    FOR EACH ROW EXECUTE FUNCTION sync_membership('party', 'party_id');
CREATE TRIGGER group_members_sync AFTER INSERT OR UPDATE OR DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION sync_membership('group', 'group_id');
CREATE TRIGGER event_attendees_sync AFTER INSERT OR UPDATE OR DELETE ON event_attendees
    FOR EACH ROW EXECUTE FUNCTION sync_membership('event', 'event_id');
CREATE TRIGGER event_invitations_sync AFTER INSERT OR UPDATE OR DELETE ON event_invitations
    FOR EACH ROW EXECUTE FUNCTION sync_membership('event', 'event_id');

-- The object itself changed (what a member sees of it): every member is told. Parties
-- only on what a card shows, not on playback (which moves many times a minute).
CREATE FUNCTION sync_parties() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_changes (user_id, kind, object_id)
        SELECT m.user_id, 'party', NEW.id FROM party_members m WHERE m.party_id = NEW.id;
    RETURN NEW;
END $$;
CREATE TRIGGER parties_sync AFTER UPDATE ON parties FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.description IS DISTINCT FROM NEW.description
          OR OLD.status IS DISTINCT FROM NEW.status OR OLD.visibility IS DISTINCT FROM NEW.visibility
          OR OLD.video_id IS DISTINCT FROM NEW.video_id OR OLD.external_url IS DISTINCT FROM NEW.external_url
          OR OLD.host_id IS DISTINCT FROM NEW.host_id)
    EXECUTE FUNCTION sync_parties();

CREATE FUNCTION sync_groups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_changes (user_id, kind, object_id)
        SELECT m.user_id, 'group', NEW.id FROM group_members m WHERE m.group_id = NEW.id;
    RETURN NEW;
END $$;
CREATE TRIGGER social_groups_sync AFTER UPDATE ON social_groups FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.description IS DISTINCT FROM NEW.description
          OR OLD.is_private IS DISTINCT FROM NEW.is_private OR OLD.category IS DISTINCT FROM NEW.category
          OR OLD.admin_id IS DISTINCT FROM NEW.admin_id)
    EXECUTE FUNCTION sync_groups();

CREATE FUNCTION sync_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    INSERT INTO sync_changes (user_id, kind, object_id) VALUES (r.organizer_id, 'event', r.id);
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO sync_changes (user_id, kind, object_id)
            SELECT a.user_id, 'event', r.id FROM event_attendees a WHERE a.event_id = r.id
            UNION SELECT i.user_id, 'event', r.id FROM event_invitations i WHERE i.event_id = r.id;
    END IF;
    RETURN r;
END $$;
CREATE TRIGGER events_sync AFTER INSERT OR UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION sync_events();

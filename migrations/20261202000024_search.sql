-- Search (docs/search.md). Every change of a searchable object is recorded by a trigger
-- in the writer's own transaction (so no code path can forget it, a cascade included);
-- the search worker folds the changes into the index of the configured backend:
-- `search_documents` below (PostgreSQL, the embedded default) or Meilisearch.
-- pg_trgm (typo tolerance, suggestions) and unaccent are trusted extensions: the
-- database owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- What changed and is not yet in the index. The worker reads an index's rows in id
-- order, indexes each object's current state once (a deleted or hidden object leaves
-- the index) and deletes the rows it folded.
CREATE TABLE search_changes (
    id         BIGSERIAL   PRIMARY KEY,
    index_name TEXT        NOT NULL CHECK (index_name IN ('videos', 'users', 'parties', 'events', 'groups')),
    object_id  UUID        NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX search_changes_index ON search_changes (index_name, id);

-- The text search configuration for a locale's language (stemming, stop words);
-- `simple` for languages PostgreSQL has none for.
CREATE FUNCTION search_config(locale TEXT) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE lower(split_part(split_part(locale, '-', 1), '_', 1))
        WHEN 'en' THEN 'english' WHEN 'de' THEN 'german' WHEN 'fr' THEN 'french'
        WHEN 'es' THEN 'spanish' WHEN 'it' THEN 'italian' WHEN 'pt' THEN 'portuguese'
        WHEN 'nl' THEN 'dutch' WHEN 'sv' THEN 'swedish' WHEN 'da' THEN 'danish'
        WHEN 'nb' THEN 'norwegian' WHEN 'no' THEN 'norwegian' WHEN 'fi' THEN 'finnish'
        WHEN 'ru' THEN 'russian' WHEN 'tr' THEN 'turkish' WHEN 'hu' THEN 'hungarian'
        WHEN 'ro' THEN 'romanian'
        ELSE 'simple' END)::regconfig
$$;

-- Text as HTML (highlights wrap matches in <mark> around escaped text).
CREATE FUNCTION html_escape(t TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT replace(replace(replace(replace(t, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;')
$$;

-- The PostgreSQL backend's index: one row per searchable object, in the shape every
-- backend indexes (core/src/search). Visibility is decided at query time from
-- `owner_id`, `visibility` and `group_id` (and the times for events).
CREATE TABLE search_documents (
    index_name       TEXT        NOT NULL,
    id               UUID        NOT NULL,
    title            TEXT        NOT NULL,
    body             TEXT        NOT NULL DEFAULT '',
    tags             TEXT[]      NOT NULL DEFAULT '{}',
    category         TEXT        NOT NULL DEFAULT '',
    owner_id         UUID,
    owner_name       TEXT        NOT NULL DEFAULT '',
    -- public, unlisted, friends, private or members (a private group's).
    visibility       TEXT        NOT NULL,
    group_id         UUID,
    -- An event's status (scheduled, live, ended, cancelled); '' for the others.
    status           TEXT        NOT NULL DEFAULT '',
    duration_seconds DOUBLE PRECISION,
    starts_at        TIMESTAMPTZ,
    ends_at          TIMESTAMPTZ,
    popularity       DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    -- What a hit shows besides the above (status, counts).
    fields           JSONB       NOT NULL DEFAULT '{}',
    -- Lower-case, unaccented title, owner and tags: trigram matching (typos, prefixes).
    norm             TEXT        NOT NULL,
    tsv              TSVECTOR    NOT NULL,
    indexed_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (index_name, id)
);
CREATE INDEX search_documents_tsv ON search_documents USING GIN (tsv);
CREATE INDEX search_documents_norm ON search_documents USING GIN (norm gin_trgm_ops);
CREATE INDEX search_documents_owner ON search_documents (owner_id);
-- Prefix suggestions (`norm LIKE 'abc%'`); the trigram index serves words inside.
CREATE INDEX search_documents_prefix ON search_documents (norm text_pattern_ops);

-- Queries people ran, folded per normalised text (suggestions from popular queries;
-- what no single user's query can reach: `users` counts distinct people).
CREATE TABLE search_queries (
    query      TEXT        PRIMARY KEY CHECK (length(query) BETWEEN 1 AND 200),
    searches   BIGINT      NOT NULL DEFAULT 0,
    users      INTEGER     NOT NULL DEFAULT 0,
    last_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX search_queries_norm ON search_queries USING GIN (query gin_trgm_ops);
-- Who searched what (once per user and query), for `users` above.
CREATE TABLE search_query_users (
    query   TEXT NOT NULL REFERENCES search_queries (query) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (query, user_id)
);

-- Saved searches: the query string as the user ran it; `alert` asks for a notification
-- (at most daily) when a new video matches.
CREATE TABLE saved_searches (
    id             UUID        PRIMARY KEY,
    user_id        UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    query          TEXT        NOT NULL CHECK (length(query) BETWEEN 1 AND 200),
    params         JSONB       NOT NULL DEFAULT '{}',
    alert          BOOLEAN     NOT NULL DEFAULT FALSE,
    -- Videos indexed up to here were already considered for the alert.
    alerted_until  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);
CREATE INDEX saved_searches_alert ON saved_searches (alerted_until) WHERE alert;

-- Records a change of the row for the index named by the trigger's argument and wakes
-- the search worker (LISTEN wp_search; the notification is folded per transaction).
CREATE FUNCTION search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_changes (index_name, object_id)
    VALUES (TG_ARGV[0], CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    PERFORM pg_notify('wp_search', TG_ARGV[0]);
    RETURN NULL;
END $$;

CREATE TRIGGER videos_search AFTER INSERT OR DELETE ON videos
    FOR EACH ROW EXECUTE FUNCTION search_changed('videos');
CREATE TRIGGER videos_search_update AFTER UPDATE ON videos FOR EACH ROW
    WHEN ((OLD.title, OLD.description, OLD.tags, OLD.category, OLD.visibility, OLD.status,
           OLD.duration_seconds, OLD.thumbnail_key)
          IS DISTINCT FROM
          (NEW.title, NEW.description, NEW.tags, NEW.category, NEW.visibility, NEW.status,
           NEW.duration_seconds, NEW.thumbnail_key))
    EXECUTE FUNCTION search_changed('videos');

CREATE TRIGGER parties_search AFTER INSERT OR DELETE ON parties
    FOR EACH ROW EXECUTE FUNCTION search_changed('parties');
CREATE TRIGGER parties_search_update AFTER UPDATE ON parties FOR EACH ROW
    WHEN ((OLD.title, OLD.description, OLD.visibility, OLD.status, OLD.group_id, OLD.video_id)
          IS DISTINCT FROM
          (NEW.title, NEW.description, NEW.visibility, NEW.status, NEW.group_id, NEW.video_id))
    EXECUTE FUNCTION search_changed('parties');

CREATE TRIGGER events_search AFTER INSERT OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION search_changed('events');
CREATE TRIGGER events_search_update AFTER UPDATE ON events FOR EACH ROW
    WHEN ((OLD.title, OLD.description, OLD.location, OLD.start_time, OLD.end_time,
           OLD.is_public, OLD.status, OLD.group_id)
          IS DISTINCT FROM
          (NEW.title, NEW.description, NEW.location, NEW.start_time, NEW.end_time,
           NEW.is_public, NEW.status, NEW.group_id))
    EXECUTE FUNCTION search_changed('events');

CREATE TRIGGER groups_search AFTER INSERT OR DELETE ON social_groups
    FOR EACH ROW EXECUTE FUNCTION search_changed('groups');
CREATE TRIGGER groups_search_update AFTER UPDATE ON social_groups FOR EACH ROW
    WHEN ((OLD.name, OLD.description, OLD.is_private, OLD.category, OLD.member_count, OLD.admin_id)
          IS DISTINCT FROM
          (NEW.name, NEW.description, NEW.is_private, NEW.category, NEW.member_count, NEW.admin_id))
    EXECUTE FUNCTION search_changed('groups');

CREATE TRIGGER users_search AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION search_changed('users');

-- A user's name, status or language shows in (or hides) everything they own: their
-- videos, parties, events and groups are indexed again too.
CREATE FUNCTION search_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_changes (index_name, object_id) VALUES ('users', NEW.id);
    INSERT INTO search_changes (index_name, object_id)
        SELECT 'videos', id FROM videos WHERE owner_id = NEW.id
        UNION ALL SELECT 'parties', id FROM parties WHERE host_id = NEW.id AND status = 'active'
        UNION ALL SELECT 'events', id FROM events WHERE organizer_id = NEW.id
        UNION ALL SELECT 'groups', id FROM social_groups WHERE admin_id = NEW.id;
    PERFORM pg_notify('wp_search', 'users');
    RETURN NULL;
END $$;
CREATE TRIGGER users_search_update AFTER UPDATE ON users FOR EACH ROW
    WHEN ((OLD.username, OLD.display_name, OLD.status, OLD.locale)
          IS DISTINCT FROM (NEW.username, NEW.display_name, NEW.status, NEW.locale))
    EXECUTE FUNCTION search_user_changed();

-- What exists today goes in with the first sync.
INSERT INTO search_changes (index_name, object_id)
    SELECT 'users', id FROM users
    UNION ALL SELECT 'videos', id FROM videos
    UNION ALL SELECT 'parties', id FROM parties WHERE status = 'active'
    UNION ALL SELECT 'events', id FROM events
    UNION ALL SELECT 'groups', id FROM social_groups;

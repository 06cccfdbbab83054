-- Group events and group parties: an event or a party may belong to a social group; the
-- group's members see it (and may join a group party without its code), whatever its own
-- visibility. A deleted group leaves its events and parties to their own rules.
ALTER TABLE events ADD COLUMN group_id UUID REFERENCES social_groups (id) ON DELETE SET NULL;
ALTER TABLE parties ADD COLUMN group_id UUID REFERENCES social_groups (id) ON DELETE SET NULL;
CREATE INDEX events_group ON events (group_id, start_time) WHERE group_id IS NOT NULL;
CREATE INDEX parties_group ON parties (group_id, created_at) WHERE group_id IS NOT NULL;

-- The party rule of migration 14, with the group's members added.
CREATE OR REPLACE FUNCTION party_visible_to(party UUID, host UUID, visibility TEXT, viewer UUID, staff BOOLEAN)
RETURNS BOOLEAN LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT staff
        OR EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = party AND m.user_id = viewer)
        OR (NOT blocked_between(host, viewer)
            AND (visibility = 'public'
                 OR (visibility = 'friends' AND are_friends(host, viewer))
                 OR EXISTS (SELECT 1 FROM parties p JOIN group_members g ON g.group_id = p.group_id
                             WHERE p.id = party AND g.user_id = viewer)))
$$;

-- One rule per resource for who may see it, used by every list, detail, join, socket
-- and fan-out (core/src/video, core/src/party). Plain SQL functions of one expression:
-- the planner inlines them, so they cost what the copied predicates cost.

-- Whether two users are friends (friendships stores each pair once, smaller id first).
CREATE FUNCTION are_friends(a UUID, b UUID) RETURNS BOOLEAN
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM friendships f
                   WHERE f.user_a = LEAST(a, b) AND f.user_b = GREATEST(a, b))
$$;

-- Whether either user blocked the other: neither then sees the other's things.
CREATE FUNCTION blocked_between(a UUID, b UUID) RETURNS BOOLEAN
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM blocks x
                   WHERE (x.blocker = a AND x.blocked = b) OR (x.blocker = b AND x.blocked = a))
$$;

-- Whether `viewer` (NULL: signed out) may open a video by its id: the owner and staff
-- always; others once it is ready, when no block stands between them and the owner,
-- and it is public or unlisted, or friends-only and they are friends.
CREATE FUNCTION video_visible_to(owner UUID, status TEXT, visibility TEXT, viewer UUID, staff BOOLEAN)
RETURNS BOOLEAN LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (owner = viewer) IS TRUE OR staff
        OR (status = 'ready'
            AND (viewer IS NULL OR NOT blocked_between(owner, viewer))
            AND (visibility IN ('public', 'unlisted')
                 OR (visibility = 'friends' AND viewer IS NOT NULL AND are_friends(owner, viewer))))
$$;

-- Whether `viewer` may see a party: staff and members always; others when no block
-- stands between them and the host, and it is public, or friends-only and they are
-- the host's friends. Only active parties are seen at all (callers filter status).
CREATE FUNCTION party_visible_to(party UUID, host UUID, visibility TEXT, viewer UUID, staff BOOLEAN)
RETURNS BOOLEAN LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT staff
        OR EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = party AND m.user_id = viewer)
        OR (NOT blocked_between(host, viewer)
            AND (visibility = 'public'
                 OR (visibility = 'friends' AND are_friends(host, viewer))))
$$;

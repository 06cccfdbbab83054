-- Social groups (seed item 8). A public group is seen and joined by anyone; a private
-- one is seen only by its members and the users it invited (everyone else gets 404), and
-- joined by invitation or by an approved request. `member_count` is kept with the
-- membership rows, under the group's row lock. `admin_id` is the group's first admin (the
-- seed's `admin`); it moves when that admin leaves or is demoted.
CREATE TABLE social_groups (
    id           UUID        PRIMARY KEY,
    name         TEXT        NOT NULL,
    description  TEXT        NOT NULL DEFAULT '',
    admin_id     UUID        NOT NULL REFERENCES users (id),
    is_private   BOOLEAN     NOT NULL DEFAULT FALSE,
    category     TEXT        NOT NULL DEFAULT '',
    member_count INTEGER     NOT NULL DEFAULT 1 CHECK (member_count >= 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX social_groups_public ON social_groups (created_at DESC) WHERE NOT is_private;
CREATE INDEX social_groups_category ON social_groups (category);

CREATE TABLE group_members (
    group_id  UUID        NOT NULL REFERENCES social_groups (id) ON DELETE CASCADE,
    user_id   UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT        NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'moderator', 'admin')),
    joined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- Asking to join a private group; an admin or moderator approves or rejects.
CREATE TABLE group_join_requests (
    group_id   UUID        NOT NULL REFERENCES social_groups (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message    TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);

-- An invitation lets its user see the group and join it directly.
CREATE TABLE group_invitations (
    group_id   UUID        NOT NULL REFERENCES social_groups (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_invitations_user ON group_invitations (user_id);

CREATE TABLE group_bans (
    group_id   UUID        NOT NULL REFERENCES social_groups (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason     TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);

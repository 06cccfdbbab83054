-- Chat messages stored but whose publication to the party channel is not yet confirmed.
-- A realtime node stores a message (with its row here, in the same statement), fans it out
-- to its own sockets and publishes it for the other nodes; once Redis took the publish the
-- node deletes the row. A node killed in between, or a publish Redis refused, leaves the
-- row, and the outbox sweep publishes the message again (wp_core::party::chat::republish):
-- no message acknowledged to its sender stays unseen by members on other nodes.
CREATE TABLE party_messages_unpublished (
    message_id uuid PRIMARY KEY REFERENCES party_messages (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX party_messages_unpublished_created_at ON party_messages_unpublished (created_at);

-- MQTT 5 Subscription Identifiers (full profile): the identifier a
-- subscription was made with (NULL: none), and those a queued message is
-- delivered with (decimal, comma-separated; empty: none).
ALTER TABLE session_subscriptions ADD COLUMN subscription_identifier INTEGER;
ALTER TABLE session_messages ADD COLUMN subscription_ids TEXT NOT NULL DEFAULT '';

-- Registry changes between the nodes sharing this database, announced in
-- the transaction that makes them: a change is NOTIFYed if and only if it
-- commits, even if the node that made it dies right after. Every change
-- bumps `registry_version` (writes are serialised by the store's advisory
-- lock, so versions follow commit order) and notifies channel
-- `roost_registry` with {"version", "node", "change"}: "node" is the
-- writing connection's `roost.node` setting (NULL from psql), "change" is
-- a `roost_registry::feed::Change` in its JSON form. A node that polls a
-- version it heard no notification for, or hears a gap, re-reads
-- everything (store/postgres/notify.rs).

CREATE TABLE registry_version (
    id      SMALLINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

CREATE FUNCTION roost_registry_changed(change JSONB) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    bumped BIGINT;
BEGIN
    UPDATE registry_version SET version = version + 1 WHERE id = 1
        RETURNING version INTO bumped;
    PERFORM pg_notify('roost_registry', jsonb_build_object(
        'version', bumped,
        'node', current_setting('roost.node', true),
        'change', change)::text);
END $$;

-- Authorizations in `scope` may be stale: {"kind": "all"}, or
-- {"kind": "thing" | "certificate", "key": ...}.
CREATE FUNCTION roost_authorization_changed(scope JSONB) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM roost_registry_changed(
        jsonb_build_object('kind', 'authorization', 'scope', scope));
END $$;

-- The scope of a principal or policy target: a certificate's own, or
-- everything (a thing group's members, other principal kinds).
CREATE FUNCTION roost_principal_scope(principal TEXT) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN position(':cert/' IN principal) > 0 THEN jsonb_build_object(
            'kind', 'certificate', 'key', split_part(principal, ':cert/', 2))
        ELSE jsonb_build_object('kind', 'all')
    END
$$;

CREATE FUNCTION roost_thing_scope(thing TEXT) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('kind', 'thing', 'key', thing)
$$;

-- A certificate that changed status or was deleted: its connections are
-- re-checked (and closed unless ACTIVE).
CREATE FUNCTION roost_certificates_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM roost_registry_changed(jsonb_build_object(
            'kind', 'certificate', 'certificate_id', OLD.id, 'status', NULL));
    ELSIF OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM roost_registry_changed(jsonb_build_object(
            'kind', 'certificate', 'certificate_id', NEW.id, 'status', NEW.status));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER certificates_changed AFTER UPDATE OR DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION roost_certificates_changed();

-- A thing's attributes and name feed policy variables.
CREATE FUNCTION roost_things_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM roost_authorization_changed(roost_thing_scope(OLD.name));
    RETURN NULL;
END $$;
CREATE TRIGGER things_changed AFTER UPDATE OR DELETE ON things
    FOR EACH ROW EXECUTE FUNCTION roost_things_changed();

-- An attachment added or removed: TG_ARGV names the row's thing column
-- and its principal (or policy target) column, '' for none.
CREATE FUNCTION roost_attachment_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
DECLARE
    attachment JSONB;
BEGIN
    IF TG_OP = 'DELETE' THEN
        attachment := to_jsonb(OLD);
    ELSE
        attachment := to_jsonb(NEW);
    END IF;
    IF TG_ARGV[0] <> '' THEN
        PERFORM roost_authorization_changed(roost_thing_scope(attachment ->> TG_ARGV[0]));
    END IF;
    IF TG_ARGV[1] <> '' THEN
        PERFORM roost_authorization_changed(roost_principal_scope(attachment ->> TG_ARGV[1]));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER thing_principals_changed AFTER INSERT OR DELETE ON thing_principals
    FOR EACH ROW EXECUTE FUNCTION roost_attachment_changed('thing_name', 'principal');
CREATE TRIGGER thing_group_members_changed AFTER INSERT OR DELETE ON thing_group_members
    FOR EACH ROW EXECUTE FUNCTION roost_attachment_changed('thing_name', '');
CREATE TRIGGER policy_targets_changed AFTER INSERT OR DELETE ON policy_targets
    FOR EACH ROW EXECUTE FUNCTION roost_attachment_changed('', 'target');

-- Groups (their hierarchy, their policies' reach) and policies (their
-- default version).
CREATE FUNCTION roost_authorization_all_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM roost_authorization_changed(jsonb_build_object('kind', 'all'));
    RETURN NULL;
END $$;
CREATE TRIGGER thing_groups_changed AFTER UPDATE OR DELETE ON thing_groups
    FOR EACH ROW EXECUTE FUNCTION roost_authorization_all_changed();
CREATE TRIGGER policies_deleted AFTER DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION roost_authorization_all_changed();
CREATE TRIGGER policies_default_changed AFTER UPDATE ON policies
    FOR EACH ROW WHEN (OLD.default_version IS DISTINCT FROM NEW.default_version)
    EXECUTE FUNCTION roost_authorization_all_changed();

-- Topic rules and their destinations: the nodes read them again.
CREATE FUNCTION roost_rules_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM roost_registry_changed(jsonb_build_object('kind', TG_ARGV[0]));
    RETURN NULL;
END $$;
CREATE TRIGGER topic_rules_changed AFTER INSERT OR UPDATE OR DELETE ON topic_rules
    FOR EACH STATEMENT EXECUTE FUNCTION roost_rules_changed('rules');
CREATE TRIGGER topic_rule_destinations_changed
    AFTER INSERT OR UPDATE OR DELETE ON topic_rule_destinations
    FOR EACH STATEMENT EXECUTE FUNCTION roost_rules_changed('destinations');

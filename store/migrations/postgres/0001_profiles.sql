-- plumb's profile store, version 1.
-- One row per profile name: the last version number handed out (versions are never reused, even
-- after deletes) and the active version (NULL when the name has none).
CREATE TABLE plumb_profiles (
    name         text   PRIMARY KEY,
    last_version bigint NOT NULL,
    active       bigint
);

-- Immutable versions: a protobuf-encoded plumb.v1.Profile each.
CREATE TABLE plumb_profile_versions (
    name    text        NOT NULL REFERENCES plumb_profiles (name),
    version bigint      NOT NULL,
    created timestamptz NOT NULL,
    data    bytea       NOT NULL,
    PRIMARY KEY (name, version)
);

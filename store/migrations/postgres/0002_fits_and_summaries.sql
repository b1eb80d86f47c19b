-- plumb's profile store, version 2.
-- fit_id: the client's id of the fit that made a version, so that a retried fit finds its
-- version instead of storing another; unique per name.
-- summary: a short protobuf-encoded plumb.v1.Profile (no report, curves or group quantiles)
-- that listings read instead of the data; NULL for versions stored before it.
ALTER TABLE plumb_profile_versions
    ADD COLUMN fit_id  text,
    ADD COLUMN summary bytea;
CREATE UNIQUE INDEX plumb_profile_versions_fit_id
    ON plumb_profile_versions (name, fit_id) WHERE fit_id IS NOT NULL;

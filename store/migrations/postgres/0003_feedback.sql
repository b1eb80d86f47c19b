-- plumb's profile store, version 3: outcomes fed back by receipt.
-- id: the receipt's id (an outcome counts once); seq orders a profile's outcomes as they came;
-- data: a protobuf-encoded plumb.v1.Outcome.
CREATE TABLE plumb_feedback (
    id       text        PRIMARY KEY,
    profile  text        NOT NULL,
    received timestamptz NOT NULL,
    seq      bigserial   NOT NULL,
    data     bytea       NOT NULL
);
CREATE INDEX plumb_feedback_profile ON plumb_feedback (profile, seq);
CREATE INDEX plumb_feedback_received ON plumb_feedback (received);

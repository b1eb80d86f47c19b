-- plumb's profile store, version 4: adaptive conformal inference's thresholds, one per profile
-- version × segment, moved by the outcomes fed back (an UPSERT a batch: the row's lock makes
-- the replicas' updates one at a time).
CREATE TABLE plumb_aci (
    profile text             NOT NULL,
    version bigint           NOT NULL,
    segment text             NOT NULL,
    q       double precision NOT NULL,
    PRIMARY KEY (profile, version, segment)
);

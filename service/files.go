package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// Profiles travel as files: `plumb profiles export` writes the message GetProfile returns
// (version and active included, to say where it came from), as binary protobuf or protojson;
// `plumb profiles import` and the ImportProfile RPC store one as the next version of its name;
// `plumb serve --profile-file` serves a set of them with no store.

// encodeProfile is what a store holds of a profile: its message without the version and active
// fields, which the store keeps itself, in deterministic wire form, so that one profile is the
// same bytes in every store.
func encodeProfile(m *plumbv1.Profile) ([]byte, error) {
	c := proto.CloneOf(m)
	c.Version, c.Active = 0, false
	return proto.MarshalOptions{Deterministic: true}.Marshal(c)
}

// summaryOf encodes what a listing shows of a profile: all but its bulky parts (GetProfile has
// them), so that a listing reads kilobytes where the profiles hold megabytes.
func summaryOf(m *plumbv1.Profile) ([]byte, error) {
	c := proto.CloneOf(m)
	c.Version, c.Active = 0, false
	c.Report, c.RiskCurve, c.GroupQuantiles, c.CalibrationScores = nil, nil, nil, nil
	return proto.MarshalOptions{Deterministic: true}.Marshal(c)
}

// DecodeProfileFile reads an exported profile: protojson when it starts with '{', else binary
// protobuf. The profile is checked as the engine would use it.
func DecodeProfileFile(b []byte) (*plumbv1.Profile, error) {
	m := new(plumbv1.Profile)
	var err error
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		err = protojson.Unmarshal(t, m)
	} else {
		err = proto.Unmarshal(b, m)
	}
	if err != nil {
		return nil, fmt.Errorf("not an exported plumb profile (protobuf or protojson plumb.v1.Profile): %w", err)
	}
	if err := checkProfile(m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkProfile refuses a profile the engine cannot use, naming the field.
func checkProfile(m *plumbv1.Profile) error {
	if err := requireName("profile.name", m.GetName()); err != nil {
		return err
	}
	if !m.GetCalibrated() {
		return &calibrate.Error{Kind: calibrate.InvalidInput, Field: "profile.calibrated", Msg: "the built-in default is not a profile to store"}
	}
	p, err := api.Profile(m)
	if err == nil {
		err = p.Check()
	}
	return calibrate.Within("profile.", err)
}

// ExportProfile returns a stored version (0: the active one) as `plumb profiles export` writes
// it: the whole message, report and risk curve included.
func (s *Service) ExportProfile(ctx context.Context, name string, version int64) (*plumbv1.Profile, error) {
	if err := requireName("name", name); err != nil {
		return nil, err
	}
	rec, err := s.store.Get(ctx, name, version)
	if err != nil {
		return nil, fault(s.explain(ctx, name, version, err))
	}
	return profileMessage(rec, true)
}

// ImportProfile stores an exported profile as the next version of its name (or r.name).
func (s *Service) ImportProfile(ctx context.Context, r *plumbv1.ImportProfileRequest) (*plumbv1.ImportProfileResponse, error) {
	m := r.GetProfile()
	if m == nil {
		return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "profile", Msg: "a profile is required"}
	}
	if r.GetName() != "" {
		m = proto.CloneOf(m)
		m.Name = r.GetName()
	}
	if err := checkProfile(m); err != nil {
		return nil, err
	}
	data, err := encodeProfile(m)
	if err != nil {
		return nil, err
	}
	if len(data) > MaxProfileBytes {
		return nil, &calibrate.Error{Kind: calibrate.Exhausted, Field: "profile",
			Msg: fmt.Sprintf("%d bytes encoded, at most %d (a fitted profile takes kilobytes)", len(data), MaxProfileBytes)}
	}
	o := store.PutOptions{}
	if r.GetActivate() {
		o.Activation = store.Activate
	}
	if o.Summary, err = summaryOf(m); err != nil {
		return nil, err
	}
	rec, err := s.store.Put(ctx, m.GetName(), data, o)
	if err != nil {
		return nil, fault(err)
	}
	s.changed(store.Change{Name: m.GetName()})
	out, err := profileMessage(rec, false)
	if err != nil {
		return nil, err
	}
	return &plumbv1.ImportProfileResponse{Profile: out}, nil
}

// A profile's size limits: its binary encoding as stored, and a profile file (protojson takes
// more room than binary). A fit writes a few kilobytes, more with many Mondrian groups.
const (
	MaxProfileBytes     = 8 << 20
	MaxProfileFileBytes = 4 * MaxProfileBytes
)

// ReadProfileFile reads an exported profile file, refusing one larger than MaxProfileFileBytes
// before it is read whole.
func ReadProfileFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxProfileFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxProfileFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a profile plumb exported", path, MaxProfileFileBytes)
	}
	return b, nil
}

// ReadProfileFiles reads exported profiles into a read-only store for `plumb serve
// --profile-file`. Each keeps its version (1 when it has none); a name's active version is the
// one exported as active, else its highest. Errors name the file.
func ReadProfileFiles(paths []string) (*store.ReadOnly, error) {
	var recs []store.Record
	for _, p := range paths {
		b, err := ReadProfileFile(p)
		if err != nil {
			return nil, err
		}
		m, err := DecodeProfileFile(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, api.Described(err))
		}
		data, err := encodeProfile(m)
		if err != nil {
			return nil, err
		}
		rec := store.Record{Name: m.GetName(), Version: max(m.GetVersion(), 1), Active: m.GetActive(), Data: data,
			Created: m.GetCreateTime().AsTime()}
		recs = append(recs, rec)
	}
	ro, err := store.NewReadOnly(recs)
	if err != nil {
		return nil, fmt.Errorf("--profile-file: %w", err)
	}
	return ro, nil
}

package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// profileMessage decodes a stored version, without its report and risk curve unless full.
func profileMessage(rec store.Record, full bool) (*plumbv1.Profile, error) {
	m, err := decodeProfile(rec)
	if err != nil {
		return nil, err
	}
	if !full {
		// The bulky parts: a listing of many versions stays small (GetProfile has them).
		m.Report, m.RiskCurve, m.GroupQuantiles = nil, nil, nil
	}
	if pr := m.GetReport().GetProfile(); pr != nil {
		pr.Version = rec.Version // stored before the version was known
	}
	return m, nil
}

// GetProfile returns one stored version (0: active); "default" without a stored profile is the
// built-in one.
func (s *Service) GetProfile(ctx context.Context, r *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error) {
	if err := checkName("name", r.GetName()); err != nil {
		return nil, err
	}
	name := r.GetName()
	if name == "" {
		name = DefaultProfile
	}
	rec, err := s.store.Get(ctx, name, r.GetVersion())
	if errors.Is(err, store.ErrNotFound) && name == DefaultProfile && r.GetVersion() == 0 {
		m := api.ProfileMessage(calibrate.Default(), nil)
		m.Active = true
		return &plumbv1.GetProfileResponse{Profile: m}, nil
	}
	if err != nil {
		return nil, fault(s.explain(ctx, name, r.GetVersion(), err))
	}
	m, err := profileMessage(rec, true)
	if err != nil {
		return nil, err
	}
	return &plumbv1.GetProfileResponse{Profile: m}, nil
}

// Listing pages: the default and largest page_size of ListProfiles.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// ListProfiles lists a page of stored versions without reports and curves.
func (s *Service) ListProfiles(ctx context.Context, r *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
	if err := checkName("name", r.GetName()); err != nil {
		return nil, err
	}
	size := int(r.GetPageSize())
	switch {
	case size < 0 || size > MaxPageSize:
		return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "page_size", Msg: fmt.Sprintf("%d: want 0 (the default, %d) to %d", size, DefaultPageSize, MaxPageSize)}
	case size == 0:
		size = DefaultPageSize
	}
	page := store.Page{Name: r.GetName(), Limit: size + 1} // one more, to know whether a next page exists
	if t := r.GetPageToken(); t != "" {
		var err error
		if page.AfterName, page.AfterVersion, err = readPageToken(t); err != nil || r.GetName() != "" && page.AfterName != r.GetName() {
			return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "page_token", Msg: "not a next_page_token of this listing: give the one the previous page returned, or none for the first page"}
		}
	}
	recs, err := s.store.List(ctx, page)
	if err != nil {
		return nil, fault(err)
	}
	out := &plumbv1.ListProfilesResponse{}
	if len(recs) > size {
		recs = recs[:size]
		last := recs[size-1]
		out.NextPageToken = pageToken(last.Name, last.Version)
	}
	for _, rec := range recs {
		err := rec.Err
		var m *plumbv1.Profile
		if err == nil {
			m, err = profileMessage(rec, false)
		}
		if err != nil {
			// One damaged version fails alone: the listing names it beside the others.
			m = &plumbv1.Profile{Name: rec.Name, Version: rec.Version, Error: "cannot be read: the stored record is damaged"}
		}
		out.Profiles = append(out.Profiles, m)
	}
	return out, nil
}

// pageToken is the opaque token of the listing's position after name@version.
func pageToken(name string, version int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d/%s", version, name))
}

func readPageToken(t string) (name string, version int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return "", 0, err
	}
	v, n, ok := strings.Cut(string(b), "/")
	if !ok {
		return "", 0, errors.New("no version")
	}
	if version, err = strconv.ParseInt(v, 10, 64); err != nil || version < 0 {
		return "", 0, errors.New("bad version")
	}
	return n, version, store.CheckName(n)
}

// ActivateProfile makes a version active.
func (s *Service) ActivateProfile(ctx context.Context, r *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error) {
	if err := requireName("name", r.GetName()); err != nil {
		return nil, err
	}
	if r.GetVersion() <= 0 {
		return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "version", Msg: "a version ≥ 1 is required"}
	}
	rec, err := s.store.Activate(ctx, r.GetName(), r.GetVersion())
	if err != nil {
		return nil, fault(s.explain(ctx, r.GetName(), r.GetVersion(), err))
	}
	s.changed(store.Change{Name: r.GetName()})
	m, err := profileMessage(rec, false)
	if err != nil {
		return nil, err
	}
	return &plumbv1.ActivateProfileResponse{Profile: m}, nil
}

// DeleteProfile deletes a version or a whole name.
func (s *Service) DeleteProfile(ctx context.Context, r *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error) {
	if err := requireName("name", r.GetName()); err != nil {
		return nil, err
	}
	n, err := s.store.Delete(ctx, r.GetName(), r.GetVersion())
	if err != nil {
		return nil, fault(s.explain(ctx, r.GetName(), r.GetVersion(), err))
	}
	s.deleted(r.GetName(), r.GetVersion())
	return &plumbv1.DeleteProfileResponse{Deleted: int32(n)}, nil
}

package service

import (
	"context"
	"errors"

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

// ListProfiles lists stored versions without reports and curves.
func (s *Service) ListProfiles(ctx context.Context, r *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
	if err := checkName("name", r.GetName()); err != nil {
		return nil, err
	}
	recs, err := s.store.List(ctx, r.GetName())
	if err != nil {
		return nil, fault(err)
	}
	out := &plumbv1.ListProfilesResponse{}
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

package service

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// twoOptions is a question of one wording with two options.
func twoOptions() calibrate.Question {
	return calibrate.Question{Paraphrases: []calibrate.Paraphrase{{Options: []calibrate.Option{{Label: "A", Logprob: -0.1}, {Label: "B", Logprob: -2.4}}}}}
}

// openStore opens a bbolt store in the test's directory, closed when the test ends.
func openStore(t *testing.T) *store.Bolt {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "plumb.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDamagedProfile: a stored version that does not decode fails alone: GetProfile and Score
// on it are DataLoss, ListProfiles lists it (with its error) beside the sound ones, and the
// sound ones score.
func TestDamagedProfile(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	svc := New(st)
	p := calibrate.Default()
	p.Name, p.Calibrated = "good", true
	data, err := protoMarshal(api.ProfileMessage(p, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "good", data, store.PutOptions{Activation: store.Activate}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "bad", []byte{0xff, 0xff, 0xff, 0x0f}, store.PutOptions{Activation: store.Activate}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: "bad"}); status.Code(api.FaultOf(err).Status()) != codes.DataLoss {
		t.Fatalf("GetProfile of the damaged version: %v, want DataLoss", err)
	}
	req := twoOptions()
	req.Profile = "bad"
	if _, err := svc.Score(ctx, &req); status.Code(api.FaultOf(err).Status()) != codes.DataLoss {
		t.Fatalf("Score on the damaged version: %v, want DataLoss", err)
	}
	req.Profile = "good"
	if _, err := svc.Score(ctx, &req); err != nil {
		t.Fatalf("Score on a sound version: %v", err)
	}
	list, err := svc.ListProfiles(ctx, &plumbv1.ListProfilesRequest{})
	if err != nil || len(list.GetProfiles()) != 2 {
		t.Fatalf("ListProfiles: %v, %v", list, err)
	}
	bad, good := list.GetProfiles()[0], list.GetProfiles()[1]
	if bad.GetName() != "bad" || !strings.Contains(bad.GetError(), "damaged") || good.GetError() != "" || !good.GetCalibrated() {
		t.Fatalf("ListProfiles: %v", list)
	}
}

func protoMarshal(m *plumbv1.Profile) ([]byte, error) { return proto.Marshal(m) }

// slowGet is a real store whose Get of one name waits, after reading, until released: the
// window in which a deletion can land while a Score reads a version.
type slowGet struct {
	store.Store
	name     string
	read     chan struct{}
	released chan struct{}
}

func (s *slowGet) Get(ctx context.Context, name string, version int64) (store.Record, error) {
	rec, err := s.Store.Get(ctx, name, version)
	if name == s.name {
		s.read <- struct{}{}
		<-s.released
	}
	return rec, err
}

// TestDeletedWhileRead: a version deleted while a Score was reading it from the store does not
// come back into the profile cache: that Score and the next are NotFound.
func TestDeletedWhileRead(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	p := calibrate.Default()
	p.Name, p.Calibrated = "p", true
	data, _ := protoMarshal(api.ProfileMessage(p, nil))
	for range 2 {
		if _, err := st.Put(ctx, "p", data, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	slow := &slowGet{Store: st, name: "p", read: make(chan struct{}), released: make(chan struct{})}
	svc := New(slow)
	done := make(chan error)
	go func() {
		_, err := svc.Profile(ctx, "p", 2)
		done <- err
	}()
	<-slow.read
	slow.name = "" // the deletion's own reads pass
	if _, err := svc.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: "p", Version: 2}); err != nil {
		t.Fatal(err)
	}
	close(slow.released)
	// The read that raced the deletion reads again, since the name changed meanwhile, and finds
	// the version gone.
	if err := <-done; status.Code(api.FaultOf(err).Status()) != codes.NotFound {
		t.Fatalf("the read that raced the deletion: %v, want NotFound", err)
	}
	if _, err := svc.Profile(ctx, "p", 2); status.Code(api.FaultOf(err).Status()) != codes.NotFound {
		t.Fatalf("after the deletion: %v, want NotFound (the deleted version cached)", err)
	}
}

// TestLongNames: a profile name no profile can have (here 1 MB long) is InvalidArgument on
// every call that takes one, naming the field, and the message quotes at most 64 bytes of it
// (a NotFound used to echo the whole name back).
func TestLongNames(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	svc := New(st)
	long := strings.Repeat("n", 1<<20)
	q := twoOptions()
	q.Profile = long
	for _, tc := range []struct {
		name, field string
		call        func() error
	}{
		{"Score", "profile", func() error { _, err := svc.Score(ctx, &q); return err }},
		{"GetProfile", "name", func() error { _, err := svc.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: long}); return err }},
		{"ListProfiles", "name", func() error { _, err := svc.ListProfiles(ctx, &plumbv1.ListProfilesRequest{Name: long}); return err }},
		{"ActivateProfile", "name", func() error {
			_, err := svc.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: long, Version: 1})
			return err
		}},
		{"DeleteProfile", "name", func() error { _, err := svc.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: long}); return err }},
		{"Evaluate", "config.profile", func() error {
			_, err := svc.NewEvaluation(ctx, &plumbv1.EvaluateConfig{Profile: long})
			return err
		}},
		{"Fit", "config.name", func() error { _, err := svc.NewFitting(ctx, &plumbv1.FitConfig{Name: long}, nil); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := status.FromError(api.FaultOf(tc.call()).Status())
			if st.Code() != codes.InvalidArgument || len(st.Message()) > 300 {
				t.Fatalf("%v, %d bytes: want InvalidArgument, short", st.Code(), len(st.Message()))
			}
			if api.ItemError(st.Err()).GetField() != tc.field {
				t.Fatalf("field %q, want %q", api.ItemError(st.Err()).GetField(), tc.field)
			}
		})
	}
}

// TestImportChecks: an imported profile is checked as the engine would use it, naming the
// field; nothing is stored for a refused one.
func TestImportChecks(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	svc := New(st)
	good := calibrate.Default()
	good.Name, good.Calibrated = "p", true
	for _, tc := range []struct {
		field string
		bad   func(m *plumbv1.Profile)
	}{
		{"profile.alpha", func(m *plumbv1.Profile) { m.Alpha = 1.5 }},
		{"profile.temperature", func(m *plumbv1.Profile) { m.Temperature = []float64{0, 1, 2} }},
		{"profile.confidence_map", func(m *plumbv1.Profile) { m.ConfidenceMap = []float64{math.NaN(), 1} }},
		{"profile.lambda", func(m *plumbv1.Profile) { m.Lambda = -0.1 }},
		{"profile.quantile", func(m *plumbv1.Profile) { m.Quantile = math.NaN() }},
		{"profile.risk_curve[0]", func(m *plumbv1.Profile) {
			m.RiskCurve = []*plumbv1.RiskPoint{{Lambda: 0.5, Answered: 3, Errors: 4}}
		}},
		{"profile.name", func(m *plumbv1.Profile) { m.Name = "" }},
		{"profile.calibrated", func(m *plumbv1.Profile) { m.Calibrated = false }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			m := api.ProfileMessage(good, nil)
			tc.bad(m)
			_, err := svc.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: m})
			if st, _ := status.FromError(api.FaultOf(err).Status()); st.Code() != codes.InvalidArgument || api.ItemError(err).GetField() != tc.field {
				t.Fatalf("%v, want InvalidArgument on %s", err, tc.field)
			}
		})
	}
	t.Run("size", func(t *testing.T) {
		// 400 000 Mondrian groups: about 10 MB encoded, past MaxProfileBytes.
		m := api.ProfileMessage(good, nil)
		m.GroupQuantiles = map[string]float64{}
		for i := range 400_000 {
			m.GroupQuantiles[fmt.Sprintf("group-%07d", i)] = 0.5
		}
		_, err := svc.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: m})
		if f := api.FaultOf(err); f.Code != codes.ResourceExhausted || f.Field != "profile" {
			t.Fatalf("%v, want ResourceExhausted on profile", err)
		}
		big := filepath.Join(t.TempDir(), "big.json")
		if err := os.WriteFile(big, make([]byte, MaxProfileFileBytes+1), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadProfileFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("a file past MaxProfileFileBytes: %v", err)
		}
	})
	if l, _ := st.List(ctx, store.Page{Name: ""}); len(l) != 0 {
		t.Fatalf("refused imports stored %d versions", len(l))
	}
	resp, err := svc.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: api.ProfileMessage(good, nil), Name: "q"})
	if err != nil || resp.GetProfile().GetName() != "q" || resp.GetProfile().GetVersion() != 1 {
		t.Fatalf("a good import: %v, %v", resp, err)
	}
}

// TestListIsSmall: three versions of 150 000 Mondrian groups each (about 4 MB apiece) list in
// a response of a few hundred bytes a version, where they took their whole size before (five
// such imports pushed ListProfiles past the 16 MiB message limit for every caller); GetProfile
// still returns a version whole.
func TestListIsSmall(t *testing.T) {
	ctx := context.Background()
	svc := New(openStore(t))
	p := calibrate.Default()
	p.Name, p.Calibrated = "big", true
	m := api.ProfileMessage(p, nil)
	m.GroupQuantiles = map[string]float64{}
	for i := range 150_000 {
		m.GroupQuantiles[fmt.Sprintf("group-%07d", i)] = 0.5
	}
	for range 3 {
		if _, err := svc.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: m}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := svc.ListProfiles(ctx, &plumbv1.ListProfilesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n, size := len(list.GetProfiles()), proto.Size(list); n != 3 || size > 3*1024 {
		t.Errorf("ListProfiles: %d versions in %d bytes; want 3 in ≤ 3 KiB (one version is %d bytes)", n, size, proto.Size(m))
	}
	got, err := svc.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: "big", Version: 2})
	if err != nil || len(got.GetProfile().GetGroupQuantiles()) != 150_000 {
		t.Fatalf("GetProfile: %d groups, %v", len(got.GetProfile().GetGroupQuantiles()), err)
	}
}

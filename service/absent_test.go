package service

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
	"google.golang.org/grpc/codes"
)

// countingStore counts the store reads a service makes.
type countingStore struct {
	store.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, name string, version int64) (store.Record, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, name, version)
}

// TestAbsentNamesAreRemembered: 1 000 lookups of an unknown name within absentTTL cost one
// store read, not 1 000, and still say NotFound; so does the built-in default with nothing
// stored; a profile imported under the name is found at once (the import is a change), and
// after absentTTL the store is asked again.
func TestAbsentNamesAreRemembered(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: openStore(t)}
	svc := New(st)
	clock := time.Unix(1_000_000, 0)
	svc.now = func() time.Time { return clock }
	for range 1000 {
		if _, err := svc.Profile(ctx, "nosuch", 0); api.FaultOf(err).Code != codes.NotFound {
			t.Fatalf("unknown name: %v", err)
		}
		if p, err := svc.Profile(ctx, "", 0); err != nil || p.Calibrated {
			t.Fatalf("the built-in default: %v, %v", p, err)
		}
	}
	if n := st.gets.Load(); n != 2 {
		t.Errorf("2 000 lookups read the store %d times, want 2", n)
	}
	good := calibrate.Default()
	good.Name, good.Calibrated = "nosuch", true
	if _, err := svc.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: api.ProfileMessage(good, nil)}); err != nil {
		t.Fatal(err)
	}
	if p, err := svc.Profile(ctx, "nosuch", 0); err != nil || !p.Calibrated {
		t.Fatalf("after the import: %v, %v", p, err)
	}
	before := st.gets.Load()
	clock = clock.Add(absentTTL)
	svc.Profile(ctx, "", 0)
	if st.gets.Load() != before+1 {
		t.Errorf("after absentTTL the default was not read again")
	}
}

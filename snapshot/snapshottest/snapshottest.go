// Package snapshottest is a conformance suite for snapshot.Store
// implementations: snapshottest.Run(t, newStore) checks that a store keeps
// the latest snapshot of each stream with the semantics the aggregate
// repository relies on.
package snapshottest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/snapshot"
)

// Run runs the suite. newStore returns an empty store; it is called once
// per subtest.
func Run(t *testing.T, newStore func(t *testing.T) snapshot.Store) {
	t.Helper()
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return c
	}
	mustSave := func(t *testing.T, s snapshot.Store, snap snapshot.Snapshot) {
		t.Helper()
		if err := s.Save(ctx(t), snap); err != nil {
			t.Fatalf("Save(%s v%d r%d): %v", snap.StreamID, snap.Version, snap.Revision, err)
		}
	}
	load := func(t *testing.T, s snapshot.Store, stream string) snapshot.Snapshot {
		t.Helper()
		got, err := s.Load(ctx(t), stream)
		if err != nil {
			t.Fatalf("Load(%s): %v", stream, err)
		}
		return got
	}

	t.Run("missing", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Load(ctx(t), "account-none")
		if !errors.Is(err, snapshot.ErrNotFound) {
			t.Fatalf("Load of a stream without snapshot: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		s := newStore(t)
		at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		mustSave(t, s, snapshot.Snapshot{StreamID: "account-1", Version: 100, Revision: 2, Data: []byte(`{"b":1}`), TakenAt: at})
		got := load(t, s, "account-1")
		if got.StreamID != "account-1" || got.Version != 100 || got.Revision != 2 || !bytes.Equal(got.Data, []byte(`{"b":1}`)) || !got.TakenAt.Equal(at) {
			t.Fatalf("Load = %+v", got)
		}
	})
	t.Run("latest wins, never backwards", func(t *testing.T) {
		s := newStore(t)
		mustSave(t, s, snapshot.Snapshot{StreamID: "a", Version: 100, Revision: 1, Data: []byte("100")})
		mustSave(t, s, snapshot.Snapshot{StreamID: "a", Version: 200, Revision: 1, Data: []byte("200")})
		mustSave(t, s, snapshot.Snapshot{StreamID: "a", Version: 150, Revision: 1, Data: []byte("150")})
		if got := load(t, s, "a"); got.Version != 200 || string(got.Data) != "200" {
			t.Fatalf("after saving 100, 200, 150: Load = v%d %s, want v200", got.Version, got.Data)
		}
		// A new revision replaces whatever is there.
		mustSave(t, s, snapshot.Snapshot{StreamID: "a", Version: 120, Revision: 2, Data: []byte("r2")})
		if got := load(t, s, "a"); got.Version != 120 || got.Revision != 2 {
			t.Fatalf("after a new revision: Load = v%d r%d, want v120 r2", got.Version, got.Revision)
		}
		if _, err := s.Load(ctx(t), "b"); !errors.Is(err, snapshot.ErrNotFound) {
			t.Fatalf("other stream: err = %v", err)
		}
	})
	t.Run("rejects invalid", func(t *testing.T) {
		s := newStore(t)
		badIDs := map[string]string{
			"empty stream ID":         "",
			"NUL in stream ID":        "a\x00b",
			"invalid UTF-8 stream ID": "a\xffb",
			"stream ID too long":      strings.Repeat("x", eventstore.MaxStreamIDLength+1),
		}
		for what, id := range badIDs {
			err := s.Save(ctx(t), snapshot.Snapshot{StreamID: id, Version: 1, Revision: 1, Data: []byte(`{}`)})
			if !errors.Is(err, eventstore.ErrInvalidInput) {
				t.Errorf("Save, %s: err = %v, want one matching eventstore.ErrInvalidInput", what, err)
			}
			if what == "empty stream ID" {
				continue
			}
			if _, err := s.Load(ctx(t), id); !errors.Is(err, eventstore.ErrInvalidInput) {
				t.Errorf("Load, %s: err = %v, want one matching eventstore.ErrInvalidInput", what, err)
			}
		}
		for _, v := range []int64{0, -1} {
			err := s.Save(ctx(t), snapshot.Snapshot{StreamID: "x", Version: v, Revision: 1})
			if !errors.Is(err, eventstore.ErrInvalidInput) || !strings.Contains(err.Error(), `"x"`) {
				t.Errorf("Save at version %d: err = %v, want one naming the stream and matching eventstore.ErrInvalidInput", v, err)
			}
		}
		if _, err := s.Load(ctx(t), "x"); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("after refused saves: Load = %v, want ErrNotFound: nothing written", err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := int64(i + 1)
				errs <- s.Save(ctx(t), snapshot.Snapshot{StreamID: "hot", Version: v, Revision: 1, Data: []byte(fmt.Sprint(v))})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := load(t, s, "hot"); got.Version != 40 || string(got.Data) != "40" {
			t.Fatalf("after concurrent saves: Load = v%d %s, want v40", got.Version, got.Data)
		}
	})
}

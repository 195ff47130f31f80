package wire_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// TestBucketMatchesPartitionOf: the relay's bucket of a stream is
// projection.PartitionOf with the bucket count, and a stream's partition
// among n (n dividing the buckets) is its bucket modulo n.
func TestBucketMatchesPartitionOf(t *testing.T) {
	ids := []string{"", "a", "account-42", "order-ünïcode", "x.y*z>", strings.Repeat("long", 100)}
	for i := range 200 {
		ids = append(ids, fmt.Sprintf("stream-%d", i))
	}
	for _, id := range ids {
		for _, b := range []int{1, 2, 16, 64, 1024} {
			got := wire.Bucket(id, b)
			if want := projection.PartitionOf(id, b); got != want {
				t.Fatalf("Bucket(%q, %d) = %d, PartitionOf = %d", id, b, got, want)
			}
			for n := 1; n <= b; n *= 2 {
				if got%n != projection.PartitionOf(id, n) {
					t.Fatalf("stream %q: bucket %d of %d mod %d != partition %d", id, got, b, n, projection.PartitionOf(id, n))
				}
			}
		}
	}
}

func TestTopologyBuckets(t *testing.T) {
	for _, b := range []int{-1, 3, 12, 2048} {
		if err := (wire.Topology{Buckets: b}).Validate(); err == nil {
			t.Errorf("buckets %d: valid, want an error", b)
		}
	}
	for _, b := range []int{0, 1, 2, 64, 1024} {
		if err := (wire.Topology{Buckets: b}).Validate(); err != nil {
			t.Errorf("buckets %d: %v", b, err)
		}
	}
	rec := eventstore.Record{StreamID: "account-42", Type: "Opened"}
	plain := wire.Topology{Stream: "S", SubjectPrefix: "p.events"}
	bucketed := plain
	bucketed.Buckets = 16
	if got := plain.Subject(rec); got != "p.events.account.Opened" {
		t.Errorf("subject without buckets: %s", got)
	}
	want := fmt.Sprintf("p.events.%d.account.Opened", projection.PartitionOf("account-42", 16))
	if got := bucketed.Subject(rec); got != want {
		t.Errorf("subject with buckets: %s, want %s", got, want)
	}
	if got := bucketed.Encoder(uuid.Nil).Msg(rec).Subject; got != want {
		t.Errorf("encoder's subject: %s, want %s", got, want)
	}
	if got := bucketed.Filter("account", ""); got != "p.events.*.account.*" {
		t.Errorf("filter of every bucket: %s", got)
	}
	if got, _ := bucketed.PartitionBuckets(3, 4); fmt.Sprint(got) != "[3 7 11 15]" {
		t.Errorf("buckets of partition 3 of 4: %v", got)
	}
	if _, err := bucketed.PartitionBuckets(0, 3); err == nil {
		t.Error("3 partitions of 16 buckets: no error")
	}
	if _, err := plain.PartitionBuckets(0, 1); err == nil {
		t.Error("partitions without buckets: no error")
	}
	for _, c := range []struct {
		topo    wire.Topology
		subject string
		ok      bool
	}{
		{plain, "p.events.account.Opened", true},
		{plain, want, false},
		{bucketed, want, true},
		{bucketed, "p.events.account.Opened", false},
		{bucketed, "p.events.16.account.Opened", false},
		{bucketed, "other.subject", true},
	} {
		if err := c.topo.CheckSubject(c.subject); (err == nil) != c.ok {
			t.Errorf("%s: CheckSubject(%s) = %v", c.topo, c.subject, err)
		}
	}
}

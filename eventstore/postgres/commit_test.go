package postgres_test

import (
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
)

// An append whose commit fails (here a deferred constraint trigger that
// refuses stream "boom" at commit) must return an error, not the result
// of an insert that was rolled back.
func TestAppendReportsAFailedCommit(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3} {
		s, pool := newStore(t)
		q := pgmigrate.Quote(s.Schema())
		if _, err := pool.Exec(ctx(t), `CREATE FUNCTION `+q+`.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.stream_id = 'boom' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$;
			CREATE CONSTRAINT TRIGGER refuse_boom AFTER INSERT ON `+q+`.events
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION `+q+`.refuse_boom()`); err != nil {
			t.Fatal(err)
		}
		res, err := s.Append(ctx(t), "boom", eventstore.Any, events(n)...)
		if err == nil {
			t.Fatalf("%d events: Append returned %+v and no error, but the commit failed", n, res)
		}
		info, err := s.StreamInfo(ctx(t), "boom")
		if err != nil || info.Exists {
			t.Fatalf("%d events: StreamInfo = %+v, %v; want no stream", n, info, err)
		}
		// The store still works afterwards.
		mustAppend(t, s, "fine", eventstore.NoStream, events(n)...)
	}
}

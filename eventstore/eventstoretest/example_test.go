package eventstoretest_test

import (
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/eventstoretest"
	"github.com/chronicle-go/chronicle/eventstore/memory"
)

// An implementation of eventstore.Store runs the suite from its own tests,
// handing it a fresh, empty store per subtest. A PostgreSQL store would
// create a schema per call and drop it in t.Cleanup.
func ExampleRun() {
	_ = func(t *testing.T) { // func TestConformance(t *testing.T)
		eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
			return memory.New()
		})
	}
}

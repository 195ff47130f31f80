// Package eventstoretest is the conformance suite every
// [eventstore.Store] implementation must pass.
//
// An implementation's tests call [Run] with a function that returns a fresh,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
//			return memory.New()
//		})
//	}
//
// The suite checks the contracts written on [eventstore.Store]: exact
// optimistic concurrency under contention, idempotent retries, the global
// order of the log, stream and log reads in both directions and in small
// batches, filters, following the log, and that every bad input is refused
// with an [eventstore.ErrInvalidInput] error before anything is written.
//
// It assumes nothing an implementation may do differently: not the values
// of positions beyond their order, not that a committed append is visible
// to [eventstore.Store.ReadAll] at once (a gap-safe log may hold readers
// back while another transaction is open), nor that Follow wakes instantly.
// Reads of the log wait, up to a generous deadline, for the appends they
// expect.
package eventstoretest

import (
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Deadline bounds every wait in the suite: for an append to become visible
// in the global log, for a follower to receive it, for an operation that
// would hang if a store deadlocked or leaked connections.
const Deadline = 10 * time.Second

// Run runs the conformance suite against the stores newStore returns. Every
// subtest runs in parallel with the others and calls newStore once for a
// store of its own, which must be empty. newStore may register cleanups on
// the t it is given.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"Append/NewStream", testAppendNewStream},
		{"Append/Defaults", testAppendDefaults},
		{"Append/DataRoundTrip", testDataRoundTrip},
		{"Append/MetadataRoundTrip", testMetadataRoundTrip},
		{"Append/CopiesData", testCopiesData},
		{"Append/OddStreamIDs", testOddStreamIDs},
		{"Append/CanceledContext", testAppendCanceled},
		{"ExpectedVersion/Matrix", testExpectedVersionMatrix},
		{"ExpectedVersion/ConflictWritesNothing", testConflictWritesNothing},
		{"Contention/SameExpectedVersion", testContentionExact},
		{"Contention/NoStream", testContentionNoStream},
		{"Contention/Any", testContentionAny},
		{"Idempotency/SameRetry", testRetrySame},
		{"Idempotency/RetryAfterOtherWriters", testRetryAfterOthers},
		{"Idempotency/RetryWithAny", testRetryAny},
		{"Idempotency/TailOfEarlierAppend", testRetryTail},
		{"Idempotency/OtherPosition", testRetryOtherPosition},
		{"Idempotency/PartlyNew", testRetryPartlyNew},
		{"Idempotency/IDInOtherStream", testRetryOtherStream},
		{"Idempotency/ConcurrentAttempts", testRetryConcurrent},
		{"Ordering/Sequential", testOrderingSequential},
		{"Ordering/ConcurrentWriters", testOrderingConcurrent},
		{"ReadStream/Options", testReadStreamOptions},
		{"ReadStream/NotFound", testReadStreamNotFound},
		{"ReadStream/LongerThanABatch", testLongStream},
		{"ReadAll/Options", testReadAllOptions},
		{"ReadAll/Filters", testReadAllFilters},
		{"ReadAll/EmptyStore", testReadAllEmpty},
		{"Follow/CatchUpThenLive", testFollowCatchUpThenLive},
		{"Follow/AfterAndFilters", testFollowFiltered},
		{"Follow/EmptyStore", testFollowEmpty},
		{"Follow/CanceledContext", testFollowCanceled},
		{"StreamInfo", testStreamInfo},
		{"Head", testHead},
		{"EarlyStop", testEarlyStop},
		{"AppendWhileIterating", testAppendWhileIterating},
		{"Validation/Append", testValidationAppend},
		{"Validation/Limits", testValidationLimits},
		{"Validation/Reads", testValidationReads},
		{"Validation/NegativeExact", testNegativeExact},
		{"Validation/SchemaVersionRange", testSchemaVersionRange},
		{"Validation/JSONLikeJSONB", testJSONLikeJSONB},
		{"Validation/MaxEventSize", testMaxEventSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			if s == nil {
				t.Fatal("eventstoretest: newStore returned nil")
			}
			tc.fn(t, s)
		})
	}
}

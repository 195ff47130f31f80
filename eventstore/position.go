package eventstore

import (
	"fmt"
	"strconv"
	"strings"
)

// Position is a record's place in the global log. Records are ordered by
// TxID, then Seq. The zero Position is before the first record, so reading
// after it reads the whole log. Both parts are at most math.MaxInt64 in
// every store (PostgreSQL keeps them as bigint); reading after a Position
// beyond that is invalid input.
//
// In PostgreSQL TxID is the ID of the transaction that wrote the record and
// Seq a sequence value; ordering by the pair, and reading only transactions
// that can no longer commit behind the reader, is what keeps readers from
// skipping events that commit out of order. Other stores may use any pair
// that orders their records.
type Position struct {
	// TxID is the ID of the transaction that committed the record.
	TxID uint64
	// Seq is the record's global sequence number, unique in the store.
	Seq uint64
}

// IsZero reports whether p is the zero Position (the start of the log).
func (p Position) IsZero() bool { return p == Position{} }

// Compare returns -1 when p is before q, 0 when they are equal, and +1 when
// p is after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.TxID < q.TxID:
		return -1
	case p.TxID > q.TxID:
		return 1
	case p.Seq < q.Seq:
		return -1
	case p.Seq > q.Seq:
		return 1
	}
	return 0
}

// Before reports whether p comes before q in the global log.
func (p Position) Before(q Position) bool { return p.Compare(q) < 0 }

// String formats p as "TxID/Seq"; [ParsePosition] reads it back.
func (p Position) String() string {
	return strconv.FormatUint(p.TxID, 10) + "/" + strconv.FormatUint(p.Seq, 10)
}

// ParsePosition parses a position written by [Position.String].
func ParsePosition(s string) (Position, error) {
	tx, seq, ok := strings.Cut(s, "/")
	if !ok {
		return Position{}, fmt.Errorf("eventstore: invalid position %q: want TXID/SEQ", s)
	}
	t, err1 := strconv.ParseUint(tx, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, fmt.Errorf("eventstore: invalid position %q: want TXID/SEQ", s)
	}
	return Position{TxID: t, Seq: q}, nil
}

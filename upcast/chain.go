package upcast

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Chain brings records to the current schema versions of a
// [codec.Registry]. Build it with [New] after registering every event type:
// it takes the registry's current versions when it is built. A Chain is
// immutable and safe for concurrent use. A nil *Chain passes records through
// unchanged.
type Chain struct {
	reg     *codec.Registry
	current map[string]int
	ups     map[Key]Upcaster
	never   map[Key]bool // declared with NeverWritten
}

// New builds and checks a chain of upcasters for the registry reg. It
// returns an error, joining every problem found, when two upcasters read
// the same (type, version), an upcaster is malformed or reads a version at
// or above its type's current one, the upcasters form a cycle, an output
// reaches neither the current version of a registered type nor another
// upcaster, or a registered type has a version below its current one that
// no upcaster reads and no [NeverWritten] declares (a hole: records stored
// at it could not be read). New(reg) with no upcasters is valid when every
// registered type is at version 1, and still decodes through
// [Chain.Decode].
func New(reg *codec.Registry, ups ...Upcaster) (*Chain, error) {
	if reg == nil {
		return nil, errors.New("upcast: nil registry")
	}
	c := &Chain{reg: reg, current: map[string]int{}, ups: make(map[Key]Upcaster, len(ups)), never: map[Key]bool{}}
	for _, n := range reg.Names() {
		v, _ := reg.CurrentVersion(n)
		c.current[n] = v
	}
	var errs []error
	for i, u := range ups {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("upcast: upcaster %d (from %s): %s", i, u.From, fmt.Sprintf(format, args...)))
		}
		switch {
		case u.From.Type == "":
			bad("empty event type")
			continue
		case u.From.Version < 1:
			bad("version %d, want 1 or more", u.From.Version)
			continue
		case u.neverWritten:
			c.declareNeverWritten(u.From, &errs)
			continue
		case u.Fn == nil:
			bad("nil Fn")
			continue
		case len(u.To) == 0:
			bad("produces nothing (empty To)")
			continue
		}
		if cur, ok := c.current[u.From.Type]; ok && u.From.Version >= cur {
			bad("reads version %d, but the current version of %q is %d: upcasters read older versions only",
				u.From.Version, u.From.Type, cur)
			continue
		}
		okTo := true
		for _, k := range u.To {
			if k.Type == "" || k.Version < 1 {
				bad("output %s is not a valid type and version", k)
				okTo = false
			}
		}
		if !okTo {
			continue
		}
		if _, dup := c.ups[u.From]; dup {
			bad("a second upcaster reads %s", u.From)
			continue
		}
		c.ups[u.From] = u
	}
	for k := range c.never {
		if _, ok := c.ups[k]; ok {
			errs = append(errs, fmt.Errorf("upcast: %s is declared NeverWritten and also has an upcaster: drop one", k))
		}
	}
	// Every path from every upcaster must end at current versions, with no
	// cycle: a depth-first walk with colours.
	const (
		visiting = 1
		done     = 2
	)
	state := map[Key]int{}
	dangling := map[Key]bool{} // outputs reported as going nowhere
	var walk func(k Key, via Key) error
	walk = func(k Key, via Key) error {
		if cur, ok := c.current[k.Type]; ok && cur == k.Version {
			return nil
		}
		u, ok := c.ups[k]
		if !ok {
			cur, registered := c.current[k.Type]
			switch {
			case !registered:
				return fmt.Errorf("upcast: %s, produced by the upcaster from %s, goes nowhere: %q is not registered and no upcaster reads it", k, via, k.Type)
			case k.Version > cur:
				return fmt.Errorf("upcast: %s, produced by the upcaster from %s, is newer than the current version %d of %q", k, via, cur, k.Type)
			case c.never[k]:
				return fmt.Errorf("upcast: %s, produced by the upcaster from %s, goes nowhere: it is declared NeverWritten and no upcaster reads it", k, via)
			default:
				dangling[k] = true
				return fmt.Errorf("upcast: %s, produced by the upcaster from %s, goes nowhere: the current version of %q is %d and no upcaster reads version %d (a hole in the chain)",
					k, via, k.Type, cur, k.Version)
			}
		}
		switch state[k] {
		case visiting:
			return fmt.Errorf("upcast: the upcasters form a cycle through %s", k)
		case done:
			return nil
		}
		state[k] = visiting
		for _, out := range u.To {
			if err := walk(out, k); err != nil {
				return err
			}
		}
		state[k] = done
		return nil
	}
	for k := range c.ups {
		if state[k] == 0 {
			if err := walk(k, k); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// No holes: every version below a registered type's current one is
	// read by an upcaster or declared never written.
	for _, name := range reg.Names() {
		var missing []string
		for v := 1; v < c.current[name]; v++ {
			k := Key{name, v}
			if _, ok := c.ups[k]; !ok && !c.never[k] && !dangling[k] {
				missing = append(missing, "v"+strconv.Itoa(v))
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("upcast: %q is at version %d but no upcaster reads %s (a hole in the chain: records stored there could not be read); add an upcaster from each, or declare a version that was never stored with upcast.NeverWritten(%q, version)",
				name, c.current[name], strings.Join(missing, ", "), name))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// declareNeverWritten records a NeverWritten declaration of k, appending
// to errs what is wrong with it.
func (c *Chain) declareNeverWritten(k Key, errs *[]error) {
	cur, ok := c.current[k.Type]
	switch {
	case !ok:
		*errs = append(*errs, fmt.Errorf("upcast: NeverWritten(%q, %d): %q is not registered", k.Type, k.Version, k.Type))
	case k.Version >= cur:
		*errs = append(*errs, fmt.Errorf("upcast: NeverWritten(%q, %d): the current version of %q is %d; only older versions can be declared",
			k.Type, k.Version, k.Type, cur))
	case c.never[k]:
		*errs = append(*errs, fmt.Errorf("upcast: NeverWritten(%q, %d) is declared twice", k.Type, k.Version))
	default:
		c.never[k] = true
	}
}

// Registry returns the chain's registry.
func (c *Chain) Registry() *codec.Registry {
	if c == nil {
		return nil
	}
	return c.reg
}

// Upcast returns rec brought to the current schema versions: rec itself
// when it is current (or of a type the chain knows nothing about, left to
// the decoder to report), otherwise the record or records the upcasters
// produce. A record at a version no upcaster reads fails with an error
// matching [ErrNoPath] that names its type, version, stream and stream
// version. A nil *Chain returns rec unchanged.
func (c *Chain) Upcast(rec eventstore.Record) ([]eventstore.Record, error) {
	if c == nil {
		return []eventstore.Record{rec}, nil
	}
	if cur, ok := c.current[rec.Type]; ok && cur == rec.SchemaVersion {
		return []eventstore.Record{rec}, nil
	}
	if _, ok := c.ups[Key{rec.Type, rec.SchemaVersion}]; !ok {
		if _, known := c.current[rec.Type]; !known {
			return []eventstore.Record{rec}, nil
		}
	}
	return c.upcast(rec, nil, 0)
}

// NeedsUpcast reports whether rec is not at its type's current version, so
// that [Chain.Upcast] would do work. Hot read loops use it to skip the
// slice Upcast returns. A nil *Chain needs nothing.
func (c *Chain) NeedsUpcast(rec eventstore.Record) bool {
	if c == nil {
		return false
	}
	cur, ok := c.current[rec.Type]
	if ok {
		return cur != rec.SchemaVersion
	}
	_, has := c.ups[Key{rec.Type, rec.SchemaVersion}]
	return has
}

func (c *Chain) upcast(rec eventstore.Record, out []eventstore.Record, depth int) ([]eventstore.Record, error) {
	if cur, ok := c.current[rec.Type]; ok && cur == rec.SchemaVersion {
		return append(out, rec), nil
	}
	k := Key{rec.Type, rec.SchemaVersion}
	u, ok := c.ups[k]
	if !ok {
		return nil, c.noPath(rec)
	}
	if depth > len(c.ups) {
		return nil, fmt.Errorf("upcast: event %s at version %d of stream %q: chain too deep", k, rec.StreamVersion, rec.StreamID)
	}
	datas, err := u.Fn(rec)
	if err != nil {
		return nil, fmt.Errorf("upcast: event %s at version %d of stream %q: %w", k, rec.StreamVersion, rec.StreamID, err)
	}
	if len(datas) != len(u.To) {
		return nil, fmt.Errorf("upcast: event %s at version %d of stream %q: the upcaster returned %d payloads for %d outputs",
			k, rec.StreamVersion, rec.StreamID, len(datas), len(u.To))
	}
	for i, to := range u.To {
		r := rec
		r.Type, r.SchemaVersion, r.Data = to.Type, to.Version, datas[i]
		if i > 0 {
			r.ID = uuid.NewSHA1(rec.ID, []byte("chronicle/upcast/split/"+strconv.Itoa(i)))
		}
		if out, err = c.upcast(r, out, depth+1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *Chain) noPath(rec eventstore.Record) error {
	cur, ok := c.current[rec.Type]
	why := fmt.Sprintf("%q is not registered", rec.Type)
	if ok {
		why = fmt.Sprintf("the current version is %d", cur)
		switch {
		case rec.SchemaVersion > cur:
			why += " (the event was written by newer code)"
		case c.never[Key{rec.Type, rec.SchemaVersion}]:
			why += fmt.Sprintf(", v%d is declared NeverWritten but this record has it,", rec.SchemaVersion)
		}
	}
	return fmt.Errorf("%w: event %q v%d at version %d of stream %q (id %s): %s and no upcaster reads v%d",
		ErrNoPath, rec.Type, rec.SchemaVersion, rec.StreamVersion, rec.StreamID, rec.ID, why, rec.SchemaVersion)
}

// Encode encodes the event value v with the chain's registry, at its
// type's current schema version, like [codec.Registry.Encode]. With it and
// [Chain.DecodeRecord] a chain is what an aggregate repository needs to
// write and read events, so the registry and the upcasters it is given
// cannot disagree.
func (c *Chain) Encode(v any) (name string, schemaVersion int, data []byte, err error) {
	if c == nil {
		return "", 0, nil, errNilChain("Encode")
	}
	return c.reg.Encode(v)
}

// DecodeRecord upcasts rec and decodes it into one value of a registered
// type. A record that the upcasters split into several events is an error
// naming it: read those with [Chain.Decode], or upcast first with
// [Chain.Upcast] and decode each result, as an aggregate repository does.
func (c *Chain) DecodeRecord(rec eventstore.Record) (any, error) {
	if c == nil {
		return nil, errNilChain("DecodeRecord")
	}
	if !c.NeedsUpcast(rec) {
		return c.reg.DecodeRecord(rec)
	}
	recs, err := c.Upcast(rec)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("upcast: event %q v%d at version %d of stream %q is split into %d events; DecodeRecord returns one, use Decode",
			rec.Type, rec.SchemaVersion, rec.StreamVersion, rec.StreamID, len(recs))
	}
	return c.reg.DecodeRecord(recs[0])
}

func errNilChain(method string) error {
	return fmt.Errorf("upcast: %s on a nil *Chain: build one with upcast.New(registry)", method)
}

// Decoded is a record brought to its current version and its decoded
// value.
type Decoded struct {
	Record eventstore.Record
	Value  any
}

// Decode upcasts rec and decodes each resulting record with the chain's
// registry, returning the event values (of the registered value types) in
// order. It is what projections and tools use to read stored events.
func (c *Chain) Decode(rec eventstore.Record) ([]any, error) {
	if c == nil {
		return nil, errNilChain("Decode")
	}
	if !c.NeedsUpcast(rec) {
		v, err := c.reg.DecodeRecord(rec)
		if err != nil {
			return nil, err
		}
		return []any{v}, nil
	}
	recs, err := c.Upcast(rec)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(recs))
	for i, r := range recs {
		if out[i], err = c.reg.DecodeRecord(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DecodeRecords is like [Chain.Decode] but also returns the upcast records,
// for callers that need each value's type, ID and metadata.
func (c *Chain) DecodeRecords(rec eventstore.Record) ([]Decoded, error) {
	if c == nil {
		return nil, errNilChain("DecodeRecords")
	}
	recs, err := c.Upcast(rec)
	if err != nil {
		return nil, err
	}
	out := make([]Decoded, len(recs))
	for i, r := range recs {
		v, err := c.reg.DecodeRecord(r)
		if err != nil {
			return nil, err
		}
		out[i] = Decoded{Record: r, Value: v}
	}
	return out, nil
}

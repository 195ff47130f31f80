package aggregate

// Root holds what every aggregate has: its ID, its version (the stream
// version of the last event applied from the store) and the events raised
// since it was loaded. Embed it in an aggregate struct; use the aggregate
// through a pointer.
type Root struct {
	id          string
	version     int64
	uncommitted []any
}

// ID returns the aggregate's ID, as given to the repository (without the
// stream category prefix).
func (r *Root) ID() string { return r.id }

// Version returns the stream version of the last stored event applied: 0
// for an aggregate never saved. Raised but unsaved events do not count.
func (r *Root) Version() int64 { return r.version }

// Uncommitted returns the events raised since the aggregate was loaded or
// last saved, oldest first. The slice must not be changed.
func (r *Root) Uncommitted() []any { return r.uncommitted }

func (r *Root) root() *Root { return r }

// Aggregate is what a repository keeps: a type that embeds [Root] (through
// a pointer, such as *Account) and applies events. Apply receives event
// values of the registered types and must only change state.
type Aggregate interface {
	Apply(event any)
	ID() string
	Version() int64
	Uncommitted() []any
	root() *Root
}

// Revisioner is implemented by aggregates that declare the revision of
// their state's shape for snapshots. Bump the revision whenever a change
// would make an older snapshot decode into the wrong state; snapshots of
// another revision are then ignored. Aggregates without the method are at
// revision 1.
type Revisioner interface {
	SnapshotRevision() int
}

// Raise applies event to a and records it as uncommitted, to be appended by
// the next save. Commands call it once they have checked that the event may
// happen.
func Raise(a Aggregate, event any) {
	a.Apply(event)
	r := a.root()
	r.uncommitted = append(r.uncommitted, event)
}

// Replay applies events that are already stored to a, advancing its
// version by one per event. Repositories do this when loading; test helpers
// and custom stores may call it too.
func Replay(a Aggregate, events ...any) {
	r := a.root()
	for _, e := range events {
		a.Apply(e)
		r.version++
	}
}

// SetID sets the ID of a new aggregate. Repositories set it on the value
// the constructor returns; call it only on a fresh aggregate.
func SetID(a Aggregate, id string) { a.root().id = id }

// ClearUncommitted forgets a's uncommitted events and sets its version to
// version, as after a successful save. Repositories call it; custom stores
// and test helpers may.
func ClearUncommitted(a Aggregate, version int64) {
	r := a.root()
	r.uncommitted = nil
	r.version = version
}

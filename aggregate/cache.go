package aggregate

import (
	"encoding/json"
	"sync"
)

// stateCache keeps the encoded state of recently saved aggregates by
// stream ID. Entries are hints: every use is checked by the store (a read
// from the cached version, or an append expecting it).
type stateCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]cached
}

type cached struct {
	version int64
	data    []byte
}

func newStateCache(max int) *stateCache {
	if max <= 0 {
		return nil
	}
	return &stateCache{max: max, entries: make(map[string]cached, min(max, 1024))}
}

func (c *stateCache) get(stream string) (cached, bool) {
	if c == nil {
		return cached{}, false
	}
	c.mu.Lock()
	e, ok := c.entries[stream]
	c.mu.Unlock()
	return e, ok
}

func (c *stateCache) put(stream string, version int64, data []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[stream]; ok && old.version > version {
		return
	}
	if _, ok := c.entries[stream]; !ok && len(c.entries) >= c.max {
		for k := range c.entries { // evict an arbitrary entry
			delete(c.entries, k)
			break
		}
	}
	c.entries[stream] = cached{version: version, data: data}
}

func (c *stateCache) drop(stream string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.entries, stream)
	c.mu.Unlock()
}

// fromCache decodes the cached state of stream into a fresh aggregate.
func (r *Repository[T]) fromCache(stream, id string) (T, bool) {
	var zero T
	e, ok := r.cache.get(stream)
	if !ok {
		return zero, false
	}
	a, err := r.fresh(id)
	if err != nil {
		return zero, false
	}
	if err := json.Unmarshal(e.data, a); err != nil {
		r.cache.drop(stream)
		return zero, false
	}
	a.root().version = e.version
	return a, true
}

// recache stores a's state, at its version, in the cache.
func (r *Repository[T]) recache(stream string, a T) {
	data, err := json.Marshal(a)
	if err != nil {
		r.cache.drop(stream)
		return
	}
	r.cache.put(stream, a.root().version, data)
}

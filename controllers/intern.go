package controllers

// Interning: the agent's cache shares equal values between its objects (see sharing in cache.go).
// Every agent caches every pod of the cluster, and tens of thousands of pods repeat a few hundred namespace names, node
// names, label sets and port lists: decoded from the API server, each pod has copies of its own.
//
// The tables are bounded: once one holds its limit it starts over, so a cluster whose values never
// repeat (a label unique to each pod) costs at most the limit, never a table that grows with every pod
// ever seen. Values stored before a reset stay shared by the objects that hold them.
//
// Go's unique package is not used: it frees its canonical copy of a string as soon as no unique.Handle
// is alive, and the objects of the cache can only hold the plain string, so the sharing would be lost
// at every garbage collection.

import (
	"encoding/binary"
	"maps"
	"slices"
	"sync"
)

// internPool shares values of one type by key: the first value stored under a key is returned for every
// later equal key, until the pool starts over. It is safe for concurrent use.
type internPool[V any] struct {
	mu     sync.Mutex
	limit  int
	values map[string]V
}

// newInternPool returns a pool of at most limit keys.
func newInternPool[V any](limit int) *internPool[V] {
	return &internPool[V]{limit: max(limit, 1), values: map[string]V{}}
}

// Get returns the value stored under key, storing build() under it first when there is none. key is
// only read: a lookup does not allocate.
func (p *internPool[V]) Get(key []byte, build func() V) V {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.values[string(key)]; ok {
		return v
	}
	return p.store(string(key), build())
}

// GetString is Get with a string key.
func (p *internPool[V]) GetString(key string, build func() V) V {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.values[key]; ok {
		return v
	}
	return p.store(key, build())
}

func (p *internPool[V]) store(key string, v V) V {
	if len(p.values) >= p.limit {
		clear(p.values)
	}
	p.values[key] = v
	return v
}

// Len is the number of keys stored since the pool last started over.
func (p *internPool[V]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.values)
}

// internTable shares strings and label maps. It is safe for concurrent use.
type internTable struct {
	strings *internPool[string]
	labels  *internPool[map[string]string]
	// keyMu guards key, the scratch space for the key of a label set.
	keyMu sync.Mutex
	key   labelKey
}

// newInternTable returns a table of at most maxStrings strings and maxLabelSets label sets.
func newInternTable(maxStrings, maxLabelSets int) *internTable {
	return &internTable{
		strings: newInternPool[string](maxStrings),
		labels:  newInternPool[map[string]string](maxLabelSets),
	}
}

// String returns the table's copy of s.
func (t *internTable) String(s string) string {
	if s == "" {
		return ""
	}
	return t.strings.GetString(s, func() string { return s })
}

// Labels returns a map equal to m that is shared with every caller that passed an equal map, with the
// table's strings as keys and values; nil for an empty map. Callers must never modify it: it is
// shared, read-only data, like every object of an informer's cache.
func (t *internTable) Labels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	return t.labels.Get(t.key.of(m), func() map[string]string {
		shared := make(map[string]string, len(m))
		for key, value := range m {
			shared[t.String(key)] = t.String(value)
		}
		return shared
	})
}

// labelKey encodes a label set as a key: its pairs sorted by key, each string preceded by its length,
// so that two sets have equal keys exactly when they are equal, whatever bytes labels hold.
type labelKey struct {
	names []string
	buf   []byte
}

func (k *labelKey) of(m map[string]string) []byte {
	k.names = slices.AppendSeq(k.names[:0], maps.Keys(m))
	slices.Sort(k.names)
	k.buf = k.buf[:0]
	for _, name := range k.names {
		k.buf = binary.AppendUvarint(k.buf, uint64(len(name)))
		k.buf = append(k.buf, name...)
		k.buf = binary.AppendUvarint(k.buf, uint64(len(m[name])))
		k.buf = append(k.buf, m[name]...)
	}
	return k.buf
}

package selectors

import (
	"slices"
)

// tally is a sorted multiset: every item with the number of contributions that hold it. An item is
// a member while one contribution remains, so a pod leaving never takes away an address that
// another pod, or the same pod through another peer of the set, still brings.
type tally[T any] struct {
	entries []tallyEntry[T] // sorted by compare; private, so updated in place
	compare func(a, b T) int
}

type tallyEntry[T any] struct {
	item  T
	count int
}

// newTally counts items, in any order.
func newTally[T any](compare func(a, b T) int, items []T) tally[T] {
	slices.SortFunc(items, compare)
	entries := make([]tallyEntry[T], 0, len(items))
	for _, item := range items {
		if n := len(entries); n > 0 && compare(entries[n-1].item, item) == 0 {
			entries[n-1].count++
			continue
		}
		entries = append(entries, tallyEntry[T]{item: item, count: 1})
	}
	return tally[T]{entries: entries, compare: compare}
}

// add counts one contribution in (delta 1) or out (delta -1) and reports whether the item became
// or stopped being a member.
func (t *tally[T]) add(item T, delta int) bool {
	i, found := slices.BinarySearchFunc(t.entries, item, func(e tallyEntry[T], item T) int { return t.compare(e.item, item) })
	switch {
	case !found && delta > 0:
		t.entries = slices.Insert(t.entries, i, tallyEntry[T]{item: item, count: delta})
		return true
	case !found:
		return false // never counted in: nothing to take out
	}
	t.entries[i].count += delta
	if t.entries[i].count > 0 {
		return false
	}
	t.entries = slices.Delete(t.entries, i, i+1)
	return true
}

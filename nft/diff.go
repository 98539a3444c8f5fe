package nft

import (
	"slices"
	"sort"
)

// Diff returns the transaction that turns the table from committed into desired. With committed nil
// (state unknown) it replaces the whole table. A set redefined under its name (a new size) is deleted
// and created again with the chains that use it; a redefined map or base chain, which names derive
// from and never happens between two versions of this program, falls back to a whole-table replacement.
//
// Order matters inside one batch: new sets and chains exist before rules refer to them, and rules and
// map elements stop referring to sets and chains before those are deleted.
//
// Unchanged parts cost little: objects are looked up by name without building indexes of sorted
// rulesets, and element lists and rule lists that are the very same slices in both rulesets (as
// Compiler makes them for what did not change) are skipped without comparing their contents.
func Diff(committed, desired *Ruleset) *Transaction {
	if committed == nil || committed.Table != desired.Table {
		return fullReplace(desired)
	}
	oldSets, oldMaps, oldChains := indexSets(committed), indexMaps(committed), indexChains(committed)
	newSets, newMaps, newChains := indexSets(desired), indexMaps(desired), indexChains(desired)
	if redefined(desired, oldMaps, oldChains) {
		return fullReplace(desired)
	}
	tx := &Transaction{Table: desired.Table}

	// 0. Sets redefined under their name, replaced on their own (see replaceRedefinedSets).
	redefinedSets, refilled := replaceRedefinedSets(tx, committed, desired, oldSets)

	// 1. New sets, and element changes of existing ones (deletions first: interval sets must not
	// see overlapping ranges).
	for _, s := range desired.Sets {
		old, ok := oldSets.find(s.Name)
		if !ok || redefinedSets[s.Name] {
			tx.Ops = append(tx.Ops, AddSet{Set: withoutElements(s)})
			if len(s.Elements) > 0 {
				tx.Ops = append(tx.Ops, AddElements{Set: s.Name, Type: s.Type, Interval: s.Interval, Elements: s.Elements})
			}
			continue
		}
		added, deleted := diffElements(old.Elements, s.Elements)
		if len(deleted) > 0 {
			tx.Ops = append(tx.Ops, DeleteElements{Set: s.Name, Type: s.Type, Interval: s.Interval, Elements: deleted})
		}
		if len(added) > 0 {
			tx.Ops = append(tx.Ops, AddElements{Set: s.Name, Type: s.Type, Interval: s.Interval, Elements: added})
		}
	}
	// 2. New maps (elements come after the chains they point to).
	for _, m := range desired.Maps {
		if _, ok := oldMaps.find(m.Name); !ok {
			tx.Ops = append(tx.Ops, AddMap{Map: withoutMapElements(m)})
		}
	}
	// 3. New chains, then the rules of new and changed chains.
	for _, c := range desired.Chains {
		if _, ok := oldChains.find(c.Name); !ok {
			tx.Ops = append(tx.Ops, AddChain{Chain: withoutRules(c)})
		}
	}
	for _, c := range desired.Chains {
		old, ok := oldChains.find(c.Name)
		if ok && !refilled[c.Name] && (sameSlice(old.Rules, c.Rules) || rulesEqual(old.Rules, c.Rules)) {
			continue
		}
		if ok && !refilled[c.Name] {
			tx.Ops = append(tx.Ops, FlushChain{Name: c.Name})
		}
		for _, r := range c.Rules {
			tx.Ops = append(tx.Ops, AddRule{Chain: c.Name, Rule: r})
		}
	}
	// 4. Map elements: removed or re-pointed keys go first, then new ones.
	for _, m := range desired.Maps {
		var oldElements []MapElement
		if old, ok := oldMaps.find(m.Name); ok {
			oldElements = old.Elements
		}
		added, deleted := diffMapElements(oldElements, m.Elements)
		if len(deleted) > 0 {
			tx.Ops = append(tx.Ops, DeleteMapElements{Map: m.Name, Type: m.Type, Elements: deleted})
		}
		if len(added) > 0 {
			tx.Ops = append(tx.Ops, AddMapElements{Map: m.Name, Type: m.Type, Elements: added})
		}
	}
	for _, m := range committed.Maps {
		if _, ok := newMaps.find(m.Name); !ok {
			tx.Ops = append(tx.Ops, DeleteMap{Name: m.Name})
		}
	}
	// 5. Chains and sets nothing refers to any more.
	deleteUnused(tx, committed, newChains, newSets, refilled)
	return tx
}

// fullReplace creates the table (so that deleting it cannot fail), deletes it with everything a
// previous run left in it, and builds desired, all in one batch.
func fullReplace(desired *Ruleset) *Transaction {
	tx := &Transaction{Table: desired.Table, Ops: []Op{AddTable{}, DeleteTable{}, AddTable{}}}
	for _, s := range desired.Sets {
		tx.Ops = append(tx.Ops, AddSet{Set: withoutElements(s)})
		if len(s.Elements) > 0 {
			tx.Ops = append(tx.Ops, AddElements{Set: s.Name, Type: s.Type, Interval: s.Interval, Elements: s.Elements})
		}
	}
	for _, m := range desired.Maps {
		tx.Ops = append(tx.Ops, AddMap{Map: withoutMapElements(m)})
	}
	for _, c := range desired.Chains {
		tx.Ops = append(tx.Ops, AddChain{Chain: withoutRules(c)})
	}
	for _, c := range desired.Chains {
		for _, r := range c.Rules {
			tx.Ops = append(tx.Ops, AddRule{Chain: c.Name, Rule: r})
		}
	}
	for _, m := range desired.Maps {
		if len(m.Elements) > 0 {
			tx.Ops = append(tx.Ops, AddMapElements{Map: m.Name, Type: m.Type, Elements: m.Elements})
		}
	}
	return tx
}

// deleteUnused deletes the chains and sets of committed that desired no longer has, chains first (a
// rule may use a set). Chains flushed already (refilled) are not flushed twice.
func deleteUnused(tx *Transaction, committed *Ruleset, newChains finder[Chain], newSets finder[Set], refilled map[string]bool) {
	for _, c := range committed.Chains {
		if _, ok := newChains.find(c.Name); !ok {
			if !refilled[c.Name] {
				tx.Ops = append(tx.Ops, FlushChain{Name: c.Name})
			}
			tx.Ops = append(tx.Ops, DeleteChain{Name: c.Name})
		}
	}
	for _, s := range committed.Sets {
		if _, ok := newSets.find(s.Name); !ok {
			tx.Ops = append(tx.Ops, DeleteSet{Name: s.Name})
		}
	}
}

// replaceRedefinedSets handles sets that keep their name but change their definition (a hash set
// outgrowing its size): the chains using them are flushed (Diff refills them), the old sets are
// deleted (Diff creates the new ones), all in tx. It returns the redefined sets and flushed chains.
func replaceRedefinedSets(tx *Transaction, committed, desired *Ruleset, oldSets finder[Set]) (redefinedSets, refilled map[string]bool) {
	redefinedSets, refilled = map[string]bool{}, map[string]bool{}
	for _, s := range desired.Sets {
		if old, ok := oldSets.find(s.Name); ok && (old.Type != s.Type || old.Interval != s.Interval || old.Size != s.Size || old.Comment != s.Comment) {
			redefinedSets[s.Name] = true
		}
	}
	if len(redefinedSets) == 0 {
		return redefinedSets, refilled
	}
	for _, c := range committed.Chains {
		for _, r := range c.Rules {
			if slices.ContainsFunc(referencedSets(r), func(name string) bool { return redefinedSets[name] }) {
				tx.Ops = append(tx.Ops, FlushChain{Name: c.Name})
				refilled[c.Name] = true
				break
			}
		}
	}
	for _, s := range committed.Sets {
		if redefinedSets[s.Name] {
			tx.Ops = append(tx.Ops, DeleteSet{Name: s.Name})
		}
	}
	return redefinedSets, refilled
}

// redefined reports whether a map or a chain kept its name but changed what it is: rare enough
// (never, between two versions of this program) to replace the whole table for. Sets are handled one
// by one (see Diff).
func redefined(desired *Ruleset, oldMaps finder[Map], oldChains finder[Chain]) bool {
	for _, m := range desired.Maps {
		if old, ok := oldMaps.find(m.Name); ok && (old.Type != m.Type || old.Comment != m.Comment) {
			return true
		}
	}
	for _, c := range desired.Chains {
		if old, ok := oldChains.find(c.Name); ok && !baseEqual(old.Base, c.Base) {
			return true
		}
	}
	return false
}

// diffElements walks two element lists in canonical order (see SortElements) side by side: linear,
// and without the allocations of hashing every element of a large peer set.
func diffElements(old, desired []Element) (added, deleted []Element) {
	if sameSlice(old, desired) || slices.Equal(old, desired) { // most sets did not change
		return nil, nil
	}
	old, desired = sortedElements(old), sortedElements(desired)
	i, j := 0, 0
	for i < len(old) && j < len(desired) {
		switch c := compareElements(old[i], desired[j]); {
		case c == 0:
			i++
			j++
		case c < 0:
			deleted = append(deleted, old[i])
			i++
		default:
			added = append(added, desired[j])
			j++
		}
	}
	return append(added, desired[j:]...), append(deleted, old[i:]...)
}

// diffMapElements does the same for verdict maps, sorted by key; a key whose verdict changed is
// deleted and added again.
func diffMapElements(old, desired []MapElement) (added, deleted []MapElement) {
	if sameSlice(old, desired) || slices.Equal(old, desired) {
		return nil, nil
	}
	old, desired = sortedMapElements(old), sortedMapElements(desired)
	i, j := 0, 0
	for i < len(old) && j < len(desired) {
		switch c := old[i].Key.Compare(desired[j].Key); {
		case c == 0:
			if old[i].Verdict != desired[j].Verdict {
				deleted = append(deleted, old[i])
				added = append(added, desired[j])
			}
			i++
			j++
		case c < 0:
			deleted = append(deleted, old[i])
			i++
		default:
			added = append(added, desired[j])
			j++
		}
	}
	return append(added, desired[j:]...), append(deleted, old[i:]...)
}

// sortedElements returns elems in canonical order, sorting a copy only when a caller built a ruleset
// by hand out of order.
func sortedElements(elems []Element) []Element {
	if slices.IsSortedFunc(elems, compareElements) {
		return elems
	}
	elems = slices.Clone(elems)
	SortElements(elems)
	return elems
}

func sortedMapElements(elems []MapElement) []MapElement {
	byKey := func(a, b MapElement) int { return a.Key.Compare(b.Key) }
	if slices.IsSortedFunc(elems, byKey) {
		return elems
	}
	elems = slices.Clone(elems)
	slices.SortFunc(elems, byKey)
	return elems
}

// finder looks objects up by name. Rulesets keep their objects sorted by name (chains after their
// leading base chains), so a lookup is a binary search and building the finder allocates nothing; a
// hand-built ruleset out of order gets a map instead.
type finder[T any] struct {
	items  []T
	prefix int // items[:prefix] are searched one by one, items[prefix:] by binary search
	name   func(*T) string
	byName map[string]int // set when items[prefix:] is not sorted
}

func newFinder[T any](items []T, prefix int, name func(*T) string) finder[T] {
	f := finder[T]{items: items, prefix: prefix, name: name}
	// Index-based, so that no element is copied (a copy whose address is taken escapes to the heap).
	for i := prefix + 1; i < len(items); i++ {
		if name(&items[i-1]) > name(&items[i]) {
			f.byName = make(map[string]int, len(items))
			for j := range items {
				f.byName[name(&items[j])] = j
			}
			break
		}
	}
	return f
}

func (f finder[T]) find(name string) (*T, bool) {
	if f.byName != nil {
		i, ok := f.byName[name]
		if !ok {
			return nil, false
		}
		return &f.items[i], true
	}
	for i := range f.items[:f.prefix] {
		if f.name(&f.items[i]) == name {
			return &f.items[i], true
		}
	}
	rest := f.items[f.prefix:]
	i := sort.Search(len(rest), func(i int) bool { return f.name(&rest[i]) >= name })
	if i == len(rest) || f.name(&rest[i]) != name {
		return nil, false
	}
	return &rest[i], true
}

func indexSets(rs *Ruleset) finder[Set] {
	return newFinder(rs.Sets, 0, func(s *Set) string { return s.Name })
}

func indexMaps(rs *Ruleset) finder[Map] {
	return newFinder(rs.Maps, 0, func(m *Map) string { return m.Name })
}

func indexChains(rs *Ruleset) finder[Chain] {
	base := 0
	for base < len(rs.Chains) && rs.Chains[base].Base != nil {
		base++
	}
	return newFinder(rs.Chains, base, func(c *Chain) string { return c.Name })
}

func withoutElements(s Set) Set {
	s.Elements = nil
	return s
}

func withoutMapElements(m Map) Map {
	m.Elements = nil
	return m
}

func withoutRules(c Chain) Chain {
	c.Rules = slices.Clip([]Rule(nil))
	return c
}

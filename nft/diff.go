package nft

import (
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/util/sets"
)

// Diff returns the transaction that turns the table from committed into desired, comparing only what
// changed names (everything when changed.Full; see Compiler). With committed nil (state unknown) it
// replaces the whole table. A set redefined under its name (a new size) is deleted and created again
// with the chains that use it; a redefined map or base chain, which names derive from and never
// happens between two versions of this program, falls back to a whole-table replacement.
//
// Order matters inside one batch: new sets and chains exist before rules refer to them, and rules and
// map elements stop referring to sets and chains before those are deleted.
func Diff(committed, desired *Ruleset, changed Changes) *Transaction {
	if committed == nil || committed.Table != desired.Table {
		return fullReplace(desired)
	}
	d := newDiffer(committed, desired, changed)
	if d.redefined() {
		return fullReplace(desired)
	}
	tx := &Transaction{Table: desired.Table}

	// 0. Sets redefined under their name, replaced on their own (see replaceRedefinedSets).
	redefinedSets, refilled := d.replaceRedefinedSets(tx)

	// 1. New sets, and element changes of existing ones (deletions first: interval sets must not
	// see overlapping ranges).
	for _, s := range d.sets(desired) {
		old, ok := d.oldSets.find(s.Name)
		if !ok || redefinedSets[s.Name] {
			tx.Ops = append(tx.Ops, AddSet{Set: withoutElements(*s)})
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
	for _, m := range d.maps(desired) {
		if _, ok := d.oldMaps.find(m.Name); !ok {
			tx.Ops = append(tx.Ops, AddMap{Map: withoutMapElements(*m)})
		}
	}
	// 3. New counters (a kept counter is never re-created: that would reset it), new chains, then
	// the rules of new and changed chains, and of chains flushed in step 0.
	d.addCounters(tx)
	chains := d.chains(desired, refilled)
	for _, c := range chains {
		if _, ok := d.oldChains.find(c.Name); !ok {
			tx.Ops = append(tx.Ops, AddChain{Chain: withoutRules(*c)})
		}
	}
	for _, c := range chains {
		old, ok := d.oldChains.find(c.Name)
		if ok && !refilled[c.Name] && rulesEqual(old.Rules, c.Rules) {
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
	for _, m := range d.maps(desired) {
		var oldElements []MapElement
		if old, ok := d.oldMaps.find(m.Name); ok {
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
	for _, m := range d.maps(committed) {
		if _, ok := d.newMaps.find(m.Name); !ok {
			tx.Ops = append(tx.Ops, DeleteMap{Name: m.Name})
		}
	}
	// 5. Chains and sets nothing refers to any more.
	d.deleteUnused(tx, refilled)
	return tx
}

// differ is one Diff: both rulesets indexed by name, and which of their objects to compare.
type differ struct {
	committed, desired   *Ruleset
	changed              Changes
	names                []string // changed.Sets, sorted: the sets and maps to compare unless Full
	oldSets, newSets     finder[Set]
	oldMaps, newMaps     finder[Map]
	oldChains, newChains finder[Chain]
}

func newDiffer(committed, desired *Ruleset, changed Changes) *differ {
	d := &differ{
		committed: committed, desired: desired, changed: changed,
		oldSets: indexSets(committed), newSets: indexSets(desired),
		oldMaps: indexMaps(committed), newMaps: indexMaps(desired),
		oldChains: indexChains(committed), newChains: indexChains(desired),
	}
	if !changed.Full {
		d.names = sets.List(changed.Sets)
	}
	return d
}

// sets returns the sets of rs to compare, in rs's order: all of them when Full, else those named.
func (d *differ) sets(rs *Ruleset) []*Set {
	return pick(rs.Sets, d.changed.Full, d.names, d.finderOfSets(rs))
}

// maps returns the maps of rs to compare, in the same way.
func (d *differ) maps(rs *Ruleset) []*Map {
	return pick(rs.Maps, d.changed.Full, d.names, d.finderOfMaps(rs))
}

// chains returns the chains of desired to compare: all of them when Full or Chains, else those
// flushed because a set they use was redefined.
func (d *differ) chains(desired *Ruleset, refilled map[string]bool) []*Chain {
	if d.changed.Full || d.changed.Chains {
		return pick(desired.Chains, true, nil, d.newChains)
	}
	return pick(desired.Chains, false, sets.List(sets.KeySet(refilled)), d.newChains)
}

func (d *differ) finderOfSets(rs *Ruleset) finder[Set] {
	if rs == d.desired {
		return d.newSets
	}
	return d.oldSets
}

func (d *differ) finderOfMaps(rs *Ruleset) finder[Map] {
	if rs == d.desired {
		return d.newMaps
	}
	return d.oldMaps
}

// pick returns pointers to every item when all, else to the items of the names that exist, in
// the order of names.
func pick[T any](items []T, all bool, names []string, f finder[T]) []*T {
	var out []*T
	if all {
		out = make([]*T, len(items))
		for i := range items {
			out[i] = &items[i]
		}
		return out
	}
	for _, name := range names {
		if item, ok := f.find(name); ok {
			out = append(out, item)
		}
	}
	return out
}

// fullReplace creates the table (so that deleting it cannot fail), deletes it with everything a
// previous run left in it, and builds desired, all in one batch.
func fullReplace(desired *Ruleset) *Transaction {
	tx := &Transaction{Table: desired.Table, Ops: []Op{AddTable{}, DeleteTable{}, AddTable{}}}
	for _, c := range desired.Counters {
		tx.Ops = append(tx.Ops, AddCounter{Counter: c})
	}
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

// addCounters adds the counters of desired that committed does not have. Counters change only
// with the chains whose rules update them.
func (d *differ) addCounters(tx *Transaction) {
	if !d.changed.Full && !d.changed.Chains {
		return
	}
	old := countersByName(d.committed)
	for _, c := range d.desired.Counters {
		if !old[c.Name] {
			tx.Ops = append(tx.Ops, AddCounter{Counter: c})
		}
	}
}

func countersByName(rs *Ruleset) map[string]bool {
	names := make(map[string]bool, len(rs.Counters))
	for _, c := range rs.Counters {
		names[c.Name] = true
	}
	return names
}

// deleteUnused deletes the chains, counters and sets of committed that desired no longer has,
// chains first (a rule may use a set or a counter). Chains flushed already (refilled) are not
// flushed twice.
func (d *differ) deleteUnused(tx *Transaction, refilled map[string]bool) {
	if d.changed.Full || d.changed.Chains {
		// Chains sort so that a chain jumps only to chains after it, but for the pod chains'
		// ClusterNetworkPolicy tier chains, whose deletion waits for the others'.
		for _, tiers := range []bool{false, true} {
			for _, c := range d.committed.Chains {
				if _, ok := d.newChains.find(c.Name); !ok && isTierChain(c.Name) == tiers {
					if !refilled[c.Name] {
						tx.Ops = append(tx.Ops, FlushChain{Name: c.Name})
					}
					tx.Ops = append(tx.Ops, DeleteChain{Name: c.Name})
				}
			}
		}
		kept := countersByName(d.desired)
		for _, c := range d.committed.Counters {
			if !kept[c.Name] {
				tx.Ops = append(tx.Ops, DeleteCounter{Name: c.Name})
			}
		}
	}
	for _, s := range d.sets(d.committed) {
		if _, ok := d.newSets.find(s.Name); !ok {
			tx.Ops = append(tx.Ops, DeleteSet{Name: s.Name})
		}
	}
}

// replaceRedefinedSets handles sets that keep their name but change their definition (a hash set
// outgrowing its size): the chains using them are flushed (Diff refills them), the old sets are
// deleted (Diff creates the new ones), all in tx. It returns the redefined sets and flushed chains.
func (d *differ) replaceRedefinedSets(tx *Transaction) (redefinedSets, refilled map[string]bool) {
	redefinedSets, refilled = map[string]bool{}, map[string]bool{}
	for _, s := range d.sets(d.desired) {
		if old, ok := d.oldSets.find(s.Name); ok && (old.Type != s.Type || old.Interval != s.Interval || old.Size != s.Size || old.Comment != s.Comment ||
			old.Dynamic != s.Dynamic || old.Timeout != s.Timeout) {
			redefinedSets[s.Name] = true
		}
	}
	if len(redefinedSets) == 0 {
		return redefinedSets, refilled
	}
	for _, c := range d.committed.Chains {
		for _, r := range c.Rules {
			if slices.ContainsFunc(referencedSets(r), func(name string) bool { return redefinedSets[name] }) {
				tx.Ops = append(tx.Ops, FlushChain{Name: c.Name})
				refilled[c.Name] = true
				break
			}
		}
	}
	for _, s := range d.committed.Sets {
		if redefinedSets[s.Name] {
			tx.Ops = append(tx.Ops, DeleteSet{Name: s.Name})
		}
	}
	return redefinedSets, refilled
}

// redefined reports whether a map or a chain kept its name but changed what it is: rare enough
// (never, between two versions of this program) to replace the whole table for. Sets are handled one
// by one (see Diff).
func (d *differ) redefined() bool {
	for _, m := range d.maps(d.desired) {
		if old, ok := d.oldMaps.find(m.Name); ok && (old.Type != m.Type || old.Comment != m.Comment) {
			return true
		}
	}
	if !d.changed.Full && !d.changed.Chains {
		return false
	}
	for _, c := range d.desired.Chains {
		if old, ok := d.oldChains.find(c.Name); ok && !baseEqual(old.Base, c.Base) {
			return true
		}
	}
	return false
}

// diffElements walks two element lists in canonical order (see SortElements) side by side: linear,
// and without the allocations of hashing every element of a large peer set.
func diffElements(old, desired []Element) (added, deleted []Element) {
	if slices.Equal(old, desired) {
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
	if slices.Equal(old, desired) {
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

package nft

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Fake is an in-memory Backend. It applies a transaction to a copy of its table and commits the copy
// only when every operation succeeded, like the kernel. It rejects what the kernel rejects: rules that
// refer to missing sets, maps, chains or counters, elements of missing sets, deleting objects still
// referred to, deleting missing elements.
type Fake struct {
	mu    sync.Mutex
	table string
	state *fakeTable // nil: the table does not exist
	log   []*Transaction
	fail  error // the error of the next Run, which then changes nothing
}

var _ Backend = (*Fake)(nil)

// NewFake returns a fake kernel without our table.
func NewFake(table string) *Fake {
	return &Fake{table: table}
}

// Transactions returns every transaction that committed, oldest first.
func (f *Fake) Transactions() []*Transaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// Ruleset returns the table's content in canonical order, or nil when the table does not exist.
func (f *Fake) Ruleset() *Ruleset {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == nil {
		return nil
	}
	return f.state.ruleset(f.table)
}

// Check lists the operations that would turn the fake's table into rs (nil: it holds exactly rs).
func (f *Fake) Check(rs *Ruleset) ([]string, error) {
	have := f.Ruleset()
	if have == nil {
		return []string{"the table is missing"}, nil
	}
	var out []string
	for _, op := range Diff(have, rs, FullChanges()).Ops {
		out = append(out, RenderOp(rs.Table, op))
	}
	return out, nil
}

// FailNext makes the next Run fail with err and change nothing, as a kernel refusing a batch.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// Run applies tx atomically.
func (f *Fake) Run(tx *Transaction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail; err != nil {
		f.fail = nil
		return err
	}
	if tx.Table != f.table {
		return fmt.Errorf("fake serves table %q, not %q", f.table, tx.Table)
	}
	next := f.state.clone()
	for i, op := range tx.Ops {
		var err error
		next, err = next.apply(op)
		if err != nil {
			return fmt.Errorf("operation %d (%s): %w", i, RenderOp(tx.Table, op), err)
		}
	}
	f.state = next
	f.log = append(f.log, tx)
	return nil
}

type fakeSet struct {
	def      Set // without elements
	elements map[Element]struct{}
}

type fakeMap struct {
	def      Map
	elements map[netip.Addr]Verdict
}

type fakeTable struct {
	counters map[string]Counter
	sets     map[string]*fakeSet
	maps     map[string]*fakeMap
	chains   map[string]*Chain
	order    []string // chain creation order, base chains keep theirs
}

func (t *fakeTable) clone() *fakeTable {
	if t == nil {
		return nil
	}
	c := &fakeTable{counters: maps.Clone(t.counters), sets: map[string]*fakeSet{}, maps: map[string]*fakeMap{}, chains: map[string]*Chain{}, order: slices.Clone(t.order)}
	for n, s := range t.sets {
		els := make(map[Element]struct{}, len(s.elements))
		for e := range s.elements {
			els[e] = struct{}{}
		}
		c.sets[n] = &fakeSet{def: s.def, elements: els}
	}
	for n, m := range t.maps {
		els := make(map[netip.Addr]Verdict, len(m.elements))
		for k, v := range m.elements {
			els[k] = v
		}
		c.maps[n] = &fakeMap{def: m.def, elements: els}
	}
	for n, ch := range t.chains {
		cc := *ch
		cc.Rules = slices.Clone(ch.Rules)
		c.chains[n] = &cc
	}
	return c
}

func (t *fakeTable) apply(op Op) (*fakeTable, error) {
	switch op.(type) {
	case AddTable:
		if t == nil {
			return &fakeTable{counters: map[string]Counter{}, sets: map[string]*fakeSet{}, maps: map[string]*fakeMap{}, chains: map[string]*Chain{}}, nil
		}
		return t, nil
	case DeleteTable:
		if t == nil {
			return nil, fmt.Errorf("no such table")
		}
		return nil, nil
	}
	if t == nil {
		return nil, fmt.Errorf("no such table")
	}
	var err error
	switch op.(type) {
	case AddCounter, DeleteCounter:
		err = t.applyCounterOp(op)
	case AddSet, DeleteSet, AddElements, DeleteElements:
		err = t.applySetOp(op)
	case AddMap, DeleteMap, AddMapElements, DeleteMapElements:
		err = t.applyMapOp(op)
	case AddChain, FlushChain, DeleteChain, AddRule:
		err = t.applyChainOp(op)
	default:
		err = fmt.Errorf("unknown operation %T", op)
	}
	return t, err
}

// applyCounterOp adds a counter (adding an existing one keeps it and its values, as `add` does) or
// deletes one that no rule refers to.
func (t *fakeTable) applyCounterOp(op Op) error {
	switch o := op.(type) {
	case AddCounter:
		if _, ok := t.counters[o.Counter.Name]; !ok {
			t.counters[o.Counter.Name] = o.Counter
		}
	case DeleteCounter:
		if _, ok := t.counters[o.Name]; !ok {
			return fmt.Errorf("no such counter %s", o.Name)
		}
		for _, cn := range t.order {
			if slices.ContainsFunc(t.chains[cn].Rules, func(r Rule) bool { return r.Counter == o.Name }) {
				return fmt.Errorf("counter %s is in use by chain %s", o.Name, cn)
			}
		}
		delete(t.counters, o.Name)
	}
	return nil
}

func (t *fakeTable) applySetOp(op Op) error {
	if o, ok := op.(AddSet); ok {
		if old, ok := t.sets[o.Set.Name]; ok {
			if old.def.Type != o.Set.Type || old.def.Interval != o.Set.Interval || old.def.Size != o.Set.Size ||
				old.def.Dynamic != o.Set.Dynamic || old.def.Timeout != o.Set.Timeout {
				return fmt.Errorf("set %s exists with another type", o.Set.Name)
			}
			return nil
		}
		t.sets[o.Set.Name] = &fakeSet{def: withoutElements(o.Set), elements: map[Element]struct{}{}}
		return nil
	}
	var name string
	switch o := op.(type) {
	case DeleteSet:
		name = o.Name
	case AddElements:
		name = o.Set
	case DeleteElements:
		name = o.Set
	}
	s, ok := t.sets[name]
	if !ok {
		return fmt.Errorf("no such set %s", name)
	}
	switch o := op.(type) {
	case DeleteSet:
		if user := t.ruleReferring(name); user != "" {
			return fmt.Errorf("set %s is in use by chain %s", name, user)
		}
		delete(t.sets, name)
	case AddElements:
		for _, e := range o.Elements {
			if s.def.Interval {
				if other, ok := s.overlapping(e); ok {
					return fmt.Errorf("element %s overlaps %s in set %s", renderElement(s.def.Type, true, e), renderElement(s.def.Type, true, other), name)
				}
			}
			s.elements[e] = struct{}{}
			if s.def.Size > 0 && len(s.elements) > int(s.def.Size) {
				// The kernel refuses an element beyond the size (ENFILE).
				return fmt.Errorf("set %s is full: size %d", name, s.def.Size)
			}
		}
	case DeleteElements:
		for _, e := range o.Elements {
			if _, ok := s.elements[e]; !ok {
				return fmt.Errorf("no element %s in set %s", renderElement(s.def.Type, s.def.Interval, e), name)
			}
			delete(s.elements, e)
		}
	}
	return nil
}

func (t *fakeTable) applyMapOp(op Op) error {
	if o, ok := op.(AddMap); ok {
		if _, ok := t.maps[o.Map.Name]; !ok {
			t.maps[o.Map.Name] = &fakeMap{def: withoutMapElements(o.Map), elements: map[netip.Addr]Verdict{}}
		}
		return nil
	}
	var name string
	switch o := op.(type) {
	case DeleteMap:
		name = o.Name
	case AddMapElements:
		name = o.Map
	case DeleteMapElements:
		name = o.Map
	}
	m, ok := t.maps[name]
	if !ok {
		return fmt.Errorf("no such map %s", name)
	}
	switch o := op.(type) {
	case DeleteMap:
		if user := t.ruleReferring(name); user != "" {
			return fmt.Errorf("map %s is in use by chain %s", name, user)
		}
		delete(t.maps, name)
	case AddMapElements:
		for _, e := range o.Elements {
			if _, ok := m.elements[e.Key]; ok {
				return fmt.Errorf("map %s already has key %s", name, e.Key)
			}
			if e.Verdict.Chain != "" && t.chains[e.Verdict.Chain] == nil {
				return fmt.Errorf("map %s element %s points to missing chain %s", name, e.Key, e.Verdict.Chain)
			}
			m.elements[e.Key] = e.Verdict
		}
	case DeleteMapElements:
		for _, e := range o.Elements {
			if _, ok := m.elements[e.Key]; !ok {
				return fmt.Errorf("no key %s in map %s", e.Key, name)
			}
			delete(m.elements, e.Key)
		}
	}
	return nil
}

func (t *fakeTable) applyChainOp(op Op) error {
	if o, ok := op.(AddChain); ok {
		if _, ok := t.chains[o.Chain.Name]; !ok {
			c := withoutRules(o.Chain)
			t.chains[c.Name] = &c
			t.order = append(t.order, c.Name)
		}
		return nil
	}
	var name string
	switch o := op.(type) {
	case FlushChain:
		name = o.Name
	case DeleteChain:
		name = o.Name
	case AddRule:
		name = o.Chain
	}
	c, ok := t.chains[name]
	if !ok {
		return fmt.Errorf("no such chain %s", name)
	}
	switch o := op.(type) {
	case FlushChain:
		c.Rules = nil
	case DeleteChain:
		if len(c.Rules) > 0 {
			return fmt.Errorf("chain %s is not empty", name)
		}
		if user := t.chainReferrer(name); user != "" {
			return fmt.Errorf("chain %s is in use by %s", name, user)
		}
		delete(t.chains, name)
		t.order = slices.DeleteFunc(t.order, func(n string) bool { return n == name })
	case AddRule:
		if err := t.checkReferences(o.Rule); err != nil {
			return err
		}
		c.Rules = append(c.Rules, o.Rule)
	}
	return nil
}

func (s *fakeSet) overlapping(e Element) (Element, bool) {
	for other := range s.elements {
		if other == e {
			continue
		}
		if s.def.Type == KeyPort {
			if other.Port <= e.PortEnd && e.Port <= other.PortEnd {
				return other, true
			}
			continue
		}
		if other.Addr.BitLen() == e.Addr.BitLen() && other.Addr.Compare(e.AddrEnd) <= 0 && e.Addr.Compare(other.AddrEnd) <= 0 {
			return other, true
		}
	}
	return Element{}, false
}

// checkReferences rejects a rule naming a set, map or chain that does not exist.
func (t *fakeTable) checkReferences(r Rule) error {
	for _, name := range referencedSets(r) {
		if _, ok := t.sets[name]; !ok {
			return fmt.Errorf("rule refers to missing set %s", name)
		}
	}
	if r.VMap != nil {
		if _, ok := t.maps[r.VMap.Map]; !ok {
			return fmt.Errorf("rule refers to missing map %s", r.VMap.Map)
		}
	}
	if r.Counter != "" {
		if _, ok := t.counters[r.Counter]; !ok {
			return fmt.Errorf("rule refers to missing counter %s", r.Counter)
		}
	}
	if r.Verdict.Chain != "" {
		if _, ok := t.chains[r.Verdict.Chain]; !ok {
			return fmt.Errorf("rule jumps to missing chain %s", r.Verdict.Chain)
		}
	}
	return nil
}

// referencedSets lists the named sets a rule looks up.
func referencedSets(r Rule) []string {
	var names []string
	for _, m := range r.Matches {
		switch m := m.(type) {
		case AddrInSet:
			names = append(names, m.Set)
		case IfnameInSet:
			names = append(names, m.Set)
		case IfnameAddrInSet:
			names = append(names, m.Set)
		case ServiceInSet:
			names = append(names, m.Set)
		case DestPortInSet:
			names = append(names, m.Set)
		}
	}
	return names
}

func (t *fakeTable) ruleReferring(name string) string {
	for _, cn := range t.order {
		for _, r := range t.chains[cn].Rules {
			if slices.Contains(referencedSets(r), name) || (r.VMap != nil && r.VMap.Map == name) {
				return cn
			}
		}
	}
	return ""
}

func (t *fakeTable) chainReferrer(chain string) string {
	for _, cn := range t.order {
		for _, r := range t.chains[cn].Rules {
			if r.Verdict.Chain == chain {
				return "chain " + cn
			}
		}
	}
	for mn, m := range t.maps {
		for _, v := range m.elements {
			if v.Chain == chain {
				return "map " + mn
			}
		}
	}
	return ""
}

// ruleset returns the content in the canonical order Compile produces.
func (t *fakeTable) ruleset(table string) *Ruleset {
	rs := &Ruleset{Table: table}
	for _, c := range t.counters {
		rs.Counters = append(rs.Counters, c)
	}
	slices.SortFunc(rs.Counters, func(a, b Counter) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range t.sets {
		set := s.def
		for e := range s.elements {
			set.Elements = append(set.Elements, e)
		}
		SortElements(set.Elements)
		rs.Sets = append(rs.Sets, set)
	}
	slices.SortFunc(rs.Sets, func(a, b Set) int { return strings.Compare(a.Name, b.Name) })
	for _, m := range t.maps {
		mp := m.def
		for k, v := range m.elements {
			mp.Elements = append(mp.Elements, MapElement{Key: k, Verdict: v})
		}
		slices.SortFunc(mp.Elements, func(a, b MapElement) int { return a.Key.Compare(b.Key) })
		rs.Maps = append(rs.Maps, mp)
	}
	slices.SortFunc(rs.Maps, func(a, b Map) int { return strings.Compare(a.Name, b.Name) })
	var base, regular []Chain
	for _, n := range t.order {
		c := *t.chains[n]
		if c.Base != nil {
			base = append(base, c)
		} else {
			regular = append(regular, c)
		}
	}
	slices.SortFunc(regular, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	rs.Chains = append(base, regular...)
	return rs
}

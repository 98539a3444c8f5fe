package selectors

import (
	"net/netip"
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

// memberSet is a set whose elements come from the member pods of peers. The Resolver counts a
// pod in when it joins a peer of the set and out when it leaves, and rebuilds the set's elements
// at the next Model.
type memberSet interface {
	// count adds (delta 1) or removes (delta -1) what a pod brings and reports whether an element
	// came or went.
	count(p *Pod, delta int) bool
	// bringsTheSame reports whether two versions of a pod bring the same elements.
	bringsTheSame(a, b *Pod) bool
	// rebuild computes the elements after counts changed and reports whether they differ from
	// the elements before.
	rebuild() bool
	common() *setBase
}

// setBase is what every set in use has besides its elements.
type setBase struct {
	id, description string
	peers           []*peerState // the selector peers its elements come from
	refs            int          // rules of active policies that refer to the set
}

func (b *setBase) common() *setBase { return b }

// addressSetState is an AddressSet in use: the addresses of the member pods of its selector peers,
// counted, and its ipBlocks' ranges.
type addressSetState struct {
	setBase
	blocks      []AddrRange // every ipBlock's ranges, normalized
	hasIPBlocks bool
	addrs       tally[netip.Addr]
	ranges      []AddrRange // the elements, as in the last Model
}

var _ memberSet = (*addressSetState)(nil)

func (s *addressSetState) count(p *Pod, delta int) bool {
	changed := false
	for _, ip := range p.IPs {
		changed = s.addrs.add(ip, delta) || changed
	}
	return changed
}

func (s *addressSetState) bringsTheSame(a, b *Pod) bool { return slices.Equal(a.IPs, b.IPs) }

func (s *addressSetState) rebuild() bool {
	ranges := unionRanges(s.addrs.entries, s.blocks)
	if slices.Equal(ranges, s.ranges) {
		return false
	}
	s.ranges = ranges
	return true
}

func (s *addressSetState) model() AddressSet {
	return AddressSet{ID: s.id, Description: s.description, Ranges: s.ranges, HasIPBlocks: s.hasIPBlocks}
}

// unionRanges is the normalized union of single addresses and ranges, both sorted (nil when
// empty): the result normalizeRanges gives, without sorting.
func unionRanges(addrs []tallyEntry[netip.Addr], blocks []AddrRange) []AddrRange {
	var out []AddrRange
	mergeRanges(addrs, blocks, func(r AddrRange) { out = append(out, r) })
	return out
}

// mergeRanges feeds addresses and blocks in order of their first address to a rangeMerger and
// emits the merged ranges.
func mergeRanges(addrs []tallyEntry[netip.Addr], blocks []AddrRange, emit func(AddrRange)) {
	var m rangeMerger
	for len(addrs) > 0 || len(blocks) > 0 {
		var next AddrRange
		if len(blocks) == 0 || (len(addrs) > 0 && addrs[0].item.Compare(blocks[0].From) <= 0) {
			next = AddrRange{From: addrs[0].item, To: addrs[0].item}
			addrs = addrs[1:]
		} else {
			next = blocks[0]
			blocks = blocks[1:]
		}
		if done, ok := m.push(next); ok {
			emit(done)
		}
	}
	if done, ok := m.flush(); ok {
		emit(done)
	}
}

// serviceSetState is a ServiceSet in use: what the member pods of its peers bring to its named
// port, counted.
type serviceSetState struct {
	setBase
	port     namedPort
	services tally[Service]
	elements []Service // as in the last Model
}

var _ memberSet = (*serviceSetState)(nil)

func (s *serviceSetState) count(p *Pod, delta int) bool {
	changed := false
	for _, number := range namedPortNumbers(p, s.port.name, s.port.protocol) {
		for _, ip := range p.IPs {
			changed = s.services.add(Service{Addr: ip, Protocol: s.port.protocol, Port: number}, delta) || changed
		}
	}
	return changed
}

func (s *serviceSetState) bringsTheSame(a, b *Pod) bool {
	return slices.Equal(a.IPs, b.IPs) &&
		slices.Equal(namedPortNumbers(a, s.port.name, s.port.protocol), namedPortNumbers(b, s.port.name, s.port.protocol))
}

func (s *serviceSetState) rebuild() bool {
	var services []Service
	for i := range s.services.entries {
		services = append(services, s.services.entries[i].item)
	}
	if slices.Equal(services, s.elements) {
		return false
	}
	s.elements = services
	return true
}

func (s *serviceSetState) model() ServiceSet {
	return ServiceSet{ID: s.id, Description: s.description, Services: s.elements}
}

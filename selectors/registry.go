package selectors

import (
	"net/netip"
	"slices"
	"strings"
)

// setRegistry holds the sets of one kind that rules of active policies refer to.
type setRegistry[S interface {
	comparable
	memberSet
}] struct {
	byID         map[string]S
	order        []S // by ID, as in the Model
	unreferenced []S // lost their last reference since the last Model
}

func newSetRegistry[S interface {
	comparable
	memberSet
}]() setRegistry[S] {
	return setRegistry[S]{byID: make(map[string]S)}
}

// acquire takes one reference to the set of an ID, building it the first time.
func (reg *setRegistry[S]) acquire(r *Resolver, id string, build func() S) {
	if s, ok := reg.byID[id]; ok {
		s.common().refs++
		return
	}
	s := build()
	s.common().refs = 1
	reg.byID[id] = s
	reg.order = insertSorted(reg.order, s, bySetID[S])
	r.setChanged(s)
	r.noteSet(s)
}

// release drops one reference. A set without references is dropped at the next Model, unless a
// rule refers to it again by then: it is then kept as it is.
func (reg *setRegistry[S]) release(id string) {
	s := reg.byID[id]
	if s.common().refs--; s.common().refs == 0 {
		reg.unreferenced = append(reg.unreferenced, s)
	}
}

// dropUnreferenced drops the sets that lost their last reference and found none again.
func (reg *setRegistry[S]) dropUnreferenced(r *Resolver) {
	for _, s := range reg.unreferenced {
		b := s.common()
		if b.refs > 0 || reg.byID[b.id] != s {
			continue
		}
		for _, ps := range b.peers {
			r.releasePeer(ps, s)
		}
		delete(reg.byID, b.id)
		delete(r.changedSets, s)
		r.noteSet(s)
		reg.order = deleteSorted(reg.order, s, bySetID[S])
	}
	clear(reg.unreferenced)
	reg.unreferenced = reg.unreferenced[:0]
}

func bySetID[S memberSet](a, b S) int { return strings.Compare(a.common().id, b.common().id) }

// insertSorted inserts an item into a sorted list.
func insertSorted[T any](list []T, item T, compare func(a, b T) int) []T {
	i, _ := slices.BinarySearchFunc(list, item, compare)
	return slices.Insert(list, i, item)
}

// deleteSorted removes an item from a sorted list.
func deleteSorted[T any](list []T, item T, compare func(a, b T) int) []T {
	if i, found := slices.BinarySearchFunc(list, item, compare); found {
		return slices.Delete(list, i, i+1)
	}
	return list
}

// acquireAddressSet takes one reference to the AddressSet of a rule's peers (its ID, description
// and peers), counting the addresses of its peers' members the first time.
func (r *Resolver) acquireAddressSet(id, description string, peers []peer) {
	r.addressSets.acquire(r, id, func() *addressSetState {
		s := &addressSetState{setBase: setBase{id: id, description: description}}
		var blocks []AddrRange
		for i := range peers {
			if peers[i].isIPBlock {
				s.hasIPBlocks = true
				blocks = append(blocks, peers[i].ipRanges...)
			} else {
				s.peers = append(s.peers, r.acquirePeer(peers[i], s))
			}
		}
		s.blocks = normalizeRanges(blocks)
		var addrs []netip.Addr
		for _, ps := range s.peers {
			for _, p := range ps.members {
				addrs = append(addrs, p.IPs...)
			}
		}
		s.addrs = newTally(netip.Addr.Compare, addrs)
		return s
	})
}

// acquireServiceSet takes one reference to a ServiceSet, counting what its peers' members bring
// to its named port the first time.
func (r *Resolver) acquireServiceSet(sd *serviceDef) {
	r.serviceSets.acquire(r, sd.id, func() *serviceSetState {
		s := &serviceSetState{setBase: setBase{id: sd.id, description: sd.description}, port: sd.port}
		if sd.anyPod {
			// Every eligible pod of every namespace: what the empty namespace selector selects.
			s.peers = append(s.peers, r.acquirePeer(crossNamespacePeer(everything(), everything()), s))
		} else {
			for i := range sd.peers {
				s.peers = append(s.peers, r.acquirePeer(sd.peers[i], s))
			}
		}
		var services []Service
		for _, ps := range s.peers {
			for _, p := range ps.members {
				services = appendServices(services, p, s.port)
			}
		}
		s.services = newTally(compareServices, services)
		return s
	})
}

// setChanged notes that a set's counts changed: it is rebuilt at the next Model.
func (r *Resolver) setChanged(s memberSet) { r.changedSets[s] = struct{}{} }

// settleSets drops the sets no rule refers to any more and rebuilds those whose counts changed,
// before a Model.
func (r *Resolver) settleSets() {
	r.addressSets.dropUnreferenced(r)
	r.serviceSets.dropUnreferenced(r)
	for s := range r.changedSets {
		if s.rebuild(&r.scratch) {
			r.noteSet(s)
		}
	}
	clear(r.changedSets)
}

// noteSet records in the pending Changes that a set appeared, went away or changed.
func (r *Resolver) noteSet(s memberSet) {
	switch s := s.(type) {
	case *addressSetState:
		r.pending.noteAddressSet(s.id)
	case *serviceSetState:
		r.pending.noteServiceSet(s.id)
	}
}

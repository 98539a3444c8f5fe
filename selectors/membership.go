package selectors

import (
	"maps"
	"net/netip"
	"slices"
)

// peerState is a peer in use by some set: its definition and its member pods, the eligible pods it
// selects right now. Selector peers are in use by address and service sets; ipBlock peers only by
// service sets (a named port resolves on the pods whose addresses the block holds), address sets
// take their ranges as they are.
type peerState struct {
	peer    peer
	members map[podKey]*Pod
	users   map[memberSet]struct{} // the sets whose elements come from the members
}

// namespaceSelectorState groups the peers in use that share a namespaceSelector, so that a pod
// event only looks at the peers whose namespaceSelector matches the pod's namespace.
type namespaceSelectorState struct {
	selector parsedSelector
	peers    map[string]*peerState // by canonical definition
}

// acquirePeer returns the state of a peer for a new user, finding its members the first time the
// definition is used: the pods of the peer's namespace, or of every namespace its namespaceSelector
// matches, that its podSelector matches; for an ipBlock, the pods of every namespace with an address
// in the block.
func (r *Resolver) acquirePeer(p peer, user memberSet) *peerState {
	var group map[string]*peerState
	if p.isIPBlock {
		group = r.blockPeers
	} else if p.namespaces == nil {
		if group = r.namespacedPeers[p.scopeNamespace]; group == nil {
			group = make(map[string]*peerState)
			r.namespacedPeers[p.scopeNamespace] = group
		}
	} else {
		nss := r.namespaceSelectors[p.namespaces.canonical]
		if nss == nil {
			nss = &namespaceSelectorState{selector: *p.namespaces, peers: make(map[string]*peerState)}
			r.namespaceSelectors[p.namespaces.canonical] = nss
		}
		group = nss.peers
	}
	ps := group[p.canonical]
	if ps == nil {
		ps = &peerState{peer: p, members: make(map[podKey]*Pod), users: make(map[memberSet]struct{})}
		group[p.canonical] = ps
		for _, ns := range r.namespacesCovered(p) {
			for _, pod := range ns.pods {
				if p.selects(pod) {
					ps.members[keyOf(pod)] = pod
				}
			}
		}
	}
	ps.users[user] = struct{}{}
	return ps
}

// namespacesCovered returns the namespaces whose pods a peer may select.
func (r *Resolver) namespacesCovered(p peer) []*namespaceState {
	if p.isIPBlock {
		return slices.Collect(maps.Values(r.namespaces))
	}
	if p.namespaces == nil {
		if ns := r.namespaces[p.scopeNamespace]; ns != nil {
			return []*namespaceState{ns}
		}
		return nil
	}
	var out []*namespaceState
	for _, ns := range r.namespaces {
		if p.namespaces.selector.Matches(ns.labels) {
			out = append(out, ns)
		}
	}
	return out
}

// releasePeer drops a user of a peer, and the peer with its last user.
func (r *Resolver) releasePeer(ps *peerState, user memberSet) {
	delete(ps.users, user)
	if len(ps.users) > 0 {
		return
	}
	p := ps.peer
	if p.isIPBlock {
		delete(r.blockPeers, p.canonical)
		return
	}
	if p.namespaces == nil {
		delete(r.namespacedPeers[p.scopeNamespace], p.canonical)
		if len(r.namespacedPeers[p.scopeNamespace]) == 0 {
			delete(r.namespacedPeers, p.scopeNamespace)
		}
		return
	}
	nss := r.namespaceSelectors[p.namespaces.canonical]
	delete(nss.peers, p.canonical)
	if len(nss.peers) == 0 {
		delete(r.namespaceSelectors, p.namespaces.canonical)
	}
}

// repeerPod updates the members of every peer in use for one pod event in namespace ns. old and cur
// are the pod before and after, nil when it was or is not eligible. Only the peers scoped to ns,
// those whose namespaceSelector matches ns, and the ipBlock peers can select the pod, so only they
// are looked at.
func (r *Resolver) repeerPod(ns *namespaceState, old, cur *Pod) {
	for _, ps := range r.blockPeers {
		r.repeer(ps, old, cur)
	}
	for _, ps := range r.namespacedPeers[ns.name] {
		r.repeer(ps, old, cur)
	}
	for _, nss := range r.namespaceSelectors {
		if !nss.selector.selector.Matches(ns.labels) {
			continue
		}
		for _, ps := range nss.peers {
			r.repeer(ps, old, cur)
		}
	}
}

// repeer moves one pod into, out of, or within one peer's members, and counts the difference in
// the sets that use the peer.
func (r *Resolver) repeer(ps *peerState, old, cur *Pod) {
	was := old != nil && ps.peer.selects(old)
	is := cur != nil && ps.peer.selects(cur)
	switch {
	case was && is:
		ps.members[keyOf(cur)] = cur
		for s := range ps.users {
			if !s.bringsTheSame(old, cur) {
				// Both counts run: an address the pod keeps must not drop out in between.
				changed := s.count(cur, 1)
				changed = s.count(old, -1) || changed
				r.noteCount(s, changed)
			}
		}
	case was:
		r.leave(ps, old)
	case is:
		r.join(ps, cur)
	}
}

func (r *Resolver) join(ps *peerState, p *Pod) {
	ps.members[keyOf(p)] = p
	for s := range ps.users {
		r.noteCount(s, s.count(p, 1))
	}
}

func (r *Resolver) leave(ps *peerState, p *Pod) {
	delete(ps.members, keyOf(p))
	for s := range ps.users {
		r.noteCount(s, s.count(p, -1))
	}
}

func (r *Resolver) noteCount(s memberSet, changed bool) {
	if changed {
		r.setChanged(s)
	}
}

// selects reports whether the peer selects an eligible pod of a namespace it covers: by its
// podSelector, or for an ipBlock by any of the pod's addresses.
func (p *peer) selects(pod *Pod) bool {
	if p.isIPBlock {
		return slices.ContainsFunc(pod.IPs, func(a netip.Addr) bool {
			return slices.ContainsFunc(p.ipRanges, func(r AddrRange) bool { return r.contains(a) })
		})
	}
	return p.pods.selector.Matches(labelsOf(pod))
}

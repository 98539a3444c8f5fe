package controllers

import (
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/nft"
)

// Kinds of watched objects, as the event handlers name them.
const (
	kindPod           = "Pod"
	kindNamespace     = "Namespace"
	kindNetworkPolicy = "NetworkPolicy"
	// kindClusterNetworkPolicy objects are cluster-scoped: their refs have no namespace.
	kindClusterNetworkPolicy = "ClusterNetworkPolicy"
)

// maxPendingObjects bounds the objects remembered between two syncs; past it, the next sync re-reads
// the whole cache instead (a burst that large costs a full resolve anyway).
const maxPendingObjects = 10_000

// objectRef names one watched object.
type objectRef struct {
	kind      string
	namespace string
	name      string
}

// pendingChanges is the agent's change tracker: which objects changed since the last sync, and when
// each change was first observed (for the programming latency). The event handlers note changes; a
// sync takes them all and puts them back if it fails. It never loses a change: past
// maxPendingObjects, or before the first sync, it asks for a full re-read of the cache instead (the
// objects noted until then stay, for their latency).
type pendingChanges struct {
	mu    sync.Mutex
	taken changeBatch
}

// changeBatch is what one sync takes.
type changeBatch struct {
	// objects maps each changed object to when its earliest change not yet programmed was observed.
	objects map[objectRef]time.Time
	// full: only re-reading the whole cache is correct.
	full bool
	// foreign is news that another writer may have changed the table, nil when none came.
	foreign *nft.ForeignChange
}

// note records that an object changed at the given time.
func (p *pendingChanges) note(kind string, obj client.Object, at time.Time) {
	key := objectRef{kind: kind, namespace: obj.GetNamespace(), name: obj.GetName()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.taken.objects[key]; ok {
		return // the earliest unprogrammed change of an object is the one that waited longest
	}
	if len(p.taken.objects) >= maxPendingObjects {
		p.taken.full = true
		return
	}
	if p.taken.objects == nil {
		p.taken.objects = make(map[objectRef]time.Time)
	}
	p.taken.objects[key] = at
}

// noteForeign records news of a foreign change to the table.
func (p *pendingChanges) noteForeign(c nft.ForeignChange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.taken.mergeForeign(c)
}

func (b *changeBatch) mergeForeign(c nft.ForeignChange) {
	if b.foreign != nil {
		c = b.foreign.Merge(c)
	}
	b.foreign = &c
}

// take returns the changes noted so far and forgets them.
func (p *pendingChanges) take() changeBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.taken
	p.taken = changeBatch{}
	return b
}

// putBack returns the changes of a failed sync, so that the next sync reads them again; an object
// noted again meanwhile keeps the earlier time.
func (p *pendingChanges) putBack(b changeBatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.taken.full = p.taken.full || b.full
	if b.foreign != nil {
		p.taken.mergeForeign(*b.foreign)
	}
	for key, at := range b.objects {
		if len(p.taken.objects) >= maxPendingObjects {
			p.taken.full = true
			return
		}
		if p.taken.objects == nil {
			p.taken.objects = make(map[objectRef]time.Time)
		}
		if later, ok := p.taken.objects[key]; !ok || at.Before(later) {
			p.taken.objects[key] = at
		}
	}
}

// pending reports whether a change is waiting for the next sync.
func (p *pendingChanges) pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.taken.full || len(p.taken.objects) > 0 || p.taken.foreign != nil
}

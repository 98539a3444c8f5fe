package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// PodsByAddress finds the pod of the whole cluster that holds an address, from the agent's pod cache:
// the drop log names a peer on another node with it. It is a map from each address to the cached pod
// holding it, kept up to date by the pod informer's events: a sync costs nothing more, a look-up is
// one map read, and only the ends of a new drop log flow are looked up. The map holds one small
// entry per address (an informer index of strings would cost several times more per pod).
//
// When two pods claim one address (a stale status), the last one seen holds it; if that one leaves
// first, the address is unknown until the other changes. A name is never one of a pod that no
// longer holds the address.
type PodsByAddress struct {
	mu    sync.RWMutex
	addrs map[netip.Addr]*CachedPod
}

// IndexPodsByAddress follows the pod informer of c and returns the map it keeps. It must be called
// before the cache starts, or the pods already cached are added as the informer replays them.
func IndexPodsByAddress(ctx context.Context, c cache.Cache) (*PodsByAddress, error) {
	informer, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("getting the pod informer: %w", err)
	}
	p := &PodsByAddress{addrs: map[netip.Addr]*CachedPod{}}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.update(nil, obj) },
		UpdateFunc: p.update,
		DeleteFunc: func(obj any) { p.update(obj, nil) },
	}); err != nil {
		return nil, fmt.Errorf("following the pod informer: %w", err)
	}
	return p, nil
}

// update moves the addresses of a pod from its old version to its current one; either may be nil
// (added, deleted). Objects that are not CachedPods are ignored: the reconciler reports them.
func (p *PodsByAddress) update(oldObj, curObj any) {
	var old, cur *CachedPod
	if oldObj != nil {
		old, _ = podOfObject(oldObj)
	}
	if curObj != nil {
		cur, _ = podOfObject(curObj)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old != nil {
		for _, ip := range heldAddresses(old) {
			if held, ok := p.addrs[ip]; ok && held.Namespace == old.Namespace && held.Name == old.Name {
				delete(p.addrs, ip)
			}
		}
	}
	if cur != nil {
		for _, ip := range heldAddresses(cur) {
			p.addrs[ip] = cur
		}
	}
}

// heldAddresses are the addresses a pod holds. A hostNetwork pod's addresses are its node's, and a
// pod that ended has given its addresses back (another pod may hold them now): neither holds any.
func heldAddresses(p *CachedPod) []netip.Addr {
	if p.HostNetwork || p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed {
		return nil
	}
	return p.IPs
}

// Pod returns the pod holding addr.
func (p *PodsByAddress) Pod(addr netip.Addr) (selectors.Pod, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	held, ok := p.addrs[addr]
	if !ok {
		return selectors.Pod{}, false
	}
	return held.Pod, true
}

package controllers

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// podAddressIndex is the name of the pod informer's index of pods by address.
const podAddressIndex = "nftpolicy.io/pod-address"

// PodsByAddress finds the pod of the whole cluster that holds an address, from the agent's pod cache:
// the drop log names a peer on another node with it. The informer keeps the index up to date as
// pods change, one entry per pod address, so a sync costs nothing more and a look-up is one map
// read; only the ends of a new drop log flow are looked up.
type PodsByAddress struct {
	pods toolscache.Indexer
}

// IndexPodsByAddress adds the index of pods by address to the pod informer of c and returns its
// reader. It must be called before the cache starts.
func IndexPodsByAddress(ctx context.Context, c cache.Cache) (*PodsByAddress, error) {
	informer, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("getting the pod informer: %w", err)
	}
	shared, ok := informer.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("the pod informer is a %T, not a shared index informer whose store the agent can read", informer)
	}
	if err := shared.AddIndexers(toolscache.Indexers{podAddressIndex: podAddresses}); err != nil {
		return nil, fmt.Errorf("indexing pods by address: %w", err)
	}
	return &PodsByAddress{pods: shared.GetIndexer()}, nil
}

// podAddresses is the index function: the addresses a pod holds. A hostNetwork pod's addresses are
// its node's, and a pod that ended has given its addresses back (another pod may hold them now):
// neither is indexed.
func podAddresses(obj any) ([]string, error) {
	p, err := podOfObject(obj)
	if err != nil {
		return nil, err
	}
	if p.HostNetwork || p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed {
		return nil, nil
	}
	keys := make([]string, len(p.IPs))
	for i, ip := range p.IPs {
		keys[i] = ip.String()
	}
	return keys, nil
}

// Pod returns the pod holding addr. Two pods holding one address (a stale status) name none: a
// record is better without a peer than with the wrong one.
func (p *PodsByAddress) Pod(addr netip.Addr) (selectors.Pod, bool) {
	objs, err := p.pods.ByIndex(podAddressIndex, addr.String())
	if err != nil || len(objs) != 1 {
		return selectors.Pod{}, false
	}
	pod, err := podOfObject(objs[0])
	if err != nil {
		return selectors.Pod{}, false
	}
	return pod.Pod, true
}

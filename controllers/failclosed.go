package controllers

import (
	"time"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// interfaceRetryInterval is how soon the node syncs again, in the fail-closed mode, while a local
// pod's host interface has not been found: until it is, that pod's traffic is dropped.
const interfaceRetryInterval = time.Second

// interfaceRetry returns interfaceRetryInterval when the fail-closed mode is on and an address of a
// local pod of m has no host interface yet, and the resync period otherwise. The interface is usually
// there before the pod's address is published (a CNI plumbs the pod before the kubelet reports it),
// but nothing tells the agent when a late one shows up.
func (r *NodeReconciler) interfaceRetry(m *selectors.Model) time.Duration {
	if r.PodInterfacePrefix == "" || m == nil {
		return r.resyncPeriod()
	}
	for _, pod := range m.LocalPods {
		for _, a := range pod.IPs {
			if _, ok := r.state.ifaces[a]; !ok {
				return interfaceRetryInterval
			}
		}
	}
	return r.resyncPeriod()
}

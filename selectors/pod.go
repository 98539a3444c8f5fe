package selectors

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// podKey names a pod.
type podKey struct{ namespace, name string }

func keyOf(p *Pod) podKey { return podKey{p.Namespace, p.Name} }

// String is the key's "namespace/name", as LocalPod.Key.
func (k podKey) String() string { return k.namespace + "/" + k.name }

// SetPod adds or replaces a pod, keyed by namespace and name. A pod that moves to another
// namespace is another pod: delete the old key.
func (r *Resolver) SetPod(p Pod) {
	key := keyOf(&p)
	old := r.pods[key]
	if old != nil && old.ReadsAs(&p) {
		return
	}
	r.pods[key] = &p
	r.podChanged(key, old, &p)
}

// DeletePod removes a pod.
func (r *Resolver) DeletePod(namespace, name string) {
	key := podKey{namespace, name}
	old := r.pods[key]
	if old == nil {
		return
	}
	delete(r.pods, key)
	r.podChanged(key, old, nil)
}

// podChanged follows a pod from old to cur (either nil): only eligible pods are peers, and only
// eligible pods on the node are local.
func (r *Resolver) podChanged(key podKey, old, cur *Pod) {
	old, cur = eligibleOrNil(old), eligibleOrNil(cur)
	if old == nil && cur == nil {
		return
	}
	ns := r.namespace(key.namespace)
	if cur != nil {
		ns.pods[key.name] = cur
	} else {
		delete(ns.pods, key.name)
	}
	r.repeerPod(ns, old, cur)
	r.relocalPod(ns, key, r.localOrNil(old), r.localOrNil(cur))
	r.dropIfUnused(ns)
}

func eligibleOrNil(p *Pod) *Pod {
	if p == nil || !Eligible(p) {
		return nil
	}
	return p
}

func (r *Resolver) localOrNil(p *Pod) *Pod {
	if p == nil || p.Node != r.node {
		return nil
	}
	return p
}

// localPod is an eligible pod on the node, with what its Model entry holds.
type localPod struct {
	pod             *Pod
	ips             []netip.Addr // a copy: the Model shares no memory with the pods set
	ingress, egress *Isolation   // as handed out in Models: never written again
	// auditIngress and auditEgress are the isolations by audited policies, handed out likewise.
	auditIngress, auditEgress *Isolation
	// clusterIngress and clusterEgress are its ClusterNetworkPolicy rules, handed out likewise;
	// clusterPolicies are the ClusterNetworkPolicies that select it, in tier order.
	clusterIngress, clusterEgress *ClusterRules
	clusterPolicies               []*clusterPolicyState
}

func (lp *localPod) model() LocalPod {
	return LocalPod{Namespace: lp.pod.Namespace, Name: lp.pod.Name, IPs: lp.ips, Ingress: lp.ingress, Egress: lp.egress,
		AuditIngress: lp.auditIngress, AuditEgress: lp.auditEgress, ClusterIngress: lp.clusterIngress, ClusterEgress: lp.clusterEgress}
}

func byLocalPodKey(a, b *localPod) int {
	if c := strings.Compare(a.pod.Namespace, b.pod.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.pod.Name, b.pod.Name)
}

// relocalPod follows a pod on the node from old to cur (either nil, both eligible). Its policies'
// selection and its rules depend on its labels and ports; its addresses only on itself.
func (r *Resolver) relocalPod(ns *namespaceState, key podKey, old, cur *Pod) {
	switch {
	case old == nil && cur == nil:
		return
	case old == nil:
		lp := &localPod{pod: cur, ips: slices.Clone(cur.IPs)}
		r.local[key] = lp
		r.localOrder = insertSorted(r.localOrder, lp, byLocalPodKey)
		ns.local = insertSorted(ns.local, lp, byLocalPodKey)
		r.pending.noteLocalPod(key.String())
		r.unsettleClusterRules(lp)
	case cur == nil:
		lp := r.local[key]
		delete(r.local, key)
		r.localOrder = deleteSorted(r.localOrder, lp, byLocalPodKey)
		ns.local = deleteSorted(ns.local, lp, byLocalPodKey)
		r.pending.noteLocalPod(key.String())
		r.forgetClusterRules(lp)
	default:
		lp := r.local[key]
		lp.pod = cur
		if !slices.Equal(old.IPs, cur.IPs) {
			lp.ips = slices.Clone(cur.IPs)
			r.pending.noteLocalPod(key.String())
		}
		if maps.Equal(old.Labels, cur.Labels) && slices.Equal(old.Ports, cur.Ports) {
			return
		}
		// Subjects select by labels; ingress named ports resolve on the pod's ports.
		r.unsettleClusterRules(lp)
	}
	for _, ps := range ns.policies {
		r.reselect(ns, ps)
	}
	r.unsettled[ns.name] = struct{}{}
}

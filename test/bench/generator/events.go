package generator

import (
	"fmt"
	"net/netip"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// addedPrefix names the pods that events add.
const addedPrefix = "added-"

// EventKind is one kind of change of the cluster.
type EventKind string

const (
	PodRelabel       EventKind = "pod-relabel"       // a remote pod's "app" label changes to a value some peer selects
	PodIPChange      EventKind = "pod-ip-change"     // a remote pod gets a fresh address
	PodAdd           EventKind = "pod-add"           // a new remote pod appears
	PodDelete        EventKind = "pod-delete"        // the last added pod goes away (or a random remote pod)
	PolicyEdit       EventKind = "policy-edit"       // a port of a policy of a local pod's namespace changes
	NamespaceRelabel EventKind = "namespace-relabel" // a namespace's "team" label changes value
	// ClusterPolicyEdit: a ClusterNetworkPolicy's priority changes. Only for clusters with
	// Params.ClusterPolicies, so not in EventKinds.
	ClusterPolicyEdit EventKind = "cluster-policy-edit"
)

// EventKinds lists every kind any cluster takes, in the order the benchmarks report them.
var EventKinds = []EventKind{PodRelabel, PodIPChange, PodAdd, PodDelete, PolicyEdit, NamespaceRelabel}

// ElementOnly reports whether the kind only ever changes set elements in nftpolicy's table (no rule,
// chain or set is added or removed). A policy edit rewrites the rules of its policy chain, a
// cluster policy edit the rules of the pods it selects.
func (k EventKind) ElementOnly() bool { return k != PolicyEdit && k != ClusterPolicyEdit }

// Change is the object one event changed (set) or removed (deleted), as the snapshot now holds it.
type Change struct {
	Pod        *selectors.Pod // the pod's new state
	DeletedPod *selectors.Pod // the pod as it was before it was deleted
	Namespace  *selectors.Namespace
	Policy     *networkingv1.NetworkPolicy
	// ClusterPolicy is the ClusterNetworkPolicy's new state.
	ClusterPolicy *v1beta1.ClusterNetworkPolicy
}

// Apply changes the snapshot by one event of the given kind, records the change in c.Last and
// describes it.
func (c *Cluster) Apply(kind EventKind) (string, error) {
	c.Last = Change{}
	switch kind {
	case PodRelabel:
		i, next := c.relabelTarget()
		p := &c.Snapshot.Pods[i]
		old := p.Labels["app"]
		labels := map[string]string{}
		for k, v := range p.Labels {
			labels[k] = v
		}
		labels["app"] = next
		p.Labels = labels
		c.Last.Pod = p
		return fmt.Sprintf("pod %s/%s app=%s -> app=%s", p.Namespace, p.Name, old, next), nil
	case PodIPChange:
		i := c.randomRemotePod()
		p := &c.Snapshot.Pods[i]
		old := p.IPs[0]
		p.IPs = []netip.Addr{c.freshAddr()}
		c.Last.Pod = p
		return fmt.Sprintf("pod %s/%s %s -> %s", p.Namespace, p.Name, old, p.IPs[0]), nil
	case PodAdd:
		c.added++
		// The new pod is a sibling of a random remote pod: same namespace and labels, so it joins
		// the same peer sets (of interest when Target picks pods that are peers of the node).
		sibling := c.Snapshot.Pods[c.randomRemotePod()]
		pod := c.makePod(sibling.Namespace, fmt.Sprintf("%s%06d", addedPrefix, c.added), c.freshAddr(), "node-1")
		pod.Labels = sibling.Labels
		c.Snapshot.Pods = append(c.Snapshot.Pods, pod)
		c.Last.Pod = &c.Snapshot.Pods[len(c.Snapshot.Pods)-1]
		return fmt.Sprintf("pod %s/%s added with %s", pod.Namespace, pod.Name, pod.IPs[0]), nil
	case PodDelete:
		i := len(c.Snapshot.Pods) - 1
		if !strings.HasPrefix(c.Snapshot.Pods[i].Name, addedPrefix) {
			i = c.randomRemotePod()
		}
		p := c.Snapshot.Pods[i]
		c.Snapshot.Pods[i] = c.Snapshot.Pods[len(c.Snapshot.Pods)-1]
		c.Snapshot.Pods = c.Snapshot.Pods[:len(c.Snapshot.Pods)-1]
		c.Last.DeletedPod = &p
		return fmt.Sprintf("pod %s/%s deleted", p.Namespace, p.Name), nil
	case PolicyEdit:
		return c.editPolicy()
	case ClusterPolicyEdit:
		return c.editClusterPolicy()
	case NamespaceRelabel:
		ns := c.namespace(c.Snapshot.Pods[c.randomRemotePod()].Namespace)
		old := ns.Labels["team"]
		next := old
		for next == old && c.alphabet.teams > 1 {
			next = c.teamValue(c.rng.Intn(c.alphabet.teams))
		}
		ns.Labels = map[string]string{"team": next, "env": ns.Labels["env"]}
		c.Last.Namespace = ns
		return fmt.Sprintf("namespace %s team=%s -> team=%s", ns.Name, old, next), nil
	}
	return "", fmt.Errorf("unknown event kind %q", kind)
}

// flipPeer is a peer podSelector on "app" in a rule of the node's table: it selects pods of one
// namespace (Namespace set), or of the namespaces of one team (Team set).
type flipPeer struct {
	Namespace, Team, App string
}

// flipPeers lists the peer podSelectors of the policies that select a local pod: the only ones
// whose sets are in the node's table. Built once; events never change selectors.
func (c *Cluster) flipPeers() []flipPeer {
	if c.flips != nil {
		return c.flips
	}
	c.flips = []flipPeer{}
	for _, np := range c.Snapshot.Policies {
		if !c.selectsLocalPod(np) {
			continue
		}
		var peers []networkingv1.NetworkPolicyPeer
		for _, rule := range np.Spec.Ingress {
			peers = append(peers, rule.From...)
		}
		for _, rule := range np.Spec.Egress {
			peers = append(peers, rule.To...)
		}
		for _, peer := range peers {
			if peer.PodSelector == nil || peer.PodSelector.MatchLabels["app"] == "" {
				continue
			}
			fp := flipPeer{App: peer.PodSelector.MatchLabels["app"]}
			if peer.NamespaceSelector == nil {
				fp.Namespace = np.Namespace
			} else {
				fp.Team = peer.NamespaceSelector.MatchLabels["team"]
			}
			c.flips = append(c.flips, fp)
		}
	}
	return c.flips
}

// flipValues returns the values of "app" other than old that a peer of the node's table selects in
// namespace ns: relabelling a pod of ns to one of them makes it join that peer's set (and leave
// the sets of its old value), a relabel that flips selectors.
func (c *Cluster) flipValues(ns, old string) []string {
	team := c.namespace(ns).Labels["team"]
	var values []string
	for _, fp := range c.flipPeers() {
		if fp.App != old && (fp.Namespace == ns || (fp.Namespace == "" && fp.Team == team)) {
			values = append(values, fp.App)
		}
	}
	return values
}

// relabelTarget picks a remote pod and a new value of its "app" label, preferring a pod and value
// that flip selectors of the node's table (a bounded number of draws, then any other value).
func (c *Cluster) relabelTarget() (int, string) {
	for range maxTargetDraws / 100 {
		i := c.randomRemotePod()
		p := &c.Snapshot.Pods[i]
		if values := c.flipValues(p.Namespace, p.Labels["app"]); len(values) > 0 {
			return i, values[c.rng.Intn(len(values))]
		}
	}
	i := c.randomRemotePod()
	old, next := c.Snapshot.Pods[i].Labels["app"], c.Snapshot.Pods[i].Labels["app"]
	for next == old && c.alphabet.apps > 1 {
		next = c.appValue(c.rng.Intn(c.alphabet.apps))
	}
	return i, next
}

// selectsLocalPod reports whether a policy's podSelector selects a pod of the node under test. The
// generator's podSelectors are matchLabels only.
func (c *Cluster) selectsLocalPod(np *networkingv1.NetworkPolicy) bool {
	for _, labels := range c.localLabels[np.Namespace] {
		matches := true
		for k, v := range np.Spec.PodSelector.MatchLabels {
			if labels[k] != v {
				matches = false
				break
			}
		}
		if matches {
			return true
		}
	}
	return false
}

// randomRemotePod returns the index of a pod that is not on the node under test: its changes reach
// the node only through peer sets. When Target is set, a pod it accepts is preferred (a bounded
// number of draws, then any remote pod).
func (c *Cluster) randomRemotePod() int {
	fallback := -1
	for draw := 0; ; draw++ {
		i := c.rng.Intn(len(c.Snapshot.Pods))
		p := &c.Snapshot.Pods[i]
		if p.Node == Node {
			continue
		}
		if c.Target == nil || c.Target(p) {
			return i
		}
		if fallback < 0 {
			fallback = i
		}
		if draw >= maxTargetDraws {
			return fallback
		}
	}
}

// maxTargetDraws bounds the search for a pod that Target accepts.
const maxTargetDraws = 10000

func (c *Cluster) namespace(name string) *selectors.Namespace {
	for i := range c.Snapshot.Namespaces {
		if c.Snapshot.Namespaces[i].Name == name {
			return &c.Snapshot.Namespaces[i]
		}
	}
	c.Snapshot.Namespaces = append(c.Snapshot.Namespaces, selectors.Namespace{Name: name, Labels: map[string]string{}})
	return &c.Snapshot.Namespaces[len(c.Snapshot.Namespaces)-1]
}

func (c *Cluster) freshAddr() netip.Addr {
	c.nextAddr++
	return addrAt(netip.IPv4Unspecified(), c.nextAddr)
}

// editPolicy toggles the first port of the first ingress rule of a policy that selects a local pod
// between two numbers, so that the node's table has to change.
func (c *Cluster) editPolicy() (string, error) {
	local := map[string]bool{}
	for _, p := range c.Snapshot.Pods {
		if p.Node == Node {
			local[p.Namespace] = true
		}
	}
	var candidates []int
	for j, np := range c.Snapshot.Policies {
		if local[np.Namespace] && len(np.Spec.Ingress) > 0 && len(np.Spec.Ingress[0].Ports) > 0 && c.selectsLocalPod(np) {
			candidates = append(candidates, j)
		}
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("no policy with ports in a namespace with local pods")
	}
	j := candidates[c.rng.Intn(len(candidates))]
	// Policies are shared with earlier snapshots only through this slice: replace, do not modify.
	np := c.Snapshot.Policies[j].DeepCopy()
	port := &np.Spec.Ingress[0].Ports[0]
	next := intstr.FromInt32(7000)
	if port.Port != nil && port.Port.Type == intstr.Int && port.Port.IntVal == 7000 {
		next = intstr.FromInt32(7001)
	}
	port.Port, port.EndPort = &next, nil
	c.Snapshot.Policies[j] = np
	c.Last.Policy = np
	return fmt.Sprintf("policy %s/%s ingress[0].ports[0] -> %s", np.Namespace, np.Name, next.String()), nil
}

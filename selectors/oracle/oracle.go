// Package oracle is a deliberately naive reading of the NetworkPolicy API text, for tests only: it
// walks every policy for every question and shares nothing with the selectors package but its
// plain data types, so that tests can use it as an oracle for the resolved Model and for the
// dataplane compiled from it.
package oracle

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Connection is the first packet of a new connection. Protocol is TCP, UDP or SCTP, or any other
// value (such as "ICMP") for traffic without ports.
type Connection struct {
	Src, Dst netip.Addr
	Protocol corev1.Protocol
	Port     uint16
}

// Allows reports whether a new connection is allowed.
//
// A new connection is allowed when the source pod's egress allows it (if Src is a pod) AND the
// destination pod's ingress allows it (if Dst is a pod). An address that is no eligible pod has no
// policy of its own.
func Allows(s *selectors.Snapshot, c Connection) bool {
	src := podByIP(s, c.Src)
	dst := podByIP(s, c.Dst)
	if src != nil && !directionAllows(s, src, selectors.Egress, c, dst) {
		return false
	}
	if dst != nil && !directionAllows(s, dst, selectors.Ingress, c, src) {
		return false
	}
	return true
}

// podByIP finds the pod that takes part in policy and has the address: not hostNetwork, not
// Succeeded or Failed.
func podByIP(s *selectors.Snapshot, ip netip.Addr) *selectors.Pod {
	for i := range s.Pods {
		p := &s.Pods[i]
		if p.HostNetwork || p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed {
			continue
		}
		for _, a := range p.IPs {
			if a == ip {
				return p
			}
		}
	}
	return nil
}

// directionAllows answers for one pod and one direction. "Traffic is allowed to a pod if there
// are no NetworkPolicies selecting the pod ... OR if the traffic matches at least one ingress rule
// across all of the NetworkPolicy objects whose podSelector matches the pod." (and likewise for
// egress). other is the pod at the other end, nil when that address is no pod.
//
// ClusterNetworkPolicy tiers come around it: "Policy tiers are evaluated in the following order:
// Admin tier, NetworkPolicy tier, Baseline tier." "v1.NetworkPolicy always makes a final decision
// for selected pods." "If a given connection wasn't allowed or denied by any of the tiers, the
// default kubernetes policy is applied, which says that all pods can communicate with each other."
func directionAllows(s *selectors.Snapshot, pod *selectors.Pod, dir selectors.Direction, c Connection, other *selectors.Pod) bool {
	if v := tierVerdict(s, v1beta1.AdminTier, pod, dir, c, other); v != undecided {
		return v == accepted
	}
	if allowed, isolated := networkPolicyAllows(s, pod, dir, c, other); isolated {
		return allowed
	}
	return tierVerdict(s, v1beta1.BaselineTier, pod, dir, c, other) != denied
}

// networkPolicyAllows answers for the NetworkPolicy tier and reports whether any policy isolates
// the pod in that direction.
func networkPolicyAllows(s *selectors.Snapshot, pod *selectors.Pod, dir selectors.Direction, c Connection, other *selectors.Pod) (bool, bool) {
	isolated := false
	for _, np := range s.Policies {
		if np == nil || np.Namespace != pod.Namespace || !selectorMatches(&np.Spec.PodSelector, pod.Labels) {
			continue
		}
		if !affects(np, dir) {
			continue
		}
		isolated = true
		if dir == selectors.Ingress {
			for _, rule := range np.Spec.Ingress {
				// For ingress the named ports are those of the pod being reached: this pod.
				if ruleMatches(s, np.Namespace, rule.From, rule.Ports, c.Src, other, c, pod) {
					return true, true
				}
			}
		} else {
			for _, rule := range np.Spec.Egress {
				// For egress they are the destination's, however the peer matched it (an ipBlock
				// too); an address that is no pod's has none.
				if ruleMatches(s, np.Namespace, rule.To, rule.Ports, c.Dst, other, c, other) {
					return true, true
				}
			}
		}
	}
	return false, isolated
}

// affects reads policyTypes: "If this field is not specified, it will default based on the
// existence of ingress or egress rules; policies that contain an egress section are assumed to
// affect egress, and all policies ... are assumed to affect ingress."
func affects(np *networkingv1.NetworkPolicy, dir selectors.Direction) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return dir == selectors.Ingress || len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		if (t == networkingv1.PolicyTypeIngress && dir == selectors.Ingress) || (t == networkingv1.PolicyTypeEgress && dir == selectors.Egress) {
			return true
		}
	}
	return false
}

// ruleMatches: "The traffic must match both ports and from" (or to). addr is the other end's
// address, addrPod its pod; portPod is the pod whose named ports count.
func ruleMatches(s *selectors.Snapshot, policyNS string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort,
	addr netip.Addr, addrPod *selectors.Pod, c Connection, portPod *selectors.Pod) bool {
	matched := len(peers) == 0 // "If this field is empty or missing, this rule matches all sources"
	for i := range peers {
		if peerMatches(s, policyNS, &peers[i], addr, addrPod) {
			matched = true
		}
	}
	if !matched {
		return false
	}
	if len(ports) == 0 { // "If this field is empty or missing, this rule matches all ports"
		return true
	}
	for i := range ports {
		if portMatches(&ports[i], c, portPod) {
			return true
		}
	}
	return false
}

func peerMatches(s *selectors.Snapshot, policyNS string, peer *networkingv1.NetworkPolicyPeer, addr netip.Addr, addrPod *selectors.Pod) bool {
	if peer.IPBlock != nil {
		if peer.PodSelector != nil || peer.NamespaceSelector != nil {
			return false // "If this field is set then neither of the other fields can be."
		}
		cidr, err := parseCIDR(peer.IPBlock.CIDR)
		if err != nil || !cidr.Contains(addr) {
			return false
		}
		excluded := false
		for _, e := range peer.IPBlock.Except {
			except, err := parseCIDR(e)
			if err != nil {
				return false // a block that cannot be read entirely matches nothing
			}
			if except.Contains(addr) {
				excluded = true
			}
		}
		return !excluded
	}
	if peer.PodSelector == nil && peer.NamespaceSelector == nil {
		return false
	}
	if addrPod == nil {
		return false
	}
	if peer.NamespaceSelector == nil {
		// "Otherwise it selects the pods matching podSelector in the policy's own namespace."
		if addrPod.Namespace != policyNS {
			return false
		}
	} else if !selectorMatches(peer.NamespaceSelector, namespaceLabels(s, addrPod.Namespace)) {
		return false
	}
	// "if present but empty, it selects all pods"; absent is no constraint.
	return peer.PodSelector == nil || selectorMatches(peer.PodSelector, addrPod.Labels)
}

// namespaceLabels returns a namespace's labels, with kubernetes.io/metadata.name which the API
// server always sets.
func namespaceLabels(s *selectors.Snapshot, name string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": name}
	for _, ns := range s.Namespaces {
		if ns.Name == name {
			for k, v := range ns.Labels {
				out[k] = v
			}
		}
	}
	return out
}

// portMatches: "If present, only traffic on the specified protocol AND port will be matched."
func portMatches(p *networkingv1.NetworkPolicyPort, c Connection, portPod *selectors.Pod) bool {
	protocol := corev1.ProtocolTCP // "If not specified, this field defaults to TCP."
	if p.Protocol != nil {
		protocol = *p.Protocol
	}
	if protocol != c.Protocol {
		return false
	}
	if protocol != corev1.ProtocolTCP && protocol != corev1.ProtocolUDP && protocol != corev1.ProtocolSCTP {
		return false
	}
	if p.Port == nil {
		return p.EndPort == nil // "If this field is not provided, this matches all port names and numbers."
	}
	if p.Port.Type == intstr.String {
		// "port represents the port on the given protocol. This can either be a numerical or named
		// port on a pod."
		if p.EndPort != nil || portPod == nil {
			return false
		}
		for _, cp := range portPod.Ports {
			cpProtocol := cp.Protocol
			if cpProtocol == "" {
				cpProtocol = corev1.ProtocolTCP
			}
			if cp.Name == p.Port.StrVal && cpProtocol == protocol && cp.Number == int32(c.Port) {
				return true
			}
		}
		return false
	}
	first, last := p.Port.IntVal, p.Port.IntVal
	if p.EndPort != nil {
		last = *p.EndPort
	}
	if first < 1 || last < first || last > 65535 {
		return false
	}
	return first <= int32(c.Port) && int32(c.Port) <= last
}

// selectorMatches: an invalid selector matches nothing.
func selectorMatches(ls *metav1.LabelSelector, set map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	return err == nil && sel.Matches(labels.Set(set))
}

// parseCIDR reads an ipBlock cidr or except as the API server stored it: host bits are masked and
// IPv4 octets with leading zeros are decimal (objects created before strict validation may hold
// either). Zones are not addresses of a block.
func parseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		addr, bits, ok := strings.Cut(s, "/")
		octets := strings.Split(addr, ".")
		if !ok || len(octets) != 4 {
			return netip.Prefix{}, err
		}
		for i, o := range octets {
			n, convErr := strconv.ParseUint(o, 10, 8)
			if convErr != nil || o == "" || len(o) > 3 {
				return netip.Prefix{}, err
			}
			octets[i] = strconv.FormatUint(n, 10)
		}
		if p, err = netip.ParsePrefix(strings.Join(octets, ".") + "/" + bits); err != nil {
			return netip.Prefix{}, err
		}
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zone in CIDR %q", s)
	}
	return p.Masked(), nil
}

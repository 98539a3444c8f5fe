package selectors

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Connection is the first packet of a new connection. Protocol is TCP, UDP or SCTP, or any other
// value (such as "ICMP") for traffic without ports.
type Connection struct {
	Src, Dst netip.Addr
	Protocol corev1.Protocol
	Port     uint16
}

// Allows is a deliberately naive reading of the NetworkPolicy API text: it walks every policy for
// every question and shares nothing with Resolve but label selector and CIDR parsing, so that tests
// can use it as an oracle for Resolve and for the dataplane compiled from it.
//
// A new connection is allowed when the source pod's egress allows it (if Src is a pod) AND the
// destination pod's ingress allows it (if Dst is a pod). An address that is no eligible pod has no
// policy of its own.
func Allows(s *Snapshot, c Connection) bool {
	src := oraclePodByIP(s, c.Src)
	dst := oraclePodByIP(s, c.Dst)
	if src != nil && !oracleDirectionAllows(s, src, Egress, c, dst) {
		return false
	}
	if dst != nil && !oracleDirectionAllows(s, dst, Ingress, c, src) {
		return false
	}
	return true
}

// oraclePodByIP finds the pod that takes part in policy and has the address: not hostNetwork, not
// Succeeded or Failed.
func oraclePodByIP(s *Snapshot, ip netip.Addr) *Pod {
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

// oracleDirectionAllows answers for one pod and one direction. "Traffic is allowed to a pod if there
// are no NetworkPolicies selecting the pod ... OR if the traffic matches at least one ingress rule
// across all of the NetworkPolicy objects whose podSelector matches the pod." (and likewise for
// egress). other is the pod at the other end, nil when that address is no pod.
func oracleDirectionAllows(s *Snapshot, pod *Pod, dir Direction, c Connection, other *Pod) bool {
	isolated := false
	for _, np := range s.Policies {
		if np == nil || np.Namespace != pod.Namespace || !oracleSelectorMatches(&np.Spec.PodSelector, pod.Labels) {
			continue
		}
		if !oracleAffects(np, dir) {
			continue
		}
		isolated = true
		if dir == Ingress {
			for _, rule := range np.Spec.Ingress {
				// For ingress the named ports are those of the pod being reached: this pod.
				if oracleRuleMatches(s, np.Namespace, rule.From, rule.Ports, c.Src, other, c, pod) {
					return true
				}
			}
		} else {
			for _, rule := range np.Spec.Egress {
				// For egress they are the destination's, however the peer matched it (an ipBlock
				// too); an address that is no pod's has none.
				if oracleRuleMatches(s, np.Namespace, rule.To, rule.Ports, c.Dst, other, c, other) {
					return true
				}
			}
		}
	}
	return !isolated
}

// oracleAffects reads policyTypes: "If this field is not specified, it will default based on the
// existence of ingress or egress rules; policies that contain an egress section are assumed to
// affect egress, and all policies ... are assumed to affect ingress."
func oracleAffects(np *networkingv1.NetworkPolicy, dir Direction) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return dir == Ingress || len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		if (t == networkingv1.PolicyTypeIngress && dir == Ingress) || (t == networkingv1.PolicyTypeEgress && dir == Egress) {
			return true
		}
	}
	return false
}

// oracleRuleMatches: "The traffic must match both ports and from" (or to). addr is the other end's
// address, addrPod its pod; portPod is the pod whose named ports count.
func oracleRuleMatches(s *Snapshot, policyNS string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort,
	addr netip.Addr, addrPod *Pod, c Connection, portPod *Pod) bool {
	peerMatches := len(peers) == 0 // "If this field is empty or missing, this rule matches all sources"
	for i := range peers {
		if oraclePeerMatches(s, policyNS, &peers[i], addr, addrPod) {
			peerMatches = true
		}
	}
	if !peerMatches {
		return false
	}
	if len(ports) == 0 { // "If this field is empty or missing, this rule matches all ports"
		return true
	}
	for i := range ports {
		if oraclePortMatches(&ports[i], c, portPod) {
			return true
		}
	}
	return false
}

func oraclePeerMatches(s *Snapshot, policyNS string, peer *networkingv1.NetworkPolicyPeer, addr netip.Addr, addrPod *Pod) bool {
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
	} else if !oracleSelectorMatches(peer.NamespaceSelector, oracleNamespaceLabels(s, addrPod.Namespace)) {
		return false
	}
	// "if present but empty, it selects all pods"; absent is no constraint.
	return peer.PodSelector == nil || oracleSelectorMatches(peer.PodSelector, addrPod.Labels)
}

// oracleNamespaceLabels returns a namespace's labels, with kubernetes.io/metadata.name which the API
// server always sets.
func oracleNamespaceLabels(s *Snapshot, name string) map[string]string {
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

// oraclePortMatches: "If present, only traffic on the specified protocol AND port will be matched."
func oraclePortMatches(p *networkingv1.NetworkPolicyPort, c Connection, portPod *Pod) bool {
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

// oracleSelectorMatches: an invalid selector matches nothing.
func oracleSelectorMatches(ls *metav1.LabelSelector, set map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	return err == nil && sel.Matches(labels.Set(set))
}

package selectors

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// clusterPeer is an ingress or egress peer of a ClusterNetworkPolicy rule (ingress peers only have
// namespaces and pods).
type clusterPeer struct {
	namespaces  *metav1.LabelSelector
	pods        *v1beta1.NamespacedPod
	nodes       *metav1.LabelSelector
	networks    []v1beta1.CIDR
	domainNames []v1beta1.DomainName
}

// readClusterPeer reads one peer into NetworkPolicy peers (a networks peer is one per CIDR). ok is
// false when the peer cannot be enforced as written: the caller fails the rule closed.
//
// "Exactly one of the fields must be set for a given peer and this is enforced by the validation
// rules on the CRD. If an implementation sees no fields are set then it can infer that the deployed
// CRD is of an incompatible version with an unknown field. In that case it should fail closed."
func (c *policyCompiler) readClusterPeer(p *clusterPeer, field string) ([]peer, bool) {
	set := 0
	for _, present := range []bool{p.namespaces != nil, p.pods != nil, p.nodes != nil, p.networks != nil, p.domainNames != nil} {
		if present {
			set++
		}
	}
	if set != 1 {
		c.problem(field, fmt.Sprintf("exactly one field must be set, found %d", set))
		return nil, false
	}
	switch {
	case p.namespaces != nil:
		// "Namespaces defines a way to select all pods within a set of Namespaces." The same peer as
		// a NetworkPolicy peer with this namespaceSelector and an empty podSelector.
		ns, err := parseSelector(p.namespaces)
		if err != nil {
			c.problem(field+".namespaces", err.Error())
			return nil, false
		}
		return []peer{crossNamespacePeer(ns, everything())}, true
	case p.pods != nil:
		// "Pods defines a way to select a set of pods in a set of namespaces."
		ns, err := parseSelector(&p.pods.NamespaceSelector)
		if err != nil {
			c.problem(field+".pods.namespaceSelector", err.Error())
			return nil, false
		}
		pods, err := parseSelector(&p.pods.PodSelector)
		if err != nil {
			c.problem(field+".pods.podSelector", err.Error())
			return nil, false
		}
		return []peer{crossNamespacePeer(ns, pods)}, true
	case p.networks != nil:
		return c.readNetworks(p.networks, field+".networks")
	case p.nodes != nil:
		// Node addresses are not part of the Snapshot yet.
		c.problem(field+".nodes", "nodes peers are not supported yet")
		return nil, false
	default:
		// domainNames is experimental and out of scope: never silently ignored.
		c.problem(field+".domainNames", "domainNames peers are not supported")
		return nil, false
	}
}

// readNetworks: "Networks defines a way to select peers via CIDR blocks. ... note that
// cluster-internal traffic will be checked against the rule as well." Each CIDR is the same peer as
// a NetworkPolicy ipBlock with that cidr and no except, pod addresses included.
func (c *policyCompiler) readNetworks(cidrs []v1beta1.CIDR, field string) ([]peer, bool) {
	if len(cidrs) == 0 {
		c.problem(field, "no CIDRs")
		return nil, false
	}
	out := make([]peer, 0, len(cidrs))
	for i, s := range cidrs {
		cidr, err := parseCIDR(string(s))
		if err != nil {
			c.problem(fmt.Sprintf("%s[%d]", field, i), err.Error())
			return nil, false
		}
		out = append(out, peer{canonical: "ipBlock=" + cidr.String(), isIPBlock: true, ipRanges: []AddrRange{rangeOfPrefix(cidr)}, cidr: cidr})
	}
	return out, true
}

// readProtocols reads a rule's protocols. "If unspecified, protocol-specific attributes will not
// be used to match traffic." It returns the numeric ranges, the destination port names, and
// whether everything could be read (readable is passed through when true).
func (c *policyCompiler) readProtocols(protocols []v1beta1.ClusterNetworkPolicyProtocol, field string, readable bool) (rulePorts, []string, bool) {
	if len(protocols) == 0 {
		return rulePorts{all: true}, nil, readable
	}
	var rp rulePorts
	var named []string
	for i := range protocols {
		p := &protocols[i]
		f := fmt.Sprintf("%s[%d]", field, i)
		type entry struct {
			protocol corev1.Protocol
			port     *v1beta1.Port
		}
		var entries []entry
		if p.TCP != nil {
			entries = append(entries, entry{corev1.ProtocolTCP, p.TCP.DestinationPort})
		}
		if p.UDP != nil {
			entries = append(entries, entry{corev1.ProtocolUDP, p.UDP.DestinationPort})
		}
		if p.SCTP != nil {
			entries = append(entries, entry{corev1.ProtocolSCTP, p.SCTP.DestinationPort})
		}
		// "Exactly one field must be set."
		switch n := len(entries) + boolCount(p.DestinationNamedPort != ""); {
		case n != 1:
			c.problem(f, fmt.Sprintf("exactly one field must be set, found %d", n))
			readable = false
			continue
		case p.DestinationNamedPort != "":
			named = append(named, p.DestinationNamedPort)
			continue
		}
		r, ok := c.readPort(entries[0].protocol, entries[0].port, f)
		readable = readable && ok
		rp.numeric = append(rp.numeric, r)
	}
	rp.numeric = normalizePorts(rp.numeric)
	return rp, named, readable
}

// readPort: "Port matches on port number. You must specify either Port or Range." Without
// destinationPort, every port of the protocol.
func (c *policyCompiler) readPort(protocol corev1.Protocol, p *v1beta1.Port, field string) (PortRange, bool) {
	all := PortRange{Protocol: protocol, First: 0, Last: 65535}
	if p == nil {
		return all, true
	}
	switch {
	case p.Range == nil && p.Number >= 1 && p.Number <= 65535:
		return PortRange{Protocol: protocol, First: uint16(p.Number), Last: uint16(p.Number)}, true
	case p.Range != nil && p.Number == 0 && p.Range.Start >= 1 && p.Range.Start < p.Range.End && p.Range.End <= 65535:
		// "start defines a network port that is the start of a port range, the Start value must be
		// less than End."
		return PortRange{Protocol: protocol, First: uint16(p.Range.Start), Last: uint16(p.Range.End)}, true
	}
	c.problem(field, "destinationPort must be a port number or a range of 1-65535 with start < end")
	return all, false
}

func boolCount(b bool) int {
	if b {
		return 1
	}
	return 0
}

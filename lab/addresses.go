package lab

import (
	"net/netip"
	"strings"
)

// The lab's address ranges beyond those of lab/netlab's address plan: the Service CIDRs the API
// server allocates ClusterIPs from, outside the pods' and the nodes' ranges, and the pod ranges
// kube-proxy's --cluster-cidr names (pod traffic to a Service is not masqueraded, as in a cluster).
var (
	serviceCIDRv4 = netip.MustParsePrefix("198.19.240.0/20")
	serviceCIDRv6 = netip.MustParsePrefix("fd18:ffff:5e::/112")
	podCIDRv4     = netip.MustParsePrefix("198.18.0.0/16")
	podCIDRv6     = netip.MustParsePrefix("fd18::/96")
)

// ServiceCIDRs are the ranges of the lab's ClusterIPs, one per family the lab publishes, primary
// first, as the API server's --service-cluster-ip-range.
func (l *Lab) ServiceCIDRs() []netip.Prefix {
	return l.byFamily(serviceCIDRv4, serviceCIDRv6)
}

// podCIDRs are the ranges of the lab's pod addresses, one per family the lab publishes.
func (l *Lab) podCIDRs() []netip.Prefix {
	return l.byFamily(podCIDRv4, podCIDRv6)
}

// byFamily picks among an IPv4 and an IPv6 value those of the lab's families, primary first.
func (l *Lab) byFamily(v4, v6 netip.Prefix) []netip.Prefix {
	switch l.opts.IPFamily {
	case FamilyIPv6:
		return []netip.Prefix{v6}
	case FamilyDual:
		return []netip.Prefix{v4, v6}
	}
	return []netip.Prefix{v4}
}

// prefixList writes prefixes as a flag's comma-separated list.
func prefixList(prefixes []netip.Prefix) string {
	s := make([]string, len(prefixes))
	for i, p := range prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

package selectors

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// rulePorts is the understood ports list of one rule.
type rulePorts struct {
	// all: "If this field is empty or missing, this rule matches all ports".
	all     bool
	numeric []PortRange // normalized
	named   []namedPort
}

// namedPort is a port given by name: resolved against the local pod for ingress, against every
// destination pod for egress.
type namedPort struct {
	name     string
	protocol corev1.Protocol
	field    string // e.g. spec.ingress[0].ports[1].port
}

func (c *policyCompiler) compilePorts(ports []networkingv1.NetworkPolicyPort, field string) rulePorts {
	if len(ports) == 0 {
		return rulePorts{all: true}
	}
	var rp rulePorts
	for i := range ports {
		numeric, named, ok := c.compilePort(&ports[i], fmt.Sprintf("%s[%d]", field, i))
		switch {
		case !ok:
		case named != nil:
			rp.named = append(rp.named, *named)
		default:
			rp.numeric = append(rp.numeric, numeric)
		}
	}
	rp.numeric = normalizePorts(rp.numeric)
	return rp
}

// compilePort understands one entry of a rule's ports: a numeric range or a named port. It reports
// false, with a problem, for an entry that matches nothing.
func (c *policyCompiler) compilePort(np *networkingv1.NetworkPolicyPort, f string) (PortRange, *namedPort, bool) {
	// "If not specified, this field defaults to TCP."
	protocol := corev1.ProtocolTCP
	if np.Protocol != nil {
		protocol = *np.Protocol
	}
	switch protocol {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		c.problem(f+".protocol", fmt.Sprintf("unsupported protocol %q; the port matches nothing", protocol))
		return PortRange{}, nil, false
	}
	switch {
	case np.Port == nil && np.EndPort != nil:
		// "This field cannot be defined if the port field is not defined"
		c.problem(f+".endPort", "endPort without port; the port matches nothing")
		return PortRange{}, nil, false
	case np.Port == nil:
		// "If this field is not provided, this matches all port names and numbers."
		return PortRange{Protocol: protocol, First: 0, Last: 65535}, nil, true
	case np.Port.Type == intstr.String:
		if np.EndPort != nil {
			// "... or if the port field is defined as a named (string) port."
			c.problem(f+".endPort", "endPort with a named port; the port matches nothing")
			return PortRange{}, nil, false
		}
		return PortRange{}, &namedPort{name: np.Port.StrVal, protocol: protocol, field: f + ".port"}, true
	}
	first, last := np.Port.IntVal, np.Port.IntVal
	if np.EndPort != nil {
		// "endPort indicates that the range of ports from port to endPort if set, inclusive,
		// should be allowed by the policy."
		last = *np.EndPort
	}
	switch {
	case first < 1 || first > 65535:
		c.problem(f+".port", fmt.Sprintf("port %d is out of range; the port matches nothing", first))
		return PortRange{}, nil, false
	case last < first || last > 65535:
		// "The endPort must be equal or greater than port."
		c.problem(f+".endPort", fmt.Sprintf("endPort %d is not within [port, 65535]; the port matches nothing", last))
		return PortRange{}, nil, false
	}
	return PortRange{Protocol: protocol, First: uint16(first), Last: uint16(last)}, nil, true
}

// NamedPortNumbers returns the numbers a pod declares for a port name and protocol.
func NamedPortNumbers(p *Pod, name string, protocol corev1.Protocol) []uint16 {
	var out []uint16
	for _, cp := range p.Ports {
		cpProtocol := cp.Protocol
		if cpProtocol == "" {
			cpProtocol = corev1.ProtocolTCP
		}
		if cp.Name == name && cpProtocol == protocol && cp.Number >= 1 && cp.Number <= 65535 {
			out = append(out, uint16(cp.Number))
		}
	}
	return out
}

// normalizePorts sorts ranges by protocol and first port and merges overlapping and adjacent ones.
func normalizePorts(rs []PortRange) []PortRange {
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Protocol != rs[j].Protocol {
			return rs[i].Protocol < rs[j].Protocol
		}
		if rs[i].First != rs[j].First {
			return rs[i].First < rs[j].First
		}
		return rs[i].Last < rs[j].Last
	})
	out := []PortRange{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Protocol == last.Protocol && uint32(r.First) <= uint32(last.Last)+1 {
			if r.Last > last.Last {
				last.Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

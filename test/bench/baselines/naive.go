package baselines

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// NaiveTable is the table baseline B owns.
const NaiveTable = "naive-baseline"

// Naive is baseline B's ruleset: two chains of linear rules.
type Naive struct {
	Ingress []NaiveRule // hook forward, priority filter + 10
	Egress  []NaiveRule // hooks forward and input, priority filter
}

// NaiveRule matches a local pod's address (destination for ingress, source for egress), optionally a
// peer range (the other end) and optionally a protocol with a port range; Drop rules end a pod's
// rules.
type NaiveRule struct {
	Pod        netip.Addr
	Peer       *selectors.AddrRange // nil: any peer
	Proto      uint8                // 0: any protocol (then no ports)
	FirstPort  uint16               // with Proto: FirstPort == LastPort == 0 means every port
	LastPort   uint16
	Drop       bool
	PeerIsDest bool // named-port rules of ingress never exist; egress peers are destinations
}

const (
	protoTCP  uint8 = 6
	protoUDP  uint8 = 17
	protoSCTP uint8 = 132
)

// NaiveLayout lowers a model into baseline B: for every isolated local pod and direction, one accept
// rule per (peer range, port range) of every rule, one per (service) of every named port, then a drop
// rule for the pod. Accepts come first in each chain, drops last, so that order does not matter among
// pods.
func NaiveLayout(m *selectors.Model) (*Naive, error) {
	sets := map[string]selectors.AddressSet{}
	for _, s := range m.AddressSets {
		sets[s.ID] = s
	}
	services := map[string]selectors.ServiceSet{}
	for _, s := range m.ServiceSets {
		services[s.ID] = s
	}
	n := &Naive{}
	var ingressDrops, egressDrops []NaiveRule
	for _, pod := range m.LocalPods {
		for _, ip := range pod.IPs {
			if !ip.Is4() {
				return nil, fmt.Errorf("pod %s: baseline B handles IPv4 only, got %s", pod.Key(), ip)
			}
			if pod.Ingress != nil {
				rules, err := naiveRules(ip, pod.Ingress.Rules, sets, services, false)
				if err != nil {
					return nil, fmt.Errorf("pod %s ingress: %w", pod.Key(), err)
				}
				n.Ingress = append(n.Ingress, rules...)
				ingressDrops = append(ingressDrops, NaiveRule{Pod: ip, Drop: true})
			}
			if pod.Egress != nil {
				rules, err := naiveRules(ip, pod.Egress.Rules, sets, services, true)
				if err != nil {
					return nil, fmt.Errorf("pod %s egress: %w", pod.Key(), err)
				}
				n.Egress = append(n.Egress, rules...)
				egressDrops = append(egressDrops, NaiveRule{Pod: ip, Drop: true, PeerIsDest: true})
			}
		}
	}
	n.Ingress = append(n.Ingress, ingressDrops...)
	n.Egress = append(n.Egress, egressDrops...)
	return n, nil
}

func naiveRules(pod netip.Addr, rules []selectors.Rule, sets map[string]selectors.AddressSet, services map[string]selectors.ServiceSet, egress bool) ([]NaiveRule, error) {
	var out []NaiveRule
	for _, r := range rules {
		var peers []*selectors.AddrRange
		if r.AnyPeer {
			peers = []*selectors.AddrRange{nil}
		} else {
			set, ok := sets[r.Peers]
			if !ok {
				return nil, fmt.Errorf("rule %s[%d]: unknown address set %s", r.Policy, r.Index, r.Peers)
			}
			for i := range set.Ranges {
				if !set.Ranges[i].From.Is4() {
					return nil, fmt.Errorf("address set %s: baseline B handles IPv4 only", set.ID)
				}
				peers = append(peers, &set.Ranges[i])
			}
		}
		for _, peer := range peers {
			base := NaiveRule{Pod: pod, Peer: peer, PeerIsDest: egress}
			if r.AllPorts {
				out = append(out, base)
				continue
			}
			for _, p := range r.Ports {
				rule := base
				rule.Proto = protoOf(p.Protocol)
				if !p.AllOfProtocol() {
					rule.FirstPort, rule.LastPort = p.First, p.Last
				}
				out = append(out, rule)
			}
		}
		for _, id := range r.NamedPorts {
			for _, s := range services[id].Services {
				if !s.Addr.Is4() {
					return nil, fmt.Errorf("service set %s: baseline B handles IPv4 only", id)
				}
				out = append(out, NaiveRule{Pod: pod, Peer: &selectors.AddrRange{From: s.Addr, To: s.Addr}, Proto: protoOf(s.Protocol), FirstPort: s.Port, LastPort: s.Port, PeerIsDest: egress})
			}
		}
	}
	return out, nil
}

func protoOf(p corev1.Protocol) uint8 {
	switch p {
	case corev1.ProtocolUDP:
		return protoUDP
	case corev1.ProtocolSCTP:
		return protoSCTP
	default:
		return protoTCP
	}
}

func protoName(p uint8) string {
	switch p {
	case protoUDP:
		return "udp"
	case protoSCTP:
		return "sctp"
	default:
		return "tcp"
	}
}

// Rules counts the rules of the table, the three jump rules and two conntrack rules included.
func (n *Naive) Rules() int { return len(n.Ingress) + len(n.Egress) + naiveFixedRules }

// naiveFixedRules: `ct state established,related accept` in both chains, and the jumps of the two
// egress base chains.
const naiveFixedRules = 4

// Render writes the table as the `nft -f` script that a full sync would send: replace the table
// (add, delete, re-create) and fill it, like nftpolicy's full replacement.
func (n *Naive) Render() string {
	var b strings.Builder
	t := "inet " + NaiveTable
	fmt.Fprintf(&b, "add table %s\ndelete table %s\nadd table %s\n", t, t, t)
	fmt.Fprintf(&b, "add chain %s egress-forward { type filter hook forward priority filter; policy accept; }\n", t)
	fmt.Fprintf(&b, "add chain %s egress-input { type filter hook input priority filter; policy accept; }\n", t)
	fmt.Fprintf(&b, "add chain %s ingress { type filter hook forward priority filter + 10; policy accept; }\n", t)
	fmt.Fprintf(&b, "add chain %s egress\n", t)
	fmt.Fprintf(&b, "add rule %s egress-forward jump egress\n", t)
	fmt.Fprintf(&b, "add rule %s egress-input jump egress\n", t)
	for _, chain := range []struct {
		name  string
		rules []NaiveRule
	}{{"egress", n.Egress}, {"ingress", n.Ingress}} {
		fmt.Fprintf(&b, "add rule %s %s ct state established,related accept\n", t, chain.name)
		for _, r := range chain.rules {
			fmt.Fprintf(&b, "add rule %s %s %s\n", t, chain.name, r.String())
		}
	}
	return b.String()
}

// String renders the rule's matches and verdict in nft syntax.
func (r NaiveRule) String() string {
	podField, peerField := "daddr", "saddr"
	if r.PeerIsDest {
		podField, peerField = "saddr", "daddr"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ip %s %s", podField, r.Pod)
	if r.Peer != nil {
		if r.Peer.From == r.Peer.To {
			fmt.Fprintf(&b, " ip %s %s", peerField, r.Peer.From)
		} else {
			fmt.Fprintf(&b, " ip %s %s-%s", peerField, r.Peer.From, r.Peer.To)
		}
	}
	if r.Proto != 0 {
		fmt.Fprintf(&b, " meta l4proto %s", protoName(r.Proto))
		switch {
		case r.FirstPort == 0 && r.LastPort == 0:
		case r.FirstPort == r.LastPort:
			fmt.Fprintf(&b, " th dport %d", r.FirstPort)
		default:
			fmt.Fprintf(&b, " th dport %d-%d", r.FirstPort, r.LastPort)
		}
	}
	if r.Drop {
		b.WriteString(" drop")
	} else {
		b.WriteString(" accept")
	}
	return b.String()
}

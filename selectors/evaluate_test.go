package selectors_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/selectors/oracle"
)

// Model evaluation, independent of Allows: what a dataplane programmed from the Models of every
// node would decide.

// resolveEveryNode resolves the snapshot once per node that runs a pod.
func resolveEveryNode(s *selectors.Snapshot) []*selectors.Model {
	nodes := map[string]bool{s.Node: true}
	for _, p := range s.Pods {
		nodes[p.Node] = true
	}
	var models []*selectors.Model
	for node := range nodes {
		perNode := *s
		perNode.Node = node
		models = append(models, selectors.Resolve(&perNode))
	}
	return models
}

func modelsAllow(models []*selectors.Model, c oracle.Connection) bool {
	for _, m := range models {
		for i := range m.LocalPods {
			lp := &m.LocalPods[i]
			if hasAddr(lp.IPs, c.Src) && !directionAllows(m, lp.ClusterEgress, lp.Egress, c.Dst, c) {
				return false
			}
			if hasAddr(lp.IPs, c.Dst) && !directionAllows(m, lp.ClusterIngress, lp.Ingress, c.Src, c) {
				return false
			}
		}
	}
	return true
}

func hasAddr(ips []netip.Addr, a netip.Addr) bool {
	for _, ip := range ips {
		if ip == a {
			return true
		}
	}
	return false
}

// directionAllows evaluates one direction of a local pod: the Admin tier's rules, then its
// NetworkPolicy isolation, then the Baseline tier's rules; the first decision wins.
func directionAllows(m *selectors.Model, cluster *selectors.ClusterRules, iso *selectors.Isolation, peer netip.Addr, c oracle.Connection) bool {
	if cluster != nil {
		if allowed, decided := tierDecides(m, cluster.Admin, peer, c); decided {
			return allowed
		}
	}
	if iso != nil {
		return isolationAllows(m, iso, peer, c)
	}
	if cluster != nil {
		if allowed, decided := tierDecides(m, cluster.Baseline, peer, c); decided {
			return allowed
		}
	}
	return true
}

// tierDecides walks a tier's rules in order: the first that matches decides, a Pass ends the tier
// undecided.
func tierDecides(m *selectors.Model, rules []selectors.ClusterRule, peer netip.Addr, c oracle.Connection) (allowed, decided bool) {
	for _, r := range rules {
		if !r.AnyPeer && !setContains(m, r.Peers, peer) {
			continue
		}
		if !portsMatch(m, r.AllPorts, r.Ports, r.NamedPorts, c) {
			continue
		}
		switch r.Action {
		case selectors.Accept:
			return true, true
		case selectors.Pass:
			return false, false
		default:
			return false, true
		}
	}
	return false, false
}

// isolationAllows: peer is the address at the other end.
func isolationAllows(m *selectors.Model, iso *selectors.Isolation, peer netip.Addr, c oracle.Connection) bool {
	for _, r := range iso.Rules {
		if !r.AnyPeer && !setContains(m, r.Peers, peer) {
			continue
		}
		if portsMatch(m, r.AllPorts, r.Ports, r.NamedPorts, c) {
			return true
		}
	}
	return false
}

func portsMatch(m *selectors.Model, all bool, ports []selectors.PortRange, named []string, c oracle.Connection) bool {
	if all {
		return true
	}
	for _, pr := range ports {
		if pr.Protocol == c.Protocol && pr.First <= c.Port && c.Port <= pr.Last {
			return true
		}
	}
	for _, id := range named {
		for _, ss := range m.ServiceSets {
			if ss.ID != id {
				continue
			}
			for _, svc := range ss.Services {
				if svc == (selectors.Service{Addr: c.Dst, Protocol: c.Protocol, Port: c.Port}) {
					return true
				}
			}
		}
	}
	return false
}

func setContains(m *selectors.Model, id string, a netip.Addr) bool {
	for _, set := range m.AddressSets {
		if set.ID == id {
			for _, r := range set.Ranges {
				if r.From.BitLen() == a.BitLen() && r.From.Compare(a) <= 0 && a.Compare(r.To) <= 0 {
					return true
				}
			}
		}
	}
	return false
}

// checkAgainstOracle checks that the Models and Allows agree on every connection between the
// snapshot's addresses (and a few outside ones), for a few protocols and ports.
func checkAgainstOracle(t *testing.T, s *selectors.Snapshot, extra ...oracle.Connection) {
	t.Helper()
	models := resolveEveryNode(s)
	addrs := []netip.Addr{netip.MustParseAddr("198.19.0.1"), netip.MustParseAddr("fd18::ff:1")}
	var ports []uint16
	for _, p := range s.Pods {
		addrs = append(addrs, p.IPs...)
		for _, cp := range p.Ports {
			ports = append(ports, uint16(cp.Number))
		}
	}
	ports = append(ports, 1, 53, 79, 80, 81, 443, 8080, 65535)
	var conns []oracle.Connection
	for _, src := range addrs {
		for _, dst := range addrs {
			conns = append(conns, oracle.Connection{Src: src, Dst: dst, Protocol: icmp})
			for _, protocol := range []corev1.Protocol{tcp, udp, sctp} {
				for _, p := range ports {
					conns = append(conns, oracle.Connection{Src: src, Dst: dst, Protocol: protocol, Port: p})
				}
			}
		}
	}
	for _, c := range append(conns, extra...) {
		if got, want := modelsAllow(models, c), oracle.Allows(s, c); got != want {
			t.Errorf("%v: Model says %v, Allows says %v", c, got, want)
			return
		}
	}
}

// Model rendering for comparisons: one line per isolation and per rule, with set IDs replaced by
// their members.

func renderModel(m *selectors.Model) []string {
	var lines []string
	for _, lp := range m.LocalPods {
		for _, d := range []struct {
			dir selectors.Direction
			iso *selectors.Isolation
		}{{selectors.Ingress, lp.Ingress}, {selectors.Egress, lp.Egress}} {
			if d.iso == nil {
				continue
			}
			var refs []string
			for _, ref := range d.iso.Policies {
				refs = append(refs, ref.String())
			}
			lines = append(lines, fmt.Sprintf("%s %s isolated by %s", lp.Key(), d.dir, strings.Join(refs, ",")))
			for _, r := range d.iso.Rules {
				lines = append(lines, fmt.Sprintf("%s %s %s[%d] %s", lp.Key(), d.dir, r.Policy, r.Index, renderRule(m, r)))
			}
		}
	}
	return lines
}

func renderRule(m *selectors.Model, r selectors.Rule) string {
	peersText := "any"
	if !r.AnyPeer {
		peersText = "none"
		for _, set := range m.AddressSets {
			if set.ID == r.Peers {
				peersText = renderRanges(set.Ranges)
			}
		}
	}
	portsText := "all"
	if !r.AllPorts {
		var parts []string
		for _, pr := range r.Ports {
			if pr.First == pr.Last {
				parts = append(parts, fmt.Sprintf("%s:%d", pr.Protocol, pr.First))
			} else {
				parts = append(parts, fmt.Sprintf("%s:%d-%d", pr.Protocol, pr.First, pr.Last))
			}
		}
		for _, id := range r.NamedPorts {
			for _, ss := range m.ServiceSets {
				if ss.ID == id {
					var svcs []string
					for _, svc := range ss.Services {
						svcs = append(svcs, fmt.Sprintf("%s/%s:%d", svc.Addr, svc.Protocol, svc.Port))
					}
					parts = append(parts, "{"+strings.Join(svcs, " ")+"}")
				}
			}
		}
		portsText = strings.Join(parts, ",")
		if portsText == "" {
			portsText = "none"
		}
	}
	return "peers=" + peersText + " ports=" + portsText
}

func renderRanges(rs []selectors.AddrRange) string {
	if len(rs) == 0 {
		return "none"
	}
	var parts []string
	for _, r := range rs {
		if r.From == r.To {
			parts = append(parts, r.From.String())
		} else {
			parts = append(parts, r.From.String()+"-"+r.To.String())
		}
	}
	return strings.Join(parts, ",")
}

func renderProblems(ps []selectors.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Policy.String()+" "+p.Field)
	}
	return out
}

// resolveCase is the shape shared by the table tests: a snapshot, the rendered Model of node n1,
// connections with their verdicts, and the fields of the expected problems.
type resolveCase struct {
	name       string
	pods       []selectors.Pod
	namespaces []selectors.Namespace
	policies   []*networkingv1.NetworkPolicy
	want       []string // renderModel of n1, nil: not compared
	conns      []connCase
	problems   []string // "ns/policy field"
}

func runResolveCases(t *testing.T, cases []resolveCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &selectors.Snapshot{Node: testNode, Pods: tc.pods, Namespaces: tc.namespaces, Policies: tc.policies}
			m := selectors.Resolve(s)
			if tc.want != nil {
				if got := renderModel(m); !equalLines(got, tc.want) {
					t.Errorf("model of %s:\n got: %s\nwant: %s", testNode, strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
				}
			}
			if got := renderProblems(m.Problems); !equalLines(got, tc.problems) {
				t.Errorf("problems:\n got: %q\nwant: %q\n(%v)", got, tc.problems, m.Problems)
			}
			models := resolveEveryNode(s)
			var extra []oracle.Connection
			for _, cc := range tc.conns {
				extra = append(extra, cc.Connection)
				if got := oracle.Allows(s, cc.Connection); got != cc.allowed {
					t.Errorf("Allows(%v) = %v, want %v", cc.Connection, got, cc.allowed)
				}
				if got := modelsAllow(models, cc.Connection); got != cc.allowed {
					t.Errorf("Model allows %v = %v, want %v", cc.Connection, got, cc.allowed)
				}
			}
			checkAgainstOracle(t, s, extra...)
		})
	}
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func renderAddrs(ips []netip.Addr) string {
	var parts []string
	for _, ip := range ips {
		parts = append(parts, ip.String())
	}
	return strings.Join(parts, ",")
}

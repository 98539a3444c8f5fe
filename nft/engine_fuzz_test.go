package nft

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/selectors/oracle"
	"github.com/nftpolicy/nftpolicy/selectors/selectorstest"
)

// The engine's end-to-end property: for any cluster and policies, a packet traced through the rulesets
// that selectors.Resolve and Compile produce for the nodes it crosses gets the verdict that the
// independent reading of the API (oracle.Allows) gives.
//
// The generated clusters are selectorstest's (see its IP plan); pods reach the other node through
// "fabric0".
var (
	randomSnapshot = selectorstest.RandomSnapshot
	fuzzExternal   = selectorstest.External
)

// node is one node's compiled table, as the tracer sees it.
type fuzzNode struct {
	rs     *Ruleset
	ifaces map[netip.Addr]string
}

func compileNodes(s *selectors.Snapshot) map[string]fuzzNode {
	nodes := map[string]fuzzNode{}
	for _, name := range []string{"n1", "n2"} {
		snap := *s
		snap.Node = name
		m := selectors.Resolve(&snap)
		ifaces := map[netip.Addr]string{}
		for _, p := range m.LocalPods {
			for _, ip := range p.IPs {
				ifaces[ip] = "veth-" + p.Namespace + "-" + p.Name
			}
		}
		nodes[name] = fuzzNode{rs: Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces}), ifaces: ifaces}
	}
	return nodes
}

// tracedVerdict follows a new connection through the forward hook of the source pod's node (if the
// source is a pod) and of the destination pod's node (if another).
func tracedVerdict(s *selectors.Snapshot, nodes map[string]fuzzNode, c oracle.Connection) (bool, []TraceStep) {
	nodeOf := func(a netip.Addr) string {
		for _, p := range s.Pods {
			for _, ip := range p.IPs {
				if ip == a {
					return p.Node
				}
			}
		}
		return ""
	}
	packet := Packet{Hook: HookForward, Src: c.Src, Dst: c.Dst, DstPort: c.Port}
	switch c.Protocol {
	case corev1.ProtocolUDP:
		packet.Proto = ProtoUDP
	case corev1.ProtocolSCTP:
		packet.Proto = ProtoSCTP
	case corev1.ProtocolTCP:
		packet.Proto = ProtoTCP
	default:
		packet.Proto = ProtoICMP
		if c.Src.Is6() {
			packet.Proto = ProtoICMPv6
		}
		packet.ICMPv6Type = 128 // echo request
	}
	var steps []TraceStep
	srcNode, dstNode := nodeOf(c.Src), nodeOf(c.Dst)
	if srcNode != "" {
		n := nodes[srcNode]
		p := packet
		p.Iifname = n.ifaces[c.Src]
		if p.Iifname == "" { // a pod that is not enforceable (e.g. Succeeded) has no interface here
			p.Iifname = "veth-unknown"
		}
		res := Trace(n.rs, p)
		steps = append(steps, res.Steps...)
		if res.Verdict == Drop {
			return false, steps
		}
	}
	if dstNode != "" && dstNode != srcNode {
		n := nodes[dstNode]
		p := packet
		p.Iifname = fabricIface
		res := Trace(n.rs, p)
		steps = append(steps, res.Steps...)
		if res.Verdict == Drop {
			return false, steps
		}
	}
	return true, steps
}

func checkCompiledAgainstOracle(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	checkSnapshotAgainstOracle(t, seed, randomSnapshot(r))
}

// checkSnapshotAgainstOracle traces every connection between the snapshot's addresses on a few
// protocols and ports through the compiled rulesets and compares the verdict with oracle.Allows.
func checkSnapshotAgainstOracle(t *testing.T, seed uint64, s *selectors.Snapshot) {
	t.Helper()
	nodes := compileNodes(s)
	var addrs []netip.Addr
	for _, p := range s.Pods {
		addrs = append(addrs, p.IPs...)
	}
	for _, e := range fuzzExternal {
		addrs = append(addrs, netip.MustParseAddr(e))
	}
	for _, src := range addrs {
		for _, dst := range addrs {
			if src == dst || src.Is4() != dst.Is4() {
				continue
			}
			for _, pp := range []struct {
				proto corev1.Protocol
				port  uint16
			}{{corev1.ProtocolTCP, 80}, {corev1.ProtocolTCP, 81}, {corev1.ProtocolUDP, 81}, {corev1.ProtocolSCTP, 80}, {corev1.ProtocolTCP, 443}, {corev1.ProtocolUDP, 8080}, {"ICMP", 0}} {
				c := oracle.Connection{Src: src, Dst: dst, Protocol: pp.proto, Port: pp.port}
				want := oracle.Allows(s, c)
				got, steps := tracedVerdict(s, nodes, c)
				if got != want {
					t.Errorf("seed %d: %s -> %s %s/%d: compiled says allowed=%v, the API reading says %v", seed, src, dst, pp.proto, pp.port, got, want)
					for _, st := range steps {
						t.Logf("  %s[%d]: %s", st.Chain, st.Index, st.Rule)
					}
					for _, p := range s.Policies {
						t.Logf("  policy %s/%s: %+v", p.Namespace, p.Name, p.Spec)
					}
					for _, p := range s.ClusterPolicies {
						t.Logf("  cluster policy %s: %+v", p.Name, p.Spec)
					}
					t.FailNow()
				}
			}
		}
	}
}

func FuzzCompiledVerdictMatchesAPI(f *testing.F) {
	for seed := uint64(0); seed < 64; seed++ {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		checkCompiledAgainstOracle(t, seed)
	})
}

// The same property with ClusterNetworkPolicies on top of the NetworkPolicies: both tiers, every
// action, pod, namespace and network peers, port ranges and named ports, on single-stack and
// dual-stack pods.
func checkClusterPoliciesAgainstOracle(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	s := randomSnapshot(r)
	s.ClusterPolicies = selectorstest.RandomClusterPolicies(r)
	checkSnapshotAgainstOracle(t, seed, s)
}

func TestClusterPoliciesCompiledVerdictMatchesAPI(t *testing.T) {
	for seed := range uint64(100) {
		checkClusterPoliciesAgainstOracle(t, seed)
	}
}

func FuzzClusterPoliciesCompiledVerdictMatchesAPI(f *testing.F) {
	for seed := range uint64(16) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		checkClusterPoliciesAgainstOracle(t, seed)
	})
}

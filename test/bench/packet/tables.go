package packet

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/baselines"
	"github.com/nftpolicy/nftpolicy/test/bench/harness"
)

// Kinds of node table.
const (
	KindConntrack = "conntrack-only"
	KindA         = "A"
	KindB         = "B"
)

// conntrackTable is the baseline's table name.
const conntrackTable = "conntrack-only"

// protoTCP is the protocol number in traced packets and baseline B's rules.
const protoTCP = 6

// Table describes one node's table, what it cost to program and what a new connection walks in it.
type Table struct {
	Name        string `json:"name"` // conntrack-only, A-0, A-10k, B-10k
	Kind        string `json:"kind"`
	Policies    int    `json:"policies"`
	Description string `json:"description"`
	Rules       int    `json:"rules"`
	Sets        int    `json:"sets"` // sets and verdict maps
	Elements    int    `json:"elements"`
	// FirstPacketRules is how many rules the first packet of a new client->server connection is
	// evaluated against, over every base chain of the forward hook; a set or map lookup counts as one.
	FirstPacketRules int `json:"firstPacketRules"`
	// EstablishedRules: the same count for a packet of an established connection.
	EstablishedRules int     `json:"establishedRules"`
	ProgramMS        float64 `json:"programMs"`
	// DropLog is set on the table with drop logging on.
	DropLog *TableDropLog `json:"dropLog,omitempty"`
	// DeniedPortDropped: a TCP connection from the client to a port no policy allows timed out (the
	// table dropped its SYN) instead of being refused by the server's kernel.
	DeniedPortDropped bool `json:"deniedPortDropped"`
}

// conntrackOnly is the baseline: conntrack engaged on the forward hook and nothing else.
//
//	table inet conntrack-only {
//	  chain forward { type filter hook forward priority filter; policy accept;
//	    ct state established,related accept
//	    accept
//	  }
//	}
func conntrackOnly() *nft.Ruleset {
	return &nft.Ruleset{Table: conntrackTable, Chains: []nft.Chain{{
		Name: "forward",
		Base: &nft.BaseHook{Hook: nft.HookForward},
		Rules: []nft.Rule{
			{Matches: []nft.Match{nft.CtState{Established: true, Related: true}}, Verdict: nft.Verdict{Kind: nft.Accept}},
			{Verdict: nft.Verdict{Kind: nft.Accept}, Comment: "new connections: no policy"},
		},
	}}}
}

// programNFT applies a ruleset to the node's namespace with nftpolicy's applier (one transaction).
func programNFT(nodePath string, rs *nft.Ruleset) (time.Duration, error) {
	backend, err := kernel.NewNetlinkBackend(nodePath)
	if err != nil {
		return 0, err
	}
	defer backend.Close()
	start := time.Now()
	if _, err := nft.NewApplier(backend).Apply(rs, nft.FullChanges()); err != nil {
		return 0, fmt.Errorf("programming table %s: %w", rs.Table, err)
	}
	return time.Since(start), nil
}

// compileA compiles nftpolicy's table for a model, with the lab pods' real host interfaces (the
// other local pods get made-up ones, as in the other measurements), and drop logging when dl is set.
func compileA(m *selectors.Model, ifaces map[netip.Addr]string, dl *nft.DropLog) *nft.Ruleset {
	all := harness.Interfaces(m)
	for ip, name := range ifaces {
		all[ip] = name
	}
	return nft.Compile(nft.CompileInput{Table: harness.Table, Model: m, Interfaces: all, DropLog: dl})
}

// describeNFT counts a ruleset's objects and traces the first packet of a new connection through it.
func describeNFT(t *Table, rs *nft.Ruleset, syn nft.Packet) error {
	for _, c := range rs.Chains {
		t.Rules += len(c.Rules)
	}
	t.Sets = len(rs.Sets) + len(rs.Maps)
	for _, s := range rs.Sets {
		t.Elements += len(s.Elements)
	}
	for _, m := range rs.Maps {
		t.Elements += len(m.Elements)
	}
	tr := nft.Trace(rs, syn)
	if tr.Verdict != nft.Accept {
		return fmt.Errorf("table %s drops the benchmark's first packet %s: %v", t.Name, syn, tr.Steps)
	}
	t.FirstPacketRules = rulesEvaluated(rs, nft.HookPath(syn.Hook), tr.Steps)
	est := syn
	est.Ct = nft.CtEstablished
	t.EstablishedRules = rulesEvaluated(rs, nft.HookPath(est.Hook), nft.Trace(rs, est).Steps)
	return nil
}

// rulesEvaluated counts the rules a traced packet was evaluated against. The tracer lists the rules
// that matched; a chain the packet entered is counted up to its last matching rule, or in full when
// none matched (the packet fell through it, e.g. a verdict-map lookup that missed). Chains entered are
// the base chains of the hooks on the packet's way and the targets of matched jumps and gotos.
func rulesEvaluated(rs *nft.Ruleset, hooks []nft.Hook, steps []nft.TraceStep) int {
	chains := map[string]nft.Chain{}
	entered := map[string]int{} // chain -> rules counted so far
	for _, c := range rs.Chains {
		chains[c.Name] = c
		if c.Base != nil && slices.Contains(hooks, c.Base.Hook) {
			entered[c.Name] = len(c.Rules)
		}
	}
	matched := map[string]bool{}
	for _, s := range steps {
		if s.Index < 0 {
			continue
		}
		if !matched[s.Chain] {
			matched[s.Chain], entered[s.Chain] = true, 0
		}
		entered[s.Chain] = max(entered[s.Chain], s.Index+1)
		if c, ok := chains[s.Chain]; ok && s.Index < len(c.Rules) {
			if v := c.Rules[s.Index].Verdict; (v.Kind == nft.Jump || v.Kind == nft.Goto) && !matched[v.Chain] {
				entered[v.Chain] = len(chains[v.Chain].Rules)
			}
		}
	}
	n := 0
	for _, v := range entered {
		n += v
	}
	return n
}

// describeNaive counts baseline B's rules and walks the first packet of a new client->server TCP
// connection through its two forward chains: the client's egress rules, then the server's ingress.
func describeNaive(t *Table, n *baselines.Naive, client, server netip.Addr, port uint16) error {
	t.Rules = n.Rules()
	eg, okEg := naiveWalk(n.Egress, func(r baselines.NaiveRule) bool { return naiveMatches(r, client, server, port) })
	in, okIn := naiveWalk(n.Ingress, func(r baselines.NaiveRule) bool { return naiveMatches(r, server, client, port) })
	if !okEg || !okIn {
		return fmt.Errorf("baseline B drops the benchmark's first packet %s -> %s:%d", client, server, port)
	}
	// Each chain starts with its established rule; the forward hook enters the egress-forward base
	// chain (one jump) and then the ingress chain.
	t.FirstPacketRules = 1 + (1 + eg) + (1 + in)
	t.EstablishedRules = 1 + 1 + 1
	return nil
}

// naiveWalk returns how many rules are evaluated until the first that matches, and whether that one
// accepts.
func naiveWalk(rules []baselines.NaiveRule, match func(baselines.NaiveRule) bool) (int, bool) {
	for i, r := range rules {
		if match(r) {
			return i + 1, !r.Drop
		}
	}
	return len(rules), true // fell off the chain: policy accept
}

// naiveMatches says whether a TCP packet between pod and peer, to port, matches rule r of the
// chain of pod's direction.
func naiveMatches(r baselines.NaiveRule, pod, peer netip.Addr, port uint16) bool {
	if r.Pod != pod {
		return false
	}
	if r.Peer != nil && (peer.Less(r.Peer.From) || r.Peer.To.Less(peer)) {
		return false
	}
	if r.Proto != 0 && r.Proto != protoTCP {
		return false
	}
	if r.Proto != 0 && (r.FirstPort != 0 || r.LastPort != 0) && (port < r.FirstPort || port > r.LastPort) {
		return false
	}
	return true
}

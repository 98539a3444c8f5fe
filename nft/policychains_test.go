package nft

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// policyChainsModel is node n1 with three local pods in namespace "shop", isolated for ingress:
//   - "a" (IPv4) by policy "web": clients on TCP webPortA;
//   - "b" (IPv4 and IPv6) by "web" as well, with webPortB (the same as a's unless a named port
//     resolves differently on b), and by "audit": the auditors on any port;
//   - "c" (IPv4) by "closed", whose only rule can match nothing.
func policyChainsModel(webPortA, webPortB uint16) *selectors.Model {
	web := selectors.PolicyRef{Namespace: "shop", Name: "web"}
	audit := selectors.PolicyRef{Namespace: "shop", Name: "audit"}
	closed := selectors.PolicyRef{Namespace: "shop", Name: "closed"}
	webRule := func(port uint16) selectors.Rule {
		r := makeRule(0, fromPeers("clients"), onPorts(tcp(port)))
		r.Policy = web
		return r
	}
	auditRule := makeRule(0, fromPeers("auditors"))
	auditRule.Policy = audit
	nothing := makeRule(0, fromPeers("clients"), onPorts())
	nothing.Policy = closed
	return &selectors.Model{
		Node: "n1",
		LocalPods: []selectors.LocalPod{
			makeLocalPod("shop", "a", withIPs("10.1.0.1"), func(p *selectors.LocalPod) {
				p.Ingress = &selectors.Isolation{Policies: []selectors.PolicyRef{web}, Rules: []selectors.Rule{webRule(webPortA)}}
			}),
			makeLocalPod("shop", "b", withIPs("10.1.0.2", "fd01::2"), func(p *selectors.LocalPod) {
				p.Ingress = &selectors.Isolation{Policies: []selectors.PolicyRef{audit, web}, Rules: []selectors.Rule{auditRule, webRule(webPortB)}}
			}),
			makeLocalPod("shop", "c", withIPs("10.1.0.3"), func(p *selectors.LocalPod) {
				p.Ingress = &selectors.Isolation{Policies: []selectors.PolicyRef{closed}, Rules: []selectors.Rule{nothing}}
			}),
		},
		AddressSets: []selectors.AddressSet{
			{ID: "auditors", Ranges: single("10.2.0.9", "fd02::9")},
			{ID: "clients", Ranges: single("10.2.0.1", "fd02::1")},
		},
	}
}

func chainNamed(t *testing.T, rs *Ruleset, name string) Chain {
	t.Helper()
	c, ok := indexChains(rs).find(name)
	if !ok {
		t.Fatalf("no chain %s in\n%s", name, Render(rs))
	}
	return *c
}

func jumps(c Chain) []string {
	var out []string
	for _, r := range c.Rules {
		if r.Verdict.Kind == Jump {
			out = append(out, r.Verdict.Chain)
		}
	}
	return out
}

func TestPolicyChainsAreSharedByThePodsAPolicySelects(t *testing.T) {
	rs := Compile(CompileInput{Table: "nftpolicy", Model: policyChainsModel(80, 80)})

	if got := jumps(chainNamed(t, rs, "in_shop_a")); !slices.Equal(got, []string{"pi_shop_web"}) {
		t.Errorf("a jumps to %q, want its one policy's chain", got)
	}
	if got := jumps(chainNamed(t, rs, "in_shop_b")); !slices.Equal(got, []string{"pi_shop_audit", "pi_shop_web"}) {
		t.Errorf("b jumps to %q, want both its policies' chains, in policy order", got)
	}
	// One chain for "web", compiled for the families of both pods (b has IPv6).
	web := chainNamed(t, rs, "pi_shop_web")
	var rendered []string
	for _, r := range web.Rules {
		rendered = append(rendered, RenderRule(r))
	}
	want := []string{
		`ip saddr @peers_clients_v4 tcp dport 80 counter name "allow-in_shop_web_0" accept comment "shop/web ingress[0]"`,
		`ip6 saddr @peers_clients_v6 tcp dport 80 counter name "allow-in_shop_web_0" accept comment "shop/web ingress[0]"`,
	}
	if !slices.Equal(rendered, want) {
		t.Errorf("pi_shop_web:\n%s\nwant\n%s", strings.Join(rendered, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range rs.Chains {
		if strings.HasPrefix(c.Name, "pi_shop_web") && c.Name != "pi_shop_web" {
			t.Errorf("a second chain %s for a policy whose rules are the same for every pod", c.Name)
		}
	}
	// A policy that can match nothing has no chain, and its pod's chain only drops.
	if _, ok := indexChains(rs).find("pi_shop_closed"); ok {
		t.Error("a chain for a policy whose rules match nothing")
	}
	if c := chainNamed(t, rs, "in_shop_c"); len(c.Rules) != 1 || c.Rules[0].Verdict.Kind != Drop {
		t.Errorf("in_shop_c = %+v, want only the drop", c.Rules)
	}

	fwd := func(src, dst string, port uint16) VerdictKind {
		return Trace(rs, Packet{Hook: HookForward, Iifname: "fabric", Src: addr(src), Dst: addr(dst), Proto: ProtoTCP, DstPort: port, Ct: CtNew}).Verdict
	}
	for _, tc := range []struct {
		src, dst string
		port     uint16
		want     VerdictKind
	}{
		{"10.2.0.1", "10.1.0.1", 80, Accept}, // a client to a
		{"10.2.0.1", "10.1.0.1", 81, Drop},
		{"10.2.0.9", "10.1.0.1", 80, Drop}, // the auditor may reach b only
		{"10.2.0.9", "10.1.0.2", 22, Accept},
		{"fd02::1", "fd01::2", 80, Accept}, // b's IPv6 address, through the shared chain's IPv6 rule
		{"fd02::9", "fd01::2", 80, Accept},
		{"10.2.0.1", "10.1.0.3", 80, Drop}, // c admits nobody
	} {
		if got := fwd(tc.src, tc.dst, tc.port); got != tc.want {
			t.Errorf("%s -> %s:%d: %s, want %s", tc.src, tc.dst, tc.port, verdictName(got), verdictName(tc.want))
		}
	}
}

// TestPolicyChainsSplitWhereAPolicyResolvesDifferently: an ingress rule's named port resolved to
// different numbers on two pods gives the policy one chain per version of its rules.
func TestPolicyChainsSplitWhereAPolicyResolvesDifferently(t *testing.T) {
	rs := Compile(CompileInput{Table: "nftpolicy", Model: policyChainsModel(80, 8080)})
	a, b := jumps(chainNamed(t, rs, "in_shop_a")), jumps(chainNamed(t, rs, "in_shop_b"))
	if !slices.Equal(a, []string{"pi_shop_web"}) {
		t.Fatalf("a jumps to %q, want pi_shop_web (the first pod's version keeps the plain name)", a)
	}
	if len(b) != 2 || b[0] != "pi_shop_audit" || !strings.HasPrefix(b[1], "pi_shop_web_") {
		t.Fatalf("b jumps to %q, want pi_shop_audit and a second chain of web", b)
	}
	chainNamed(t, rs, b[1])
	if again := Compile(CompileInput{Table: "nftpolicy", Model: policyChainsModel(80, 8080)}); !reflect.DeepEqual(jumps(chainNamed(t, again, "in_shop_b")), b) {
		t.Error("the second version's name is not deterministic")
	}
	for _, tc := range []struct {
		dst  string
		port uint16
		want VerdictKind
	}{
		{"10.1.0.1", 80, Accept}, {"10.1.0.1", 8080, Drop},
		{"10.1.0.2", 8080, Accept}, {"10.1.0.2", 80, Drop},
	} {
		got := Trace(rs, Packet{Hook: HookForward, Iifname: "fabric", Src: addr("10.2.0.1"), Dst: addr(tc.dst), Proto: ProtoTCP, DstPort: tc.port, Ct: CtNew}).Verdict
		if got != tc.want {
			t.Errorf("client -> %s:%d: %s, want %s", tc.dst, tc.port, verdictName(got), verdictName(tc.want))
		}
	}
}

// TestPolicyEditRewritesOnlyThePolicysChain: a port of "web" changes (new isolations for both pods,
// as the resolver gives them): the transaction rewrites web's chain and touches no pod chain.
//
// Two peer events come first: their compiles keep the chains, which the edit then compares with.
func TestPolicyEditRewritesOnlyThePolicysChain(t *testing.T) {
	var cc Compiler
	m := policyChainsModel(80, 80)
	last, _ := cc.Compile(CompileInput{Table: "nftpolicy", Model: m})
	for _, peer := range []string{"10.2.0.2", "10.2.0.3"} {
		event := *m
		event.AddressSets = slices.Clone(m.AddressSets)
		event.AddressSets[1].Ranges = append(slices.Clone(m.AddressSets[1].Ranges), single(peer)...)
		in := CompileInput{Table: "nftpolicy", Model: &event, Changes: selectors.Changes{AddressSets: sets.New(event.AddressSets[1].ID)}}
		got, changed := cc.Compile(in)
		if want := Compile(in); !reflect.DeepEqual(got, want) {
			t.Fatalf("Compiler.Compile differs from Compile after a peer event:\n%s\nwant\n%s", Render(got), Render(want))
		}
		if changed.Chains {
			t.Fatal("a peer event compiled the chains again")
		}
		last = got
		m = &event
	}
	edited := policyChainsModel(443, 443)
	edited.AddressSets = m.AddressSets // the peers after the events
	in := CompileInput{Table: "nftpolicy", Model: edited, Changes: selectors.Changes{Policies: sets.New(selectors.PolicyRef{Namespace: "shop", Name: "web"})}}
	after, changed := cc.Compile(in)
	if want := Compile(in); !reflect.DeepEqual(after, want) {
		t.Fatalf("Compiler.Compile differs from Compile:\n%s\nwant\n%s", Render(after), Render(want))
	}
	tx := Diff(last, after, changed)
	var flushed []string
	added := 0
	for _, op := range tx.Ops {
		switch o := op.(type) {
		case FlushChain:
			flushed = append(flushed, o.Name)
		case AddRule:
			if o.Chain != "pi_shop_web" {
				t.Errorf("rule added to %s", o.Chain)
			}
			added++
		default:
			t.Errorf("unexpected operation %s", RenderOp(tx.Table, op))
		}
	}
	if !slices.Equal(flushed, []string{"pi_shop_web"}) || added != 2 {
		t.Errorf("flushed %q and added %d rules, want web's chain refilled with its 2 rules:\n%s", flushed, added, tx)
	}
}

// TestPolicyChainFollowsTheFamiliesOfItsPods: the chain holds IPv6 rules only while a pod it
// serves has an IPv6 address.
func TestPolicyChainFollowsTheFamiliesOfItsPods(t *testing.T) {
	var cc Compiler
	m := policyChainsModel(80, 80)
	cc.Compile(CompileInput{Table: "nftpolicy", Model: m})
	// b leaves: a, IPv4 only, is web's only pod.
	m2 := *m
	m2.LocalPods = []selectors.LocalPod{m.LocalPods[0], m.LocalPods[2]}
	in := CompileInput{Table: "nftpolicy", Model: &m2, Changes: selectors.Changes{LocalPods: sets.New(m.LocalPods[1].Key())}}
	rs, _ := cc.Compile(in)
	if want := Compile(in); !reflect.DeepEqual(rs, want) {
		t.Fatalf("Compiler.Compile differs from Compile:\n%s\nwant\n%s", Render(rs), Render(want))
	}
	web := chainNamed(t, rs, "pi_shop_web")
	if len(web.Rules) != 1 || RenderRule(web.Rules[0]) != `ip saddr @peers_clients_v4 tcp dport 80 counter name "allow-in_shop_web_0" accept comment "shop/web ingress[0]"` {
		t.Errorf("pi_shop_web after the dual-stack pod left: %+v", web.Rules)
	}
	if _, ok := indexChains(rs).find("pi_shop_audit"); ok {
		t.Error("audit's chain outlived the only pod it selected")
	}
}

package nft

import (
	"fmt"
	"slices"
	"testing"
)

// TestExplainGuestbook explains connections through the guestbook ruleset on node n1 and asserts
// every set and map lookup made on the way, in order, and the rule that decided.
func TestExplainGuestbook(t *testing.T) {
	rs := compileGuestbook()
	tr := NewTracer(rs)
	// The lookups every new IPv4 connection from guestbook-1's interface makes on prerouting and in
	// the egress chain.
	fromGuestbook := []string{
		`pod-iface-addrs-v4 "veth-gb1" . 198.18.0.20 found`,
		`map egress-pods-v4 198.18.0.20 found: goto eg_default_guestbook-1`,
	}
	cases := []struct {
		name     string
		flow     Flow
		verdict  string
		lookups  []string
		decision string // chain[index] of the rule that decided
		failed   map[string]string
	}{
		{
			name:    "allowed: guestbook to redis on 6379",
			flow:    Flow{Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379},
			verdict: "accept",
			lookups: append(slices.Clone(fromGuestbook),
				`peers_redis_v4 198.18.0.10 found`,
				`map ingress-pods-v4 198.18.0.10 found: goto in_default_redis-master`,
				`peers_guestbook_v4 198.18.0.20 found`),
			decision: "pi_default_redis-policy[0]",
		},
		{
			name:    "denied by port: guestbook to redis on 80",
			flow:    Flow{Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 80},
			verdict: "drop",
			lookups: append(slices.Clone(fromGuestbook),
				`peers_redis_v4 198.18.0.10 found`,
				`peers_guestbook_v4 198.18.0.10 missing`,
				`peers_external_v4 198.18.0.10 missing`),
			decision: "eg_default_guestbook-1[1]",
			failed: map[string]string{
				"pe_default_guestbook-egress[0]": "th dport 6379",
				"pe_default_guestbook-egress[1]": "meta l4proto udp",
				"pe_default_guestbook-egress[2]": "ip daddr @peers_guestbook_v4",
				"pe_default_guestbook-egress[3]": "ip daddr @peers_external_v4",
			},
		},
		{
			name:    "denied by selector: busybox on another node to redis",
			flow:    Flow{Src: addr(busyboxIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379},
			verdict: "drop",
			lookups: []string{
				`pod-iface-addrs-v4 "fabric0" . 198.18.1.30 missing`,
				`pod-ifaces "fabric0" missing`,
				`pod-addrs-v4 198.18.1.30 missing`,
				`map egress-pods-v4 198.18.1.30 missing`,
				`map ingress-pods-v4 198.18.0.10 found: goto in_default_redis-master`,
				`peers_guestbook_v4 198.18.1.30 missing`,
			},
			decision: "in_default_redis-master[1]",
			failed:   map[string]string{"pi_default_redis-policy[0]": "ip saddr @peers_guestbook_v4"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tr.Explain(ForwardPacket(tc.flow, guestbookInterfaces(), fabricIface))
			if path.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s", path.Verdict, tc.verdict)
			}
			if got := pathLookups(path); !slices.Equal(got, tc.lookups) {
				t.Errorf("lookups:\n%q\nwant\n%q", got, tc.lookups)
			}
			last := path.Steps[len(path.Steps)-1]
			if got := fmt.Sprintf("%s[%d]", last.Chain, last.Index); got != tc.decision || !last.Matched || last.Verdict != tc.verdict {
				t.Errorf("decided by %s (matched %v, verdict %q), want %s", got, last.Matched, last.Verdict, tc.decision)
			}
			for _, st := range path.Steps {
				want, ok := tc.failed[fmt.Sprintf("%s[%d]", st.Chain, st.Index)]
				if ok && (st.Matched || st.FailedMatch != want) {
					t.Errorf("%s[%d]: matched %v, failed match %q, want %q", st.Chain, st.Index, st.Matched, st.FailedMatch, want)
				}
			}
		})
	}
}

// pathLookups lists the set and map lookups of a path.
func pathLookups(path TracePath) []string {
	var out []string
	for _, st := range path.Steps {
		for _, l := range st.Lookups {
			out = append(out, fmt.Sprintf("%s %s %s", l.Set, l.Key, foundWord(l.Found)))
		}
		if m := st.Map; m != nil {
			s := fmt.Sprintf("map %s %s %s", m.Map, m.Key, foundWord(m.Found))
			if m.Found {
				s += ": " + m.Verdict
			}
			out = append(out, s)
		}
	}
	return out
}

func foundWord(found bool) string {
	if found {
		return "found"
	}
	return "missing"
}

// TestExplainAgreesWithTrace requires Explain's verdict, and its matched steps that applied a
// verdict, to be Trace's, over connections between every pair of guestbook addresses.
func TestExplainAgreesWithTrace(t *testing.T) {
	for _, rs := range []*Ruleset{compileGuestbook(), Compile(CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(), PodInterfacePrefix: "veth"})} {
		tr := NewTracer(rs)
		addrs := []string{guestbookIP, redisIP, remoteGBIP, busyboxIP, externalDNS, "203.0.113.10", "203.0.113.200", redisIPv6, "fd18::99"}
		for _, src := range addrs {
			for _, dst := range addrs {
				for _, proto := range []uint8{ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6} {
					f := Flow{Src: addr(src), Dst: addr(dst), Proto: proto, DstPort: 6379}
					if src == dst || f.Src.Is4() != f.Dst.Is4() {
						continue
					}
					p := ForwardPacket(f, guestbookInterfaces(), fabricIface)
					want := tr.Trace(p)
					got := tr.Explain(p)
					var applied []TraceStep
					for _, st := range got.Steps {
						if st.Matched && st.Verdict != "" {
							applied = append(applied, TraceStep{Chain: st.Chain, Index: st.Index, Rule: st.Rule, Counter: st.Counter})
						}
					}
					if got.Verdict != RenderVerdict(Verdict{Kind: want.Verdict}) || !slices.Equal(applied, want.Steps) {
						t.Errorf("%s: Explain says %s via %v, Trace %v via %v", p, got.Verdict, applied, want.Verdict, want.Steps)
					}
				}
			}
		}
	}
}

func TestForwardPacket(t *testing.T) {
	ifaces := guestbookInterfaces()
	for _, tc := range []struct {
		flow     Flow
		iif, oif string
	}{
		{Flow{Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379}, guestbkIface, redisIface},
		{Flow{Src: addr(guestbookIP), Dst: addr(busyboxIP), Proto: ProtoTCP, DstPort: 80}, guestbkIface, fabricIface},
		{Flow{Src: addr(busyboxIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379}, fabricIface, redisIface},
	} {
		p := ForwardPacket(tc.flow, ifaces, fabricIface)
		if p.Hook != HookForward || p.Iifname != tc.iif || p.Oifname != tc.oif || p.Ct != CtNew || p.Src != tc.flow.Src || p.Dst != tc.flow.Dst || p.DstPort != tc.flow.DstPort {
			t.Errorf("%+v: packet %s, want iif %q oif %q", tc.flow, p, tc.iif, tc.oif)
		}
	}
	p := ForwardPacket(Flow{Src: addr(redisIPv6), Dst: addr("fd18::99"), Proto: ProtoICMPv6}, ifaces, fabricIface)
	if p.ICMPv6Type != icmpv6EchoRequest {
		t.Errorf("an ICMPv6 connection starts with an echo request, got type %d", p.ICMPv6Type)
	}
}

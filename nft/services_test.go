package nft

import (
	"net/netip"
	"testing"
)

// The Service data path of each kube-proxy mode, as the kernel takes it, with the point where the
// ClusterIP becomes the backend:
//   - iptables and nftables modes DNAT on prerouting at priority dstnat (-100);
//   - IPVS takes the packet on input at priority 99 (ip_vs_in, NF_IP_PRI_NAT_SRC - 1), rewrites the
//     destination and sends it again through output and postrouting.
const (
	dnatPriority   = -100
	ipvsInPriority = 99
	testClusterIP  = "10.96.0.10"
)

type proxyMode string

const (
	modeDNAT proxyMode = "iptables/nftables"
	modeIPVS proxyMode = "ipvs"
)

// stage is a part of a packet's way through the node: the base chains of hook with a priority in
// [lo, hi]. From a stage with backend set on, the destination is the Service's backend.
type stage struct {
	hook    Hook
	lo, hi  int32
	backend bool
}

// servicePaths are the ways of a packet from a local pod to a ClusterIP under each mode.
var servicePaths = map[proxyMode][]stage{
	modeDNAT: {
		{HookPrerouting, minPriority, dnatPriority, false},
		{HookPrerouting, dnatPriority + 1, maxPriority, true},
		{HookForward, minPriority, maxPriority, true},
		{HookPostrouting, minPriority, maxPriority, true},
	},
	// The ClusterIP is a local address (kube-ipvs0): the packet is delivered to the node, and IPVS
	// sends the rewritten packet through output and postrouting, its source still the pod's.
	modeIPVS: {
		{HookPrerouting, minPriority, maxPriority, false},
		{HookInput, minPriority, ipvsInPriority - 1, false},
		{HookOutput, minPriority, maxPriority, true},
		{HookPostrouting, minPriority, maxPriority, true},
	},
}

// traceService traces a packet from a local pod to a ClusterIP:port that kube-proxy in mode sends to
// backend:targetPort, leaving the node through oif.
func traceService(rs *Ruleset, mode proxyMode, p Packet, backend netip.Addr, targetPort uint16, oif string) TraceResult {
	t := tracer{Tracer: NewTracer(rs), p: p}
	for _, st := range servicePaths[mode] {
		if st.backend {
			t.p.Dst, t.p.DstPort, t.p.Oifname = backend, targetPort, oif
		}
		if runBases(&t, st.hook, st.lo, st.hi) == Drop {
			return TraceResult{Verdict: Drop, Steps: t.steps}
		}
	}
	return TraceResult{Verdict: Accept, Steps: t.steps}
}

const (
	minPriority int32 = -1 << 31
	maxPriority int32 = 1<<31 - 1
)

// runBases runs the base chains of hook whose priority lies in [lo, hi], in priority order.
func runBases(t *tracer, hook Hook, lo, hi int32) VerdictKind {
	only := &Ruleset{Chains: nil, Sets: t.rs.Sets, Maps: t.rs.Maps}
	for _, c := range t.rs.Chains {
		if c.Base == nil || (c.Base.Hook == hook && c.Base.Priority >= lo && c.Base.Priority <= hi) {
			only.Chains = append(only.Chains, c)
		}
	}
	sub := tracer{Tracer: NewTracer(only), p: t.p, steps: t.steps}
	v := sub.runHook(hook)
	t.steps = sub.steps
	return v
}

// TestServiceTrafficIsJudgedAgainstTheBackend checks, for every kube-proxy mode, that policies see
// the backend pod and its target port of Service traffic, never the ClusterIP and Service port.
// In the guestbook, guestbook pods may send to redis on 6379 only, and redis accepts only guestbook
// pods; redis's Service listens on port 80 and targets 6379.
func TestServiceTrafficIsJudgedAgainstTheBackend(t *testing.T) {
	rs := compileGuestbook()
	fromPod := func(iif, src string, proto uint8, port uint16) Packet {
		return Packet{Hook: HookForward, Iifname: iif, Src: addr(src), Dst: addr(testClusterIP), Proto: proto, DstPort: port}
	}
	cases := []struct {
		name       string
		packet     Packet
		backend    string
		targetPort uint16
		oif        string
		want       VerdictKind
	}{
		{"guestbook -> redis's Service:80 -> redis:6379 on the same node: both policies see 6379 and allow it",
			fromPod(guestbkIface, guestbookIP, ProtoTCP, 80), redisIP, 6379, redisIface, Accept},
		{"guestbook -> a Service:6379 whose backend serves 6380: guestbook's egress allows 6379 only",
			fromPod(guestbkIface, guestbookIP, ProtoTCP, 6379), redisIP, 6380, redisIface, Drop},
		{"guestbook -> a Service whose backend is on another node: egress judged against that backend",
			fromPod(guestbkIface, guestbookIP, ProtoTCP, 3000), remoteGBIP, 3000, fabricIface, Accept},
		{"guestbook -> a Service whose backend on another node is not redis and port not allowed",
			fromPod(guestbkIface, guestbookIP, ProtoTCP, 6379), busyboxIP, 6379, fabricIface, Drop},
		{"hairpin: redis -> its own Service -> itself: redis's ingress admits guestbook pods only",
			fromPod(redisIface, redisIP, ProtoTCP, 80), redisIP, 6379, redisIface, Drop},
		{"hairpin: guestbook -> its own Service -> itself: its ingress admits nothing",
			fromPod(guestbkIface, guestbookIP, ProtoTCP, 3000), guestbookIP, 3000, guestbkIface, Drop},
		{"UDP: guestbook -> Service:53 -> a DNS backend outside the cluster: its egress allows UDP 53",
			fromPod(guestbkIface, guestbookIP, ProtoUDP, 53), externalDNS, 53, fabricIface, Accept},
		{"anti-spoofing still holds for Service traffic",
			fromPod(guestbkIface, redisIP, ProtoTCP, 80), redisIP, 6379, redisIface, Drop},
	}
	for _, mode := range []proxyMode{modeDNAT, modeIPVS} {
		for _, tc := range cases {
			t.Run(string(mode)+"/"+tc.name, func(t *testing.T) {
				got := traceService(rs, mode, tc.packet, addr(tc.backend), tc.targetPort, tc.oif)
				if got.Verdict != tc.want {
					t.Errorf("got %v, want %v; path:", verdictName(got.Verdict), verdictName(tc.want))
					for _, s := range got.Steps {
						t.Logf("  %s[%d]: %s", s.Chain, s.Index, s.Rule)
					}
				}
			})
		}
	}
}

// TestNoPolicyChainSeesTheClusterIP checks the hook placement itself: before the point where each
// mode rewrites the destination, only the anti-spoofing checks run, which read the source alone.
func TestNoPolicyChainSeesTheClusterIP(t *testing.T) {
	rs := compileGuestbook()
	for _, c := range rs.Chains {
		if c.Base == nil {
			continue
		}
		beforeDNAT := c.Base.Hook == HookPrerouting && c.Base.Priority <= dnatPriority
		beforeIPVS := c.Base.Hook == HookInput && c.Base.Priority < ipvsInPriority
		if beforeIPVS {
			t.Errorf("base chain %s on input at priority %d runs before IPVS (%d) takes Service traffic", c.Name, c.Base.Priority, ipvsInPriority)
		}
		if beforeDNAT && c.Rules[0].Verdict.Chain != chainSpoofing {
			t.Errorf("base chain %s on prerouting at priority %d sees ClusterIPs before DNAT", c.Name, c.Base.Priority)
		}
		if c.Base.Hook == HookPostrouting && c.Base.Priority >= 100 {
			t.Errorf("base chain %s on postrouting at priority %d runs after SNAT (100)", c.Name, c.Base.Priority)
		}
	}
}

// TestNodeOwnTrafficOnPostrouting checks that the node's own packets, which postrouting sees beside
// routed ones, reach isolated pods, while a routed packet from the same address range does not.
func TestNodeOwnTrafficOnPostrouting(t *testing.T) {
	rs := compileGuestbook()
	own := Trace(rs, Packet{Hook: HookOutput, Oifname: redisIface, Src: addr(nodeIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379})
	if own.Verdict != Accept {
		t.Errorf("the node's own connection to redis: got %v, want accept", verdictName(own.Verdict))
	}
	routed := Trace(rs, Packet{Hook: HookForward, Iifname: fabricIface, Oifname: redisIface, Src: addr("198.19.1.2"), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379})
	if routed.Verdict != Drop {
		t.Errorf("another node's address (a SNATed NodePort client) to redis: got %v, want drop", verdictName(routed.Verdict))
	}
}

package nft

import (
	"testing"
)

func TestTraceGuestbook(t *testing.T) {
	rs := compileGuestbook()
	fwd := func(iif, src, dst string, proto uint8, port uint16) Packet {
		return Packet{Hook: HookForward, Iifname: iif, Src: addr(src), Dst: addr(dst), Proto: proto, DstPort: port}
	}
	cases := []struct {
		name   string
		packet Packet
		want   VerdictKind
	}{
		{"guestbook reaches redis: its egress allows redis:6379, redis's ingress allows guestbook pods",
			fwd(guestbkIface, guestbookIP, redisIP, ProtoTCP, 6379), Accept},
		{"busybox on another node is not a guestbook pod: redis's ingress drops it",
			fwd(fabricIface, busyboxIP, redisIP, ProtoTCP, 6379), Drop},
		{"a remote guestbook pod reaches redis on any port (the rule has no ports)",
			fwd(fabricIface, remoteGBIP, redisIP, ProtoUDP, 9), Accept},
		{"guestbook's egress allows redis only on 6379",
			fwd(guestbkIface, guestbookIP, redisIP, ProtoTCP, 80), Drop},
		{"guestbook's egress allows UDP 53 to any address, outside the cluster too",
			fwd(guestbkIface, guestbookIP, externalDNS, ProtoUDP, 53), Accept},
		{"but not TCP 53",
			fwd(guestbkIface, guestbookIP, externalDNS, ProtoTCP, 53), Drop},
		{"the ipBlock admits its cidr on 443",
			fwd(guestbkIface, guestbookIP, "203.0.113.10", ProtoTCP, 443), Accept},
		{"and on 8443, the rule's other port (a port set)",
			fwd(guestbkIface, guestbookIP, "203.0.113.10", ProtoTCP, 8443), Accept},
		{"but on no port between them",
			fwd(guestbkIface, guestbookIP, "203.0.113.10", ProtoTCP, 8442), Drop},
		{"and not over UDP",
			fwd(guestbkIface, guestbookIP, "203.0.113.10", ProtoUDP, 8443), Drop},
		{"but not its except",
			fwd(guestbkIface, guestbookIP, "203.0.113.200", ProtoTCP, 443), Drop},
		{"the named port http-server resolves to 3000 on the remote guestbook pod",
			fwd(guestbkIface, guestbookIP, remoteGBIP, ProtoTCP, 3000), Accept},
		{"the named port does not open other ports",
			fwd(guestbkIface, guestbookIP, remoteGBIP, ProtoTCP, 3001), Drop},
		{"the named port does not open port 3000 of addresses that are not guestbook pods",
			fwd(guestbkIface, guestbookIP, busyboxIP, ProtoTCP, 3000), Drop},
		{"guestbook is isolated for ingress with no rules: nothing reaches it",
			fwd(fabricIface, remoteGBIP, guestbookIP, ProtoTCP, 3000), Drop},
		{"same-node traffic needs both sides: redis may send, guestbook's ingress drops it",
			fwd(redisIface, redisIP, guestbookIP, ProtoTCP, 3000), Drop},
		{"a pod no policy selects is open both ways",
			fwd(fabricIface, busyboxIP, "198.18.0.99", ProtoTCP, 1), Accept},
		{"replies of allowed connections pass: established",
			Packet{Hook: HookForward, Iifname: redisIface, Src: addr(redisIP), Dst: addr(busyboxIP), Proto: ProtoTCP, DstPort: 40000, Ct: CtEstablished}, Accept},
		{"ICMP errors about allowed connections pass: related",
			Packet{Hook: HookForward, Iifname: fabricIface, Src: addr(busyboxIP), Dst: addr(guestbookIP), Proto: ProtoICMP, Ct: CtRelated}, Accept},
		{"anti-spoofing: guestbook's interface sending from redis's address is dropped",
			fwd(guestbkIface, redisIP, remoteGBIP, ProtoTCP, 3000), Drop},
		{"anti-spoofing: a local pod's address arriving through the fabric is dropped",
			fwd(fabricIface, guestbookIP, redisIP, ProtoTCP, 6379), Drop},
		{"anti-spoofing applies to established packets too",
			Packet{Hook: HookForward, Iifname: guestbkIface, Src: addr(redisIP), Dst: addr(busyboxIP), Proto: ProtoTCP, DstPort: 1, Ct: CtEstablished}, Drop},
		{"the node reaches an isolated pod (kubelet probes): output is not filtered",
			Packet{Hook: HookOutput, Src: addr(nodeIP), Dst: addr(guestbookIP), Proto: ProtoTCP, DstPort: 8080}, Accept},
		{"a pod's egress policy applies to its own node too",
			Packet{Hook: HookInput, Iifname: guestbkIface, Src: addr(guestbookIP), Dst: addr(nodeIP), Proto: ProtoTCP, DstPort: 10250}, Drop},
		{"a pod not isolated for egress reaches its node",
			Packet{Hook: HookInput, Iifname: redisIface, Src: addr(redisIP), Dst: addr(nodeIP), Proto: ProtoTCP, DstPort: 10250}, Accept},
		{"IPv6: redis's ingress allows guestbook pods' IPv6 addresses only, and they have none",
			fwd(fabricIface, "fd18::30", redisIPv6, ProtoTCP, 6379), Drop},
		{"IPv6 neighbour discovery from a link-local address always passes",
			Packet{Hook: HookInput, Iifname: redisIface, Src: addr("fe80::1"), Dst: addr("ff02::1:ff00:1"), Proto: ProtoICMPv6, ICMPv6Type: ICMPv6NeighborSolicit}, Accept},
		{"IPv6 neighbour discovery towards an isolated pod passes",
			Packet{Hook: HookForward, Iifname: fabricIface, Src: addr("fe80::1"), Dst: addr(redisIPv6), Proto: ProtoICMPv6, ICMPv6Type: ICMPv6NeighborAdvert}, Accept},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Trace(rs, tc.packet)
			if got.Verdict != tc.want {
				t.Errorf("%s: got %v, want %v; path:", tc.packet, verdictName(got.Verdict), verdictName(tc.want))
				for _, s := range got.Steps {
					t.Logf("  %s[%d]: %s", s.Chain, s.Index, s.Rule)
				}
			}
		})
	}
}

func TestTraceNamesTheDecidingRule(t *testing.T) {
	rs := compileGuestbook()
	got := Trace(rs, Packet{Hook: HookForward, Iifname: fabricIface, Src: addr(busyboxIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379})
	if len(got.Steps) == 0 {
		t.Fatal("no steps recorded")
	}
	last := got.Steps[len(got.Steps)-1]
	if last.Chain != "in_default_redis-master" || last.Rule != `counter name "deny-in_default" drop comment "ingress isolated by default/redis-policy"` {
		t.Errorf("deciding step = %+v, want the final drop of redis-master's ingress chain", last)
	}
	if last.Counter != "deny-in_default" {
		t.Errorf("deciding step updates counter %q, want the default deny of default's ingress", last.Counter)
	}
}

func verdictName(v VerdictKind) string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	default:
		return "none"
	}
}

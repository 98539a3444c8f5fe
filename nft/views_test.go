package nft

import (
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func TestPodInterfacesReadsTheAntiSpoofingSets(t *testing.T) {
	got := PodInterfaces(compileGuestbook())
	want := map[string]string{redisIP: redisIface, guestbookIP: guestbkIface, redisIPv6: redisIface}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for ip, iface := range want {
		if got[addr(ip)] != iface {
			t.Errorf("%s: got %q, want %q", ip, got[addr(ip)], iface)
		}
	}
}

func TestOneDirectionTracesWhatEachDirectionDecides(t *testing.T) {
	rs := compileGuestbook()
	cases := []struct {
		name                           string
		packet                         Packet
		whole, egressOnly, ingressOnly VerdictKind
	}{
		{"guestbook -> redis:80: guestbook's egress drops it, redis's ingress would admit guestbook pods",
			Packet{Hook: HookForward, Iifname: guestbkIface, Oifname: redisIface, Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 80},
			Drop, Drop, Accept},
		{"redis -> guestbook:3000: redis is not isolated for egress, guestbook's ingress drops it",
			Packet{Hook: HookForward, Iifname: redisIface, Oifname: guestbkIface, Src: addr(redisIP), Dst: addr(guestbookIP), Proto: ProtoTCP, DstPort: 3000},
			Drop, Accept, Drop},
		{"guestbook -> redis:6379: both allow",
			Packet{Hook: HookForward, Iifname: guestbkIface, Oifname: redisIface, Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379},
			Accept, Accept, Accept},
	}
	for _, c := range cases {
		if got := Trace(rs, c.packet).Verdict; got != c.whole {
			t.Errorf("%s: whole table %v, want %v", c.name, got, c.whole)
		}
		if got := Trace(OneDirection(rs, selectors.Egress), c.packet).Verdict; got != c.egressOnly {
			t.Errorf("%s: egress only %v, want %v", c.name, got, c.egressOnly)
		}
		if got := Trace(OneDirection(rs, selectors.Ingress), c.packet).Verdict; got != c.ingressOnly {
			t.Errorf("%s: ingress only %v, want %v", c.name, got, c.ingressOnly)
		}
	}
	if len(rs.Chains) == len(OneDirection(rs, selectors.Egress).Chains) {
		t.Error("OneDirection kept every chain")
	}
}

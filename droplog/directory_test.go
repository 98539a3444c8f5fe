package droplog

import (
	"net/netip"
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
)

// A peer that the Directory's own pods do not hold is asked of its PeerFinder; a local pod's
// address is never asked.
func TestPeersOnOtherNodesAreFoundByThePeerFinder(t *testing.T) {
	remoteIP := netip.MustParseAddr("10.2.0.40")
	var asked []netip.Addr
	find := func(addr netip.Addr) (PodRef, bool) {
		asked = append(asked, addr)
		if addr == remoteIP {
			return PodRef{Namespace: "batch", Name: "worker"}, true
		}
		return PodRef{}, false
	}
	d := NewDirectory(testModel(), &nft.Ruleset{}, nil).WithPeers(find)
	cases := []struct {
		addr netip.Addr
		want PodRef
		ok   bool
	}{
		{postgresIP, PodRef{Namespace: "db", Name: "postgres"}, true},
		{remoteIP, PodRef{Namespace: "batch", Name: "worker"}, true},
		{outsideIP, PodRef{}, false},
	}
	for _, c := range cases {
		if got, ok := d.pod(c.addr); got != c.want || ok != c.ok {
			t.Errorf("%s: %+v %v, want %+v %v", c.addr, got, ok, c.want, c.ok)
		}
	}
	if len(asked) != 2 || asked[0] != remoteIP || asked[1] != outsideIP {
		t.Errorf("asked the finder for %v, want only %s and %s", asked, remoteIP, outsideIP)
	}
}

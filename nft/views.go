package nft

import (
	"net/netip"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// PodInterfaces returns the local pod addresses and their host interfaces as rs's anti-spoofing sets
// hold them: what the ruleset itself knows of the node's pods, whichever copy of it (the committed
// one or one read back from the kernel).
func PodInterfaces(rs *Ruleset) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, s := range rs.Sets {
		if s.Name != setPodIfaceAddrsV4 && s.Name != setPodIfaceAddrsV6 {
			continue
		}
		for _, e := range s.Elements {
			out[e.Addr] = e.Ifname
		}
	}
	return out
}

// OneDirection returns rs without the base chains of the other direction, so that a trace through
// it shows what dir alone decides: on a node that holds both pods, the packet meets the source's
// egress and then the destination's ingress, and a drop by the first hides the second. The
// anti-spoofing base chain stays in both.
func OneDirection(rs *Ruleset, dir selectors.Direction) *Ruleset {
	drop := chainIngress
	if dir == selectors.Ingress {
		drop = chainEgress
	}
	out := *rs
	out.Chains = make([]Chain, 0, len(rs.Chains))
	for _, c := range rs.Chains {
		if c.Base != nil && jumpsTo(c, drop) {
			continue
		}
		out.Chains = append(out.Chains, c)
	}
	return &out
}

func jumpsTo(c Chain, target string) bool {
	for _, r := range c.Rules {
		if (r.Verdict.Kind == Jump || r.Verdict.Kind == Goto) && r.Verdict.Chain == target {
			return true
		}
	}
	return false
}

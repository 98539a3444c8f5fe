package explain_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/explain"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/selectors/oracle"
	"github.com/nftpolicy/nftpolicy/selectors/selectorstest"
)

// Explain's verdict is the oracle's, the independent naive reading of the API, over random
// clusters and connections; and every denied direction says why each candidate rule fails.
func TestExplainAgreesWithOracle(t *testing.T) {
	protocols := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	ports := []uint16{79, 80, 81, 443, 8000, 8080}
	checked, denied := 0, 0
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 17))
		s := selectorstest.RandomSnapshot(r)
		addrs := addressesOf(s)
		for range 20 {
			src, dst := addrs[r.IntN(len(addrs))], addrs[r.IntN(len(addrs))]
			if src == dst || src.Is4() != dst.Is4() {
				continue
			}
			c := oracle.Connection{Src: src, Dst: dst, Protocol: protocols[r.IntN(len(protocols))], Port: ports[r.IntN(len(ports))]}
			got, err := explain.Explain(s, targetOf(s, src, r), targetOf(s, dst, r), explain.PortSpec{Protocol: c.Protocol, Number: c.Port}, familyOf(src))
			if err != nil {
				t.Fatalf("seed %d: Explain(%+v): %v", seed, c, err)
			}
			checked++
			if !got.Allowed {
				denied++
			}
			if want := oracle.Allows(s, c); got.Allowed != want {
				t.Errorf("seed %d: %+v: Explain allows %v, the oracle %v: egress %+v ingress %+v", seed, c, got.Allowed, want, got.Egress, got.Ingress)
			}
			if got.Connection.SrcIP != src || got.Connection.DstIP != dst {
				t.Errorf("seed %d: %+v explained as %s -> %s", seed, c, got.Connection.SrcIP, got.Connection.DstIP)
			}
			for _, da := range []*explain.DirectionAnswer{got.Egress, got.Ingress} {
				if da != nil && !da.Allowed && len(da.Rejections) == 0 && hasRules(s, da) {
					t.Errorf("seed %d: %+v: %s of %s denied without reasons", seed, c, da.Direction, da.Pod)
				}
			}
		}
	}
	// Enough connections, and enough of each verdict, for the comparison to mean something.
	if checked < 300 || denied < checked/10 || checked-denied < checked/10 {
		t.Fatalf("%d connections checked, %d denied", checked, denied)
	}
	t.Logf("%d connections checked, %d denied", checked, denied)
}

func addressesOf(s *selectors.Snapshot) []netip.Addr {
	addrs := []netip.Addr{netip.MustParseAddr("fd18::99:1")}
	for _, a := range selectorstest.External {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	for _, p := range s.Pods {
		addrs = append(addrs, p.IPs...)
	}
	return addrs
}

// targetOf names an address by its pod half of the time, when it has a running pod.
func targetOf(s *selectors.Snapshot, a netip.Addr, r *rand.Rand) explain.Target {
	for _, p := range s.Pods {
		if selectors.Eligible(&p) && len(p.IPs) == 1 && p.IPs[0] == a && r.IntN(2) == 0 {
			return explain.PodTarget(p.Namespace, p.Name)
		}
	}
	return explain.IPTarget(a)
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// hasRules reports whether an isolating policy of a denied direction has rules for it.
func hasRules(s *selectors.Snapshot, da *explain.DirectionAnswer) bool {
	for _, np := range s.Policies {
		for _, ref := range da.IsolatedBy {
			if np.Namespace == ref.Namespace && np.Name == ref.Name {
				if (da.Direction == explain.Ingress && len(np.Spec.Ingress) > 0) || (da.Direction == explain.Egress && len(np.Spec.Egress) > 0) {
					return true
				}
			}
		}
	}
	return false
}

package selectors

import (
	"fmt"
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// FuzzIPBlock: an address is in the ipBlock's ranges iff the block parses, the address is inside
// the cidr and outside every except; the ranges are sorted, disjoint and non-adjacent.
func FuzzIPBlock(f *testing.F) {
	f.Add(false, uint32(0xc6120000), uint8(15), uint32(0xc6120100), uint8(24), uint32(0xc6120180), uint8(25), uint32(0xc6120101), "")
	f.Add(false, uint32(0xc6120107), uint8(16), uint32(0xc6130000), uint8(16), uint32(0), uint8(0), uint32(0xc6120001), "")
	f.Add(true, uint32(0), uint8(64), uint32(0x10000), uint8(112), uint32(0x10000), uint8(120), uint32(0x10001), "")
	f.Add(false, uint32(0x0a000000), uint8(8), uint32(0x0a000000), uint8(8), uint32(0x0a000000), uint8(32), uint32(0x0a000000), "nonsense")
	f.Add(false, uint32(0), uint8(0), uint32(0xffffffff), uint8(32), uint32(0), uint8(1), uint32(0xffffffff), "")
	f.Add(true, uint32(0), uint8(0), uint32(0xffffffff), uint8(128), uint32(0), uint8(33), uint32(0), "198.18.0.0/15")
	f.Fuzz(func(t *testing.T, v6 bool, cidrBase uint32, cidrBits uint8, e1Base uint32, e1Bits uint8, e2Base uint32, e2Bits uint8, addrBits uint32, rawExcept string) {
		mk := func(base uint32, bits uint8) string {
			a := fuzzAddr(v6, base)
			return fmt.Sprintf("%s/%d", a, int(bits)%(a.BitLen()+2)) // sometimes one too long: unparsable
		}
		block := &networkingv1.IPBlock{CIDR: mk(cidrBase, cidrBits), Except: []string{mk(e1Base, e1Bits), mk(e2Base, e2Bits)}}
		if rawExcept != "" {
			block.Except = append(block.Except, rawExcept)
		}
		addr := fuzzAddr(v6, addrBits)

		c := newPolicyCompiler(PolicyRef{Namespace: "a", Name: "p"})
		p, ok := c.compileIPBlock(block, "spec.ingress[0].from[0].ipBlock")

		want := true
		cidr, err := netip.ParsePrefix(block.CIDR)
		want = want && err == nil && cidr.Masked().Contains(addr)
		for _, e := range block.Except {
			except, err := parseCIDR(e)
			want = want && err == nil && !except.Contains(addr)
		}
		got := false
		for _, rg := range p.ipRanges {
			got = got || rg.contains(addr)
		}
		if got != want {
			t.Fatalf("%v: %s in ranges %v = %v, want %v (ok=%v, problems %v)", block, addr, p.ipRanges, got, want, ok, c.problems)
		}
		if !ok && len(p.ipRanges) > 0 {
			t.Fatalf("rejected block has ranges")
		}
		for i := 1; i < len(p.ipRanges); i++ {
			prev, cur := p.ipRanges[i-1], p.ipRanges[i]
			if prev.From.BitLen() == cur.From.BitLen() && !prev.To.Next().Less(cur.From) {
				t.Fatalf("ranges %v and %v overlap or touch", prev, cur)
			}
		}
	})
}

// fuzzAddr places 32 bits in 0.0.0.0/0 or in the low bits of fd18::/96.
func fuzzAddr(v6 bool, bits uint32) netip.Addr {
	if !v6 {
		return netip.AddrFrom4([4]byte{byte(bits >> 24), byte(bits >> 16), byte(bits >> 8), byte(bits)})
	}
	b := netip.MustParseAddr("fd18::").As16()
	b[12], b[13], b[14], b[15] = byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits)
	return netip.AddrFrom16(b)
}

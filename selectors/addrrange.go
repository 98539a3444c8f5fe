package selectors

import (
	"net/netip"
	"slices"
)

// rangeOfPrefix is the inclusive address range a (masked) prefix covers.
func rangeOfPrefix(p netip.Prefix) AddrRange {
	p = p.Masked()
	first := p.Addr()
	if first.Is4() {
		b := first.As4()
		for bit := p.Bits(); bit < 32; bit++ {
			b[bit/8] |= 1 << (7 - bit%8)
		}
		return AddrRange{From: first, To: netip.AddrFrom4(b)}
	}
	b := first.As16()
	for bit := p.Bits(); bit < 128; bit++ {
		b[bit/8] |= 1 << (7 - bit%8)
	}
	return AddrRange{From: first, To: netip.AddrFrom16(b)}
}

// contains reports whether a is inside r (same family only).
func (r AddrRange) contains(a netip.Addr) bool {
	return r.From.BitLen() == a.BitLen() && r.From.Compare(a) <= 0 && a.Compare(r.To) <= 0
}

// subtractRange removes cut from every range of rs. Ranges of the other family are untouched.
func subtractRange(rs []AddrRange, cut AddrRange) []AddrRange {
	out := rs[:0:0]
	for _, r := range rs {
		if r.From.BitLen() != cut.From.BitLen() || cut.To.Less(r.From) || r.To.Less(cut.From) {
			out = append(out, r) // disjoint
			continue
		}
		if r.From.Less(cut.From) {
			out = append(out, AddrRange{From: r.From, To: cut.From.Prev()})
		}
		if cut.To.Less(r.To) {
			out = append(out, AddrRange{From: cut.To.Next(), To: r.To})
		}
	}
	return out
}

// normalizeRanges sorts ranges and merges the overlapping and adjacent ones, so that equal address
// sets always have equal representations. IPv4 sorts before IPv6 (netip.Addr.Compare).
func normalizeRanges(rs []AddrRange) []AddrRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b AddrRange) int {
		if c := a.From.Compare(b.From); c != 0 {
			return c
		}
		return a.To.Compare(b.To)
	})
	out := rs[:0] // merged in place: out never passes the range being read
	var m rangeMerger
	for _, r := range rs {
		if done, ok := m.push(r); ok {
			out = append(out, done)
		}
	}
	if done, ok := m.flush(); ok {
		out = append(out, done)
	}
	return out
}

// rangeMerger merges ranges pushed in order of From into sorted, disjoint, non-adjacent ranges.
type rangeMerger struct {
	open    bool
	current AddrRange
}

// push adds the next range; it returns a finished range when r starts past the current one.
func (m *rangeMerger) push(r AddrRange) (AddrRange, bool) {
	if m.open {
		next := m.current.To.Next() // invalid when To is the family's highest address
		sameFamily := m.current.From.BitLen() == r.From.BitLen()
		if sameFamily && (!next.IsValid() || r.From.Compare(next) <= 0) {
			if m.current.To.Less(r.To) {
				m.current.To = r.To
			}
			return AddrRange{}, false
		}
	}
	done, ok := m.current, m.open
	m.current, m.open = r, true
	return done, ok
}

// flush returns the last range, if any.
func (m *rangeMerger) flush() (AddrRange, bool) {
	done, ok := m.current, m.open
	*m = rangeMerger{}
	return done, ok
}

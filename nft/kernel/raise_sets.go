package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// raiseSet inverts addSet and the elements lowering of a named set.
func raiseSet(s *nftables.Set, attrs setAttributes, elems []nftables.SetElement) (nft.Set, error) {
	t, ok := keyTypeOf(s)
	if !ok {
		return nft.Set{}, fmt.Errorf("set %s: key type %s (concatenation %t) is not one of ours", s.Name, s.KeyType.Name, s.Concatenation)
	}
	set := nft.Set{Name: s.Name, Type: t, Interval: s.Interval, Size: s.Size, Comment: attrs.comment}
	var err error
	switch {
	case s.Dynamic != s.HasTimeout || s.Dynamic && (s.Interval || s.Timeout <= 0):
		err = fmt.Errorf("flags dynamic %t, timeout %t (%s), interval %t: the lowering makes dynamic sets with a timeout only",
			s.Dynamic, s.HasTimeout, s.Timeout, s.Interval)
	case s.Dynamic:
		// Filled by the rules as packets pass: the model holds none of its elements.
		set.Dynamic, set.Timeout = true, s.Timeout
	case s.Interval && (t == nft.KeyIPv4 || t == nft.KeyIPv6 || t == nft.KeyPort):
		set.Elements, err = raiseRangeElements(t, elems)
	case s.Interval:
		err = fmt.Errorf("interval set of type %s", t)
	default:
		set.Elements, err = raiseElements(t, elems)
	}
	if err != nil {
		return nft.Set{}, fmt.Errorf("set %s: %w", s.Name, err)
	}
	nft.SortElements(set.Elements)
	return set, nil
}

// keyTypeOf finds our key type of a named set.
func keyTypeOf(s *nftables.Set) (nft.KeyType, bool) {
	for t, dt := range setKeyTypes {
		if dt.GetNFTMagic() == s.KeyType.GetNFTMagic() && isConcat(t) == s.Concatenation {
			return t, true
		}
	}
	return "", false
}

func raiseElements(t nft.KeyType, elems []nftables.SetElement) ([]nft.Element, error) {
	out := make([]nft.Element, 0, len(elems))
	for _, e := range elems {
		if e.IntervalEnd {
			return nil, fmt.Errorf("interval end %x in a set without intervals", e.Key)
		}
		el, err := raiseKey(t, e.Key)
		if err != nil {
			return nil, err
		}
		if t == nft.KeyPort {
			el.PortEnd = el.Port
		}
		out = append(out, el)
	}
	return out, nil
}

// raiseRangeElements turns the start and end elements of an interval set of addresses or ports into
// ranges.
func raiseRangeElements(t nft.KeyType, elems []nftables.SetElement) ([]nft.Element, error) {
	ranges, err := raiseIntervals(elems, keyLens[t])
	if err != nil {
		return nil, err
	}
	out := make([]nft.Element, 0, len(ranges))
	for _, r := range ranges {
		first, err := raiseKey(t, r.first)
		if err != nil {
			return nil, err
		}
		last, err := raiseKey(t, r.last)
		if err != nil {
			return nil, err
		}
		if t == nft.KeyPort {
			out = append(out, nft.Element{Port: first.Port, PortEnd: last.Port})
		} else {
			out = append(out, nft.Element{Addr: first.Addr, AddrEnd: last.Addr})
		}
	}
	return out, nil
}

// keyRange is an inclusive range of big-endian keys.
type keyRange struct{ first, last []byte }

// raiseIntervals inverts pushSetElement's intervals: each range first-last is a start element with
// key first and an end element with key last+1, or no end element when the range reaches the end of
// the key space. Adjacent ranges share a key, the end of one and the start of the next.
func raiseIntervals(elems []nftables.SetElement, keyLen int) ([]keyRange, error) {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var out []keyRange
	for i := 0; i < len(sorted); i++ {
		start := sorted[i]
		if len(start.Key) != keyLen {
			return nil, fmt.Errorf("element key %x: want %d bytes", start.Key, keyLen)
		}
		if start.IntervalEnd {
			return nil, fmt.Errorf("interval end %x without a start", start.Key)
		}
		if i+1 < len(sorted) && sorted[i+1].IntervalEnd {
			last, ok := predecessor(sorted[i+1].Key)
			if !ok || len(last) != keyLen {
				return nil, fmt.Errorf("interval end %x", sorted[i+1].Key)
			}
			out = append(out, keyRange{first: start.Key, last: last})
			i++
			continue
		}
		if i+1 < len(sorted) {
			return nil, fmt.Errorf("interval %x has no end but is not the last", start.Key)
		}
		out = append(out, keyRange{first: start.Key, last: bytes.Repeat([]byte{0xff}, keyLen)})
	}
	return out, nil
}

// predecessor returns key-1 as a big-endian number; false for zero.
func predecessor(key []byte) ([]byte, bool) {
	out := slices.Clone(key)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] > 0 {
			out[i]--
			return out, true
		}
		out[i] = 0xff
	}
	return nil, false
}

// raiseKey inverts appendKey.
func raiseKey(t nft.KeyType, key []byte) (nft.Element, error) {
	if len(key) != keyLens[t] {
		return nft.Element{}, fmt.Errorf("element key %x: want %d bytes for %s", key, keyLens[t], t)
	}
	var e nft.Element
	var err error
	switch t {
	case nft.KeyIPv4, nft.KeyIPv6:
		e.Addr, err = raiseAddr(key)
	case nft.KeyIfname:
		e.Ifname, err = raiseIfname(key)
	case nft.KeyIfnameIPv4, nft.KeyIfnameIPv6:
		if e.Ifname, err = raiseIfname(key[:ifnameLen]); err == nil {
			e.Addr, err = raiseAddr(key[ifnameLen:])
		}
	case nft.KeyPort:
		e.Port = binary.BigEndian.Uint16(key)
	case nft.KeyIPv4ProtoPort, nft.KeyIPv6ProtoPort:
		alen := len(key) - 8
		rest := key[alen:]
		if !isZero(rest[1:4]) || !isZero(rest[6:8]) {
			return nft.Element{}, fmt.Errorf("element key %x: padding is not zero", key)
		}
		e.Addr, err = raiseAddr(key[:alen])
		e.Proto, e.Port = rest[0], binary.BigEndian.Uint16(rest[4:6])
	default:
		err = fmt.Errorf("unknown key type %q", t)
	}
	if err != nil {
		return nft.Element{}, fmt.Errorf("element key %x: %w", key, err)
	}
	return e, nil
}

func raiseAddr(b []byte) (netip.Addr, error) {
	addr, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%d bytes are no address", len(b))
	}
	return addr, nil
}

// raiseIfname inverts appendIfname: a name zero-padded to IFNAMSIZ.
func raiseIfname(b []byte) (string, error) {
	n := bytes.IndexByte(b, 0)
	if n <= 0 || !isZero(b[n:]) {
		return "", fmt.Errorf("%x is not a zero-padded interface name", b)
	}
	return string(b[:n]), nil
}

func isZero(b []byte) bool {
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

// raiseMap inverts addMap and mapElements.
func raiseMap(s *nftables.Set, attrs setAttributes, elems []nftables.SetElement) (nft.Map, error) {
	m := nft.Map{Name: s.Name, Comment: attrs.comment}
	switch attrs.keyLen {
	case 4:
		m.Type = nft.KeyIPv4
	case 16:
		m.Type = nft.KeyIPv6
	default:
		return nft.Map{}, fmt.Errorf("map %s: keys of %d bytes are not addresses", s.Name, attrs.keyLen)
	}
	if s.Interval || s.Concatenation {
		return nft.Map{}, fmt.Errorf("map %s: interval or concatenated keys", s.Name)
	}
	for _, e := range elems {
		el, err := raiseKey(m.Type, e.Key)
		if err != nil {
			return nft.Map{}, fmt.Errorf("map %s: %w", s.Name, err)
		}
		if e.VerdictData == nil {
			return nft.Map{}, fmt.Errorf("map %s: element %s without a verdict", s.Name, el.Addr)
		}
		v, err := raiseVerdict(e.VerdictData)
		if err != nil {
			return nft.Map{}, fmt.Errorf("map %s element %s: %w", s.Name, el.Addr, err)
		}
		m.Elements = append(m.Elements, nft.MapElement{Key: el.Addr, Verdict: v})
	}
	slices.SortFunc(m.Elements, func(a, b nft.MapElement) int { return a.Key.Compare(b.Key) })
	return m, nil
}

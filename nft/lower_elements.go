package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// ifnameLen is IFNAMSIZ: interface names are compared as 16 zero-padded bytes.
const ifnameLen = 16

// encodeElement returns the kernel elements for one element of a set of type t.
//
// An interval set stores the range first-last as a start element with key first and an end element
// (flag interval end) with key last+1. A range that ends at the family's last address has no
// successor: nft sends no end element then, and the range is open to the end of the key space.
func encodeElement(t KeyType, interval bool, e Element) ([]nftables.SetElement, error) {
	switch t {
	case KeyIPv4, KeyIPv6:
		key, err := encodeAddr(t, e.Addr)
		if err != nil {
			return nil, err
		}
		out := []nftables.SetElement{{Key: key}}
		if !interval {
			return out, nil
		}
		end := e.AddrEnd
		if !end.IsValid() {
			end = e.Addr
		}
		if end.Less(e.Addr) {
			return nil, fmt.Errorf("range %s-%s ends before it starts", e.Addr, end)
		}
		if next := end.Next(); next.IsValid() {
			nextKey, err := encodeAddr(t, next)
			if err != nil {
				return nil, err
			}
			out = append(out, nftables.SetElement{Key: nextKey, IntervalEnd: true})
		}
		return out, nil
	case KeyIfname:
		name, err := encodeIfname(e.Ifname)
		if err != nil {
			return nil, err
		}
		return []nftables.SetElement{{Key: name}}, nil
	case KeyIfnameIPv4, KeyIfnameIPv6:
		name, err := encodeIfname(e.Ifname)
		if err != nil {
			return nil, err
		}
		addr, err := encodeAddr(addrKeyOf(t), e.Addr)
		if err != nil {
			return nil, err
		}
		return []nftables.SetElement{{Key: append(name, addr...)}}, nil
	case KeyIPv4ProtoPort, KeyIPv6ProtoPort:
		addr, err := encodeAddr(addrKeyOf(t), e.Addr)
		if err != nil {
			return nil, err
		}
		// Each part of a concatenation fills whole 4-byte registers: the protocol byte and the
		// big-endian port are padded with zeros after the value.
		key := append(addr, e.Proto, 0, 0, 0, byte(e.Port>>8), byte(e.Port), 0, 0)
		return []nftables.SetElement{{Key: key}}, nil
	default:
		return nil, fmt.Errorf("unknown key type %q", t)
	}
}

// addrKeyOf returns the address part of a concatenated key type.
func addrKeyOf(t KeyType) KeyType {
	switch t {
	case KeyIfnameIPv6, KeyIPv6ProtoPort, KeyIPv6:
		return KeyIPv6
	default:
		return KeyIPv4
	}
}

// encodeAddr returns addr in network byte order, checking that it belongs to the key's family.
func encodeAddr(t KeyType, addr netip.Addr) ([]byte, error) {
	switch {
	case t == KeyIPv4 && addr.Is4():
		b := addr.As4()
		return b[:], nil
	case t == KeyIPv6 && addr.Is6() && !addr.Is4In6():
		b := addr.As16()
		return b[:], nil
	default:
		return nil, fmt.Errorf("address %v does not fit key type %s", addr, t)
	}
}

func encodeIfname(name string) ([]byte, error) {
	if name == "" || len(name) >= ifnameLen {
		return nil, fmt.Errorf("invalid interface name %q", name)
	}
	b := make([]byte, ifnameLen)
	copy(b, name)
	return b, nil
}

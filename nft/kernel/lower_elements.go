package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Set and map elements are most of a full replacement (56k at 50k cluster pods), so they are encoded
// without allocating for each: the keys of one message go into one reused buffer, and the messages
// of a transaction reuse the same element slice. That is safe because google/nftables copies every
// key and verdict into the netlink message when it queues it.

const (
	// ifnameLen is IFNAMSIZ: interface names are compared as 16 zero-padded bytes.
	ifnameLen = 16
	// nlaHeaderLen is the length and type in front of every netlink attribute.
	nlaHeaderLen = 4
	// maxElementListBytes bounds the one attribute that holds every element of a NEWSETELEM message:
	// an attribute's length is 16 bits (google/nftables would silently truncate a longer one). Under
	// this bound a message carries about 3800 IPv4 addresses, so that most sets take one message.
	maxElementListBytes = 60 << 10
)

// keyLens are the key lengths of our key types: each part of a concatenation fills whole 4-byte
// registers, the protocol byte and the port padded with zeros after the value.
var keyLens = map[nft.KeyType]int{
	nft.KeyIPv4:          4,
	nft.KeyIPv6:          16,
	nft.KeyIfname:        ifnameLen,
	nft.KeyIfnameIPv4:    ifnameLen + 4,
	nft.KeyIfnameIPv6:    ifnameLen + 16,
	nft.KeyIPv4ProtoPort: 4 + 4 + 4,
	nft.KeyIPv6ProtoPort: 16 + 4 + 4,
	nft.KeyPort:          portLen,
}

// elementBatch collects the elements of one NEWSETELEM (or DELSETELEM) message.
type elementBatch struct {
	conn   batchSink
	set    *nftables.Set
	add    bool
	keyLen int
	elems  []nftables.SetElement // their keys are set when the message is queued
	keys   []byte                // the key of elems[i] is keys[i*keyLen:(i+1)*keyLen]
	next   [16]byte              // scratch: the key of an interval's end element
	size   int                   // bytes of the elements attribute so far
}

// begin starts the messages of one set; elements come with push and the last message goes with flush.
func (b *elementBatch) begin(set *nftables.Set, t nft.KeyType, add bool) error {
	kl, ok := keyLens[t]
	if !ok {
		return fmt.Errorf("unknown key type %q", t)
	}
	b.set, b.keyLen, b.add = set, kl, add
	b.elems, b.keys, b.size = b.elems[:0], b.keys[:0], 0
	return nil
}

// reserve counts size more bytes of elements, queueing the message so far first if they would not
// fit in it.
func (b *elementBatch) reserve(size int) error {
	if b.size+size <= maxElementListBytes || len(b.elems) == 0 {
		b.size += size
		return nil
	}
	if err := b.flush(); err != nil {
		return err
	}
	b.size = size
	return nil
}

// flush queues the elements collected so far as one message.
func (b *elementBatch) flush() error {
	if len(b.elems) == 0 {
		return nil
	}
	if len(b.keys) != len(b.elems)*b.keyLen {
		return fmt.Errorf("encoding elements of %s: %d key bytes for %d elements", b.set.Name, len(b.keys), len(b.elems))
	}
	for i := range b.elems {
		b.elems[i].Key = b.keys[i*b.keyLen : (i+1)*b.keyLen : (i+1)*b.keyLen]
	}
	var err error
	if b.add {
		err = b.conn.SetAddElements(b.set, b.elems)
	} else {
		err = b.conn.SetDeleteElements(b.set, b.elems)
	}
	if err != nil {
		return fmt.Errorf("queueing elements of %s: %w", b.set.Name, err)
	}
	b.elems, b.keys, b.size = b.elems[:0], b.keys[:0], 0
	return nil
}

// elementSize is what one element adds to the elements attribute: its own nest, the interval-end
// flag, the key (a nest holding one value), and a verdict (a nest in a nest, with the code and the
// chain name), each attribute padded to 4 bytes.
func elementSize(keyLen int, intervalEnd bool, v *expr.Verdict) int {
	size := nlaHeaderLen + nlaHeaderLen + nlaHeaderLen + align4(keyLen)
	if intervalEnd {
		size += nlaHeaderLen + 4
	}
	if v != nil {
		size += nlaHeaderLen + nlaHeaderLen + nlaHeaderLen + 4 + nlaHeaderLen + align4(len(v.Chain)+1)
	}
	return size
}

func align4(n int) int { return (n + 3) &^ 3 }

// pushSetElement adds one element of a set of type t to the batch.
//
// An interval set stores the range first-last as a start element with key first and an end element
// (flag interval end) with key last+1, in the same message. A range that ends at the last address (or
// port) of the key space has no successor: nft sends no end element then, and the range is open to
// the end of the key space.
func (b *elementBatch) pushSetElement(t nft.KeyType, interval bool, e nft.Element) error {
	var next []byte // the key of the end element, if any
	switch {
	case interval && t == nft.KeyPort:
		if e.PortEnd < e.Port {
			return fmt.Errorf("port range %d-%d ends before it starts", e.Port, e.PortEnd)
		}
		if e.PortEnd < 0xffff {
			next = binary.BigEndian.AppendUint16(b.next[:0], e.PortEnd+1)
		}
	case interval && (t == nft.KeyIPv4 || t == nft.KeyIPv6):
		end := e.AddrEnd
		if !end.IsValid() {
			end = e.Addr
		}
		if end.Less(e.Addr) {
			return fmt.Errorf("range %s-%s ends before it starts", e.Addr, end)
		}
		if n := end.Next(); n.IsValid() {
			var err error
			if next, err = appendAddr(b.next[:0], t, n); err != nil {
				return err
			}
		}
	}
	size := elementSize(b.keyLen, false, nil)
	if next != nil {
		size += elementSize(b.keyLen, true, nil)
	}
	if err := b.reserve(size); err != nil {
		return err
	}
	keys, err := appendKey(b.keys, t, e)
	if err != nil {
		return err
	}
	b.elems = append(b.elems, nftables.SetElement{})
	if next != nil {
		keys = append(keys, next...)
		b.elems = append(b.elems, nftables.SetElement{IntervalEnd: true})
	}
	b.keys = keys
	return nil
}

// pushMapElement adds one element of a verdict map keyed by addresses of type t; v is nil when
// deleting.
func (b *elementBatch) pushMapElement(t nft.KeyType, key netip.Addr, v *expr.Verdict) error {
	if err := b.reserve(elementSize(b.keyLen, false, v)); err != nil {
		return err
	}
	keys, err := appendAddr(b.keys, t, key)
	if err != nil {
		return err
	}
	b.keys = keys
	b.elems = append(b.elems, nftables.SetElement{VerdictData: v})
	return nil
}

// appendKey appends the key of e, an element of a set of type t, to buf.
func appendKey(buf []byte, t nft.KeyType, e nft.Element) ([]byte, error) {
	switch t {
	case nft.KeyIPv4, nft.KeyIPv6:
		return appendAddr(buf, t, e.Addr)
	case nft.KeyIfname:
		return appendIfname(buf, e.Ifname)
	case nft.KeyIfnameIPv4, nft.KeyIfnameIPv6:
		buf, err := appendIfname(buf, e.Ifname)
		if err != nil {
			return nil, err
		}
		return appendAddr(buf, addrKeyOf(t), e.Addr)
	case nft.KeyPort:
		return binary.BigEndian.AppendUint16(buf, e.Port), nil
	case nft.KeyIPv4ProtoPort, nft.KeyIPv6ProtoPort:
		buf, err := appendAddr(buf, addrKeyOf(t), e.Addr)
		if err != nil {
			return nil, err
		}
		// The protocol byte and the big-endian port, each padded to a 4-byte register.
		return append(buf, e.Proto, 0, 0, 0, byte(e.Port>>8), byte(e.Port), 0, 0), nil
	default:
		return nil, fmt.Errorf("unknown key type %q", t)
	}
}

// addrKeyOf returns the address part of a concatenated key type.
func addrKeyOf(t nft.KeyType) nft.KeyType {
	switch t {
	case nft.KeyIfnameIPv6, nft.KeyIPv6ProtoPort, nft.KeyIPv6:
		return nft.KeyIPv6
	default:
		return nft.KeyIPv4
	}
}

// appendAddr appends addr in network byte order, checking that it belongs to the key's family.
func appendAddr(buf []byte, t nft.KeyType, addr netip.Addr) ([]byte, error) {
	switch {
	case t == nft.KeyIPv4 && addr.Is4():
		a := addr.As4()
		return append(buf, a[:]...), nil
	case t == nft.KeyIPv6 && addr.Is6() && !addr.Is4In6():
		a := addr.As16()
		return append(buf, a[:]...), nil
	default:
		return nil, fmt.Errorf("address %v does not fit key type %s", addr, t)
	}
}

// appendIfname appends name zero-padded to IFNAMSIZ.
func appendIfname(buf []byte, name string) ([]byte, error) {
	if name == "" || len(name) >= ifnameLen {
		return nil, fmt.Errorf("invalid interface name %q", name)
	}
	var padding [ifnameLen]byte
	buf = append(buf, name...)
	return append(buf, padding[len(name):]...), nil
}

package harness

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// MeasureElementFloor, with loaded nil, times the smallest transactions of nftpolicy's table: one element added to
// the local pod address set, and the same element deleted. A deleting nf_tables transaction waits
// for an RCU grace period before it returns; an adding one does not. No layout goes below these.
// With loaded, the namespace holds that table (e.g. the full-scale one) and the element goes to its
// largest peer set, an interval set like every peer set.
func MeasureElementFloor(repeats int, loaded *nft.Ruleset) (*ElementFloor, error) {
	out := &ElementFloor{}
	err := withNode(func(node *netlab.Node) error {
		backend, err := kernel.NewNetlinkBackend(node.Path)
		if err != nil {
			return err
		}
		defer backend.Close()
		rs := loaded
		if rs == nil {
			rs = nft.Compile(nft.CompileInput{Table: Table, Model: &selectors.Model{}})
		}
		if err := backend.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
			return err
		}
		set, ok := floorSet(rs, loaded != nil)
		if !ok {
			return errors.New("no IPv4 set to measure the floor with")
		}
		elems := []nft.Element{{Addr: floorAddr}}
		if set.Interval {
			elems[0].AddrEnd = floorAddr
		}
		add := &nft.Transaction{Table: Table, Ops: []nft.Op{nft.AddElements{Set: set.Name, Type: nft.KeyIPv4, Interval: set.Interval, Elements: elems}}}
		del := &nft.Transaction{Table: Table, Ops: []nft.Op{nft.DeleteElements{Set: set.Name, Type: nft.KeyIPv4, Interval: set.Interval, Elements: elems}}}
		out.Set = fmt.Sprintf("%s (%d elements, interval %t)", set.Name, len(set.Elements), set.Interval)
		for range repeats {
			start := time.Now()
			if err := backend.Run(add); err != nil {
				return err
			}
			out.AddMS = append(out.AddMS, ms(time.Since(start)))
			start = time.Now()
			if err := backend.Run(del); err != nil {
				return err
			}
			out.DeleteMS = append(out.DeleteMS, ms(time.Since(start)))
		}
		return nil
	})
	return out, err
}

// floorAddr is no pod's address and outside every generated ipBlock (they except 10.0.0.0/8).
var floorAddr = netip.MustParseAddr("10.255.255.1")

// floorSet picks the set the floor is measured on: in a loaded table, the largest IPv4 interval set
// (a peer set, where events add and delete) that does not hold floorAddr; otherwise the plain local
// pod address set.
func floorSet(rs *nft.Ruleset, largestInterval bool) (nft.Set, bool) {
	var best nft.Set
	found := false
	for _, s := range rs.Sets {
		if s.Type != nft.KeyIPv4 || s.Interval != largestInterval {
			continue
		}
		if largestInterval && (holds(s, floorAddr) || (found && len(s.Elements) <= len(best.Elements))) {
			continue
		}
		best, found = s, true
		if !largestInterval {
			break
		}
	}
	return best, found
}

func holds(s nft.Set, a netip.Addr) bool {
	for _, e := range s.Elements {
		end := e.AddrEnd
		if !end.IsValid() {
			end = e.Addr
		}
		if e.Addr.Compare(a) <= 0 && a.Compare(end) <= 0 {
			return true
		}
	}
	return false
}

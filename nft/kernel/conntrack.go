package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetlinkConntrack cleans the conntrack table of one network namespace.
type NetlinkConntrack struct {
	handle *netlink.Handle
}

var _ nft.ConntrackCleaner = (*NetlinkConntrack)(nil)

// NewNetlinkConntrack opens the conntrack table of the namespace at netnsPath ("" = the current one).
func NewNetlinkConntrack(netnsPath string) (*NetlinkConntrack, error) {
	ns := netns.None()
	if netnsPath != "" {
		var err error
		if ns, err = netns.GetFromPath(netnsPath); err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
		}
		defer ns.Close()
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening the conntrack table: %w", err)
	}
	return &NetlinkConntrack{handle: h}, nil
}

// Close releases the netlink handle.
func (c *NetlinkConntrack) Close() {
	c.handle.Close()
}

// Cleanup dumps the table of each family and deletes the flows rs denies.
func (c *NetlinkConntrack) Cleanup(rs *nft.Ruleset, podIfaces map[netip.Addr]string) (int, error) {
	filter := conntrackFilter{judge: nft.NewStaleFlows(rs, podIfaces)}
	var total uint
	var errs []error
	for _, family := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		n, err := c.handle.ConntrackDeleteFilters(netlink.ConntrackTable, family, filter)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting denied connections of family %d: %w", family, err))
		}
	}
	return int(total), errors.Join(errs...)
}

// conntrackFilter adapts the judgement to netlink's filter interface.
type conntrackFilter struct {
	judge *nft.StaleFlows
}

func (f conntrackFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	src, ok1 := netip.AddrFromSlice(flow.Forward.SrcIP)
	dst, ok2 := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return false
	}
	return f.judge.Denied(nft.Flow{Src: src.Unmap(), Dst: dst.Unmap(), Proto: flow.Forward.Protocol, DstPort: flow.Reverse.SrcPort})
}

// Tracked reports how many connections conntrack holds for the flow (source, destination after DNAT,
// protocol, destination port): one it holds passes our chains as established, whatever the
// policies say now. It reads the table of the flow's family in one dump.
func (c *NetlinkConntrack) Tracked(f nft.Flow) (int, error) {
	family := netlink.InetFamily(unix.AF_INET)
	if f.Src.Is6() {
		family = unix.AF_INET6
	}
	flows, err := c.handle.ConntrackTableList(netlink.ConntrackTable, family)
	if err != nil {
		return 0, fmt.Errorf("listing the conntrack table: %w", err)
	}
	n := 0
	for _, flow := range flows {
		src, ok1 := netip.AddrFromSlice(flow.Forward.SrcIP)
		dst, ok2 := netip.AddrFromSlice(flow.Reverse.SrcIP)
		if ok1 && ok2 && src.Unmap() == f.Src && dst.Unmap() == f.Dst && flow.Forward.Protocol == f.Proto && flow.Reverse.SrcPort == f.DstPort {
			n++
		}
	}
	return n, nil
}

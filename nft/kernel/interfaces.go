package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var _ nft.InterfaceResolver = (*NetlinkInterfaces)(nil)

// NetlinkInterfaces asks the kernel's routing table of one network namespace.
type NetlinkInterfaces struct {
	handle *netlink.Handle
}

// NewNetlinkInterfaces opens a netlink handle in the network namespace at netnsPath ("" = the
// current one).
func NewNetlinkInterfaces(netnsPath string) (*NetlinkInterfaces, error) {
	if netnsPath == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("opening netlink handle: %w", err)
		}
		return &NetlinkInterfaces{handle: h}, nil
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink handle in %s: %w", netnsPath, err)
	}
	return &NetlinkInterfaces{handle: h}, nil
}

// Close releases the netlink handle.
func (r *NetlinkInterfaces) Close() {
	r.handle.Close()
}

// Interfaces looks up the route to each address. Only routes straight to a device count: a route via
// a gateway (another node, the default route) or to a local address does not lead to a local pod.
func (r *NetlinkInterfaces) Interfaces(addrs []netip.Addr) (map[netip.Addr]string, error) {
	out := make(map[netip.Addr]string, len(addrs))
	names := map[int]string{}
	for _, a := range addrs {
		routes, err := r.handle.RouteGet(a.AsSlice())
		if err != nil {
			// ENETUNREACH and friends: no route, so no local pod behind it.
			continue
		}
		for _, rt := range routes {
			if rt.Gw != nil || rt.Via != nil || rt.Type != unix.RTN_UNICAST || rt.LinkIndex == 0 {
				continue
			}
			name, ok := names[rt.LinkIndex]
			if !ok {
				link, err := r.handle.LinkByIndex(rt.LinkIndex)
				if err != nil {
					return nil, fmt.Errorf("finding interface %d of the route to %s: %w", rt.LinkIndex, a, err)
				}
				name = link.Attrs().Name
				names[rt.LinkIndex] = name
			}
			out[a] = name
			break
		}
	}
	return out, nil
}

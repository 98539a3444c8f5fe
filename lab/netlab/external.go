package netlab

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// External is a namespace standing for a machine outside the cluster: it has a link to every node
// and reaches the nodes' own addresses over them (a NodePort, a LoadBalancer's node), never a pod
// directly.
type External struct {
	Netns
	Index      int // c in the address plan
	IPv4, IPv6 netip.Addr
}

// externalGatewayV6 is the external client's side of each of its links, which the node routes the
// client's IPv6 address through; the node's side is gatewayV6, as on a pod's veth.
var externalGatewayV6 = netip.MustParseAddr("fe80::2")

// AddExternal creates an external client joined to every node added so far: a veth per node, a
// route to each node's own addresses over it, and on each node a route back to the client's
// addresses. Nodes added later are not joined.
func (l *Lab) AddExternal() (*External, error) {
	index := len(l.externals) + 1
	if index > 99 {
		return nil, errors.New("too many external clients")
	}
	if len(l.nodes) == 0 {
		return nil, errors.New("adding an external client: the lab has no node")
	}
	ns, err := l.newNetns(fmt.Sprintf("ext%d", index))
	if err != nil {
		return nil, err
	}
	ext := &External{
		Netns: *ns, Index: index,
		IPv4: netip.AddrFrom4([4]byte{198, 19, 1, byte(index)}),
		IPv6: netip.MustParseAddr(fmt.Sprintf("fd18:ffff:fffe::%x", index)),
	}
	err = ext.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := addAddr(lo, netip.PrefixFrom(ext.IPv4, 32)); err != nil {
			return err
		}
		return addAddr(lo, netip.PrefixFrom(ext.IPv6, 128))
	})
	if err != nil {
		return nil, fmt.Errorf("adding the addresses of external client %d: %w", index, err)
	}
	for _, n := range l.nodes {
		if err := l.joinExternal(ext, n); err != nil {
			return nil, err
		}
	}
	l.externals = append(l.externals, ext)
	return ext, nil
}

// joinExternal adds a veth between the client and node n and the routes over it:
//
//	client: 198.19.0.n dev node<n> onlink src 198.19.1.c; fd18:ffff:ffff::n via fe80::1 dev node<n>
//	node:   198.19.1.c dev ext<c> onlink src 198.19.0.n;  fd18:ffff:fffe::c via fe80::2 dev ext<c>
//
// IPv4 resolves the far side's own address directly (Linux answers ARP for any local address); IPv6
// answers neighbour solicitations only for addresses of the link, hence the link-local gateways.
func (l *Lab) joinExternal(ext *External, n *Node) error {
	clientIf, nodeIf := fmt.Sprintf("node%d", n.Index), fmt.Sprintf("ext%d", ext.Index)
	nodeNs, err := netns.GetFromPath(n.Path)
	if err != nil {
		return err
	}
	defer nodeNs.Close()
	err = ext.Do(func() error {
		return netlink.LinkAdd(&netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: clientIf},
			PeerName:      nodeIf,
			PeerNamespace: netlink.NsFd(nodeNs),
		})
	})
	if err != nil {
		return fmt.Errorf("adding the veth between external client %d and node %d: %w", ext.Index, n.Index, err)
	}
	sides := []struct {
		ns         *Netns
		ifname     string
		gateway    netip.Addr // this side's link-local address
		peerGw     netip.Addr
		src4, dst4 netip.Addr
		src6, dst6 netip.Addr
	}{
		{&ext.Netns, clientIf, externalGatewayV6, gatewayV6, ext.IPv4, n.IPv4, ext.IPv6, n.IPv6},
		{&n.Netns, nodeIf, gatewayV6, externalGatewayV6, n.IPv4, ext.IPv4, n.IPv6, ext.IPv6},
	}
	for _, s := range sides {
		err := s.ns.Do(func() error {
			link, err := netlink.LinkByName(s.ifname)
			if err != nil {
				return err
			}
			if err := addAddr(link, netip.PrefixFrom(s.gateway, 64)); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(link); err != nil {
				return err
			}
			routes := []*netlink.Route{
				{LinkIndex: link.Attrs().Index, Dst: hostPrefix(s.dst4), Src: s.src4.AsSlice(), Scope: netlink.SCOPE_LINK},
				{LinkIndex: link.Attrs().Index, Dst: hostPrefix(s.dst6), Gw: s.peerGw.AsSlice(), Src: s.src6.AsSlice()},
			}
			for _, r := range routes {
				if err := netlink.RouteAdd(r); err != nil {
					return fmt.Errorf("adding route to %s: %w", r.Dst, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("configuring the link between external client %d and node %d: %w", ext.Index, n.Index, err)
		}
	}
	if err := waitOperUp(&ext.Netns, clientIf); err != nil {
		return err
	}
	return waitOperUp(&n.Netns, nodeIf)
}

package controllers_test

import (
	"net"
	"net/netip"
	"time"

	. "github.com/onsi/gomega"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Conntrack and NetworkPolicy on the kernel. Our table accepts `ct state established,related` before any
// policy check, so a flow the kernel tracked while a pair was allowed keeps passing after a policy denies
// the pair, until conntrack forgets it (UDP: 30s after its last packet). For UDP that includes new
// sockets: a datagram from a source port that an earlier, allowed exchange used belongs to that flow.
// The agent does not yet delete the tracked flows of pairs that a new ruleset denies; see the pending
// spec in kernel_traffic_test.go.

// forgetFlows deletes the tracked flows from client to server in the namespace of server's node, whose
// ingress table judges them: what the agent's conntrack cleanup would do once a policy denies the pair.
func forgetFlows(client, server *kernelPod) {
	ns, err := netns.GetFromPath(server.net.Node.Path)
	Expect(err).NotTo(HaveOccurred())
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	Expect(err).NotTo(HaveOccurred())
	defer h.Close()
	for i, src := range client.addrs() {
		dst := server.addrs()[i] // same family
		filter := &netlink.ConntrackFilter{}
		Expect(filter.AddIP(netlink.ConntrackOrigSrcIP, src.AsSlice())).To(Succeed())
		Expect(filter.AddIP(netlink.ConntrackOrigDstIP, dst.AsSlice())).To(Succeed())
		family := netlink.InetFamily(unix.AF_INET)
		if src.Is6() {
			family = unix.AF_INET6
		}
		_, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, family, filter)
		Expect(err).NotTo(HaveOccurred(), "deleting tracked flows %s -> %s", src, dst)
	}
}

// requestUDPFromPort is netlab's RequestUDP from a fixed source port, so that two requests belong to the
// same conntrack flow.
func requestUDPFromPort(client *kernelPod, srcPort uint16, dst netip.AddrPort, timeout time.Duration) error {
	var conn *net.UDPConn
	err := client.net.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp", &net.UDPAddr{Port: int(srcPort)}, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("ping")); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 16))
	return err
}

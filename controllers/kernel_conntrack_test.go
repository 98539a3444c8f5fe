package controllers_test

import (
	"net"
	"net/netip"
	"time"
)

// Conntrack and NetworkPolicy on the kernel. Our table accepts `ct state established,related` before any
// policy check, so a flow the kernel tracked while a pair was allowed would keep passing after a policy
// denies the pair, until conntrack forgets it (UDP: 30s after its last packet); for UDP that includes new
// sockets reusing an old source port. The agent deletes such flows after each commit; the spec "ends the
// tracked flows of pairs that a new policy denies" in kernel_traffic_test.go checks it.

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

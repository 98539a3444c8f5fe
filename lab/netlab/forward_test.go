package netlab

import (
	"bufio"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestForwardTCP reaches a server on the test process's loopback from inside a node namespace, at
// the same address and port, and nothing once the forwarder is closed.
func TestForwardTCP(t *testing.T) {
	lab := NewForTest(t)
	node, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = c.Write([]byte("echo " + line))
			}()
		}
	}()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	fwd, err := node.ForwardTCP(addr, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip := func() (string, error) {
		var c net.Conn
		if err := node.Do(func() error {
			var err error
			c, err = net.DialTimeout("tcp", addr.String(), time.Second)
			return err
		}); err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	got, err := roundTrip()
	if err != nil || got != "echo hello\n" {
		t.Fatalf("through the forwarder: got %q, %v; want the echo", got, err)
	}
	if err := fwd.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(); err == nil {
		t.Fatalf("after Close: got %q, want a refused connection", got)
	}
}

package netlab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Server is a TCP listener and a UDP echo server on the same port, inside a namespace. A TCP client
// that connects reads back its own address as the server saw it, which proves both directions work.
type Server struct {
	tcp  net.Listener
	udp  []net.PacketConn
	wg   sync.WaitGroup
	once sync.Once
}

// Serve starts TCP and UDP servers on port, on every address of the namespace (IPv4 and IPv6).
func (n *Netns) Serve(port uint16) (*Server, error) {
	s := &Server{}
	err := n.Do(func() error {
		var err error
		// "tcp" on [::] accepts IPv4 too; UDP gets one socket per family so that replies leave from
		// the address the request was sent to.
		if s.tcp, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port)); err != nil {
			return err
		}
		for _, network := range []string{"udp4", "udp6"} {
			c, err := net.ListenPacket(network, fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			s.udp = append(s.udp, c)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("listening on port %d in %s: %w", port, n.Name, err)
	}
	s.wg.Add(1 + len(s.udp))
	go s.acceptTCP()
	for _, c := range s.udp {
		go s.echoUDP(c)
	}
	return s, nil
}

func (s *Server) acceptTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, c.RemoteAddr().String()+"\n")
		_ = c.Close()
	}
}

func (s *Server) echoUDP(c net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(buf[:n], from)
	}
}

// Close stops the servers and waits for their goroutines.
func (s *Server) Close() {
	s.once.Do(func() {
		if s.tcp != nil {
			_ = s.tcp.Close()
		}
		for _, c := range s.udp {
			_ = c.Close()
		}
	})
	s.wg.Wait()
}

// ConnectTCP connects from the namespace to dst and reads the server's greeting, within timeout.
func (n *Netns) ConnectTCP(dst netip.AddrPort, timeout time.Duration) error {
	var conn net.Conn
	err := n.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", dst.String(), timeout)
		return err
	})
	if err != nil {
		return fmt.Errorf("connecting from %s to %s over TCP: %w", n.Name, dst, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	line, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("reading from %s over TCP: %w", dst, err)
	}
	if len(line) == 0 {
		return fmt.Errorf("reading from %s over TCP: empty greeting", dst)
	}
	return nil
}

// RequestUDP sends one datagram from the namespace to dst and waits for its echo, within timeout.
func (n *Netns) RequestUDP(dst netip.AddrPort, timeout time.Duration) error {
	var conn net.Conn
	err := n.Do(func() error {
		var err error
		conn, err = net.Dial("udp", dst.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("opening UDP socket from %s to %s: %w", n.Name, dst, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	want := "ping from " + n.Name
	if _, err := io.WriteString(conn, want); err != nil {
		return fmt.Errorf("sending UDP to %s: %w", dst, err)
	}
	buf := make([]byte, 1500)
	got, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("waiting for the UDP echo from %s: %w", dst, err)
	}
	if string(buf[:got]) != want {
		return errors.New("UDP echo differs from the request")
	}
	return nil
}

// ServeTCP starts only the TCP server of Serve on port: a pod that declares a TCP port and no UDP
// port answers nothing over UDP.
func (n *Netns) ServeTCP(port uint16) (*Server, error) {
	s := &Server{}
	err := n.Do(func() error {
		var err error
		s.tcp, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on TCP port %d in %s: %w", port, n.Name, err)
	}
	s.wg.Add(1)
	go s.acceptTCP()
	return s, nil
}

// ServeUDP starts only the UDP echo servers of Serve on port.
func (n *Netns) ServeUDP(port uint16) (*Server, error) {
	s := &Server{}
	err := n.Do(func() error {
		for _, network := range []string{"udp4", "udp6"} {
			c, err := net.ListenPacket(network, fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			s.udp = append(s.udp, c)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("listening on UDP port %d in %s: %w", port, n.Name, err)
	}
	s.wg.Add(len(s.udp))
	for _, c := range s.udp {
		go s.echoUDP(c)
	}
	return s, nil
}

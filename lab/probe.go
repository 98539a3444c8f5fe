package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// ProbeTimeout is how long a probe waits for a connect or a reply: a blocked pair costs this much.
const ProbeTimeout = time.Second

// udpAttempts is how many times a UDP probe sends its datagram within the timeout.
const udpAttempts = 2

// Probe opens a new connection from the network namespace to dst and reports whether it went through:
// for TCP the connect completed, for UDP the server's echo came back. A connection that is refused,
// reset or times out is blocked; an error means the probe could not run.
func Probe(ctx context.Context, from netlab.Netns, dst netip.AddrPort, protocol string, timeout time.Duration) (bool, error) {
	var (
		conn    net.Conn
		dialErr error
	)
	// Sockets belong to the namespace of the thread that creates them, so only the dial runs inside.
	err := from.Do(func() error {
		switch protocol {
		case scenario.ProtocolTCP:
			d := net.Dialer{Timeout: timeout}
			conn, dialErr = d.DialContext(ctx, "tcp", dst.String())
		case scenario.ProtocolUDP:
			conn, dialErr = net.Dial("udp", dst.String())
		default:
			return fmt.Errorf("cannot probe %s", protocol)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if dialErr != nil {
		return false, nil
	}
	defer conn.Close()
	if protocol == scenario.ProtocolTCP {
		return true, nil
	}
	return requestUDP(conn, from.Name, timeout), nil
}

// requestUDP sends a datagram and waits for its echo, sending again halfway through the timeout.
func requestUDP(conn net.Conn, from string, timeout time.Duration) bool {
	want := "probe from " + from
	buf := make([]byte, 1500)
	for range udpAttempts {
		if _, err := io.WriteString(conn, want); err != nil {
			return false
		}
		_ = conn.SetReadDeadline(time.Now().Add(timeout / udpAttempts))
		n, err := conn.Read(buf)
		if err == nil && string(buf[:n]) == want {
			return true
		}
		if err != nil && !isTimeout(err) {
			return false // refused: an ICMP error came back
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sctpSocketsAvailable opens and closes an SCTP socket.
func sctpSocketsAvailable() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	return unix.Close(fd)
}

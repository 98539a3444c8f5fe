package packet

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// The workloads use blocking system calls on locked threads: the clock then measures the kernel's
// path (and the policy on it), not the Go network poller's wake-ups.

// retryEINTR repeats a system call that a signal interrupted. Sockets with SO_RCVTIMEO or SO_SNDTIMEO
// are not restarted by SA_RESTART, and the Go runtime does send signals.
func retryEINTR(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func sockaddr(ap netip.AddrPort) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// setTimeouts bounds every blocking receive (accept included) and send (connect included) of fd.
func setTimeouts(fd int, recv, send time.Duration) error {
	for _, o := range []struct {
		opt int
		d   time.Duration
	}{{unix.SO_RCVTIMEO, recv}, {unix.SO_SNDTIMEO, send}} {
		if o.d <= 0 {
			continue
		}
		tv := unix.NsecToTimeval(o.d.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, o.opt, &tv); err != nil {
			return fmt.Errorf("setting socket timeout: %w", err)
		}
	}
	return nil
}

// listen opens a bound socket on port of every IPv4 address of the calling thread's namespace: a
// listening TCP socket, or a UDP socket.
func listen(typ int, port uint16, recvTimeout time.Duration) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening a socket: %w", err)
	}
	err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(port)})
	}
	if err == nil && typ == unix.SOCK_STREAM {
		err = unix.Listen(fd, 4096)
	}
	if err == nil {
		err = setTimeouts(fd, recvTimeout, 0)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listening on port %d: %w", port, err)
	}
	return fd, nil
}

// dial opens a socket of typ in the calling thread's namespace and connects it to dst; a TCP connect
// blocks for the handshake (at most timeout).
func dial(typ int, dst netip.AddrPort, timeout time.Duration) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening a socket: %w", err)
	}
	if err := setTimeouts(fd, timeout, timeout); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := connect(fd, dst); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connecting to %s: %w", dst, err)
	}
	return fd, nil
}

// connect is a blocking connect(2). When a signal interrupts it the handshake goes on in the kernel:
// wait for the socket to become writable and read its error, as the manual page says.
func connect(fd int, dst netip.AddrPort) error {
	err := unix.Connect(fd, sockaddr(dst))
	if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if err := retryEINTR(func() error { _, err := unix.Poll(fds, 2000); return err }); err != nil {
		return err
	}
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soErr != 0 {
		return unix.Errno(soErr)
	}
	return nil
}

func write(fd int, b []byte) error {
	return retryEINTR(func() error {
		_, err := unix.Write(fd, b)
		return err
	})
}

func read(fd int, b []byte) (int, error) {
	var n int
	err := retryEINTR(func() error { var err error; n, err = unix.Read(fd, b); return err })
	return n, err
}

// isTimeout tells a receive timeout (SO_RCVTIMEO) from a failure.
func isTimeout(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK)
}

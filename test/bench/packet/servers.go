package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// Ports of the server pod: one per workload, all allowed by the benchmark's policies.
const (
	crrPort    = 5301
	streamPort = 5302
	udpPort    = 5303
	// deniedPort has no policy: a connection there shows whether the table enforces anything.
	deniedPort = 5399

	messageSize = 64 // bytes of a CRR request and response, and of a UDP datagram
	// pollInterval bounds how long a server thread blocks before it looks at the stop flag.
	pollInterval = 100 * time.Millisecond
	// ioTimeout bounds every blocking call of a client or of a served connection.
	ioTimeout = 2 * time.Second
)

// servers are the server pod's threads: CRR (accept, read the request, reply, close first, so that
// TIME_WAIT stays on the server and the client's ports are free at once), stream (read to EOF, then
// send the byte count back) and UDP echo. Each thread blocks in the kernel on a shared socket.
type servers struct {
	stop atomic.Bool
	fds  []int
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func startServers(pod *netlab.Pod, threads int) (*servers, error) {
	s := &servers{}
	var crr, stream, udp int
	err := pod.Do(func() error {
		var err error
		if crr, err = listen(unix.SOCK_STREAM, crrPort, pollInterval); err != nil {
			return err
		}
		s.fds = append(s.fds, crr)
		if stream, err = listen(unix.SOCK_STREAM, streamPort, pollInterval); err != nil {
			return err
		}
		s.fds = append(s.fds, stream)
		if udp, err = listen(unix.SOCK_DGRAM, udpPort, pollInterval); err != nil {
			return err
		}
		s.fds = append(s.fds, udp)
		return nil
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("starting the servers in %s: %w", pod.Name, err)
	}
	for range threads {
		s.run(func() error { return s.serveCRR(crr) })
		s.run(func() error { return s.serveUDP(udp) })
	}
	s.run(func() error { return s.serveStream(stream) })
	return s, nil
}

// run starts a server thread: a goroutine locked to its OS thread, so that every blocking call
// has a thread of its own, as a C server's would.
func (s *servers) run(fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := fn(); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
		}
	}()
}

// close stops the threads, closes the sockets and returns what went wrong in the threads.
func (s *servers) close() error {
	s.stop.Store(true)
	s.wg.Wait()
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// accept waits for a connection until the server stops; -1 then.
func (s *servers) accept(lfd int) (int, error) {
	for !s.stop.Load() {
		var fd int
		err := retryEINTR(func() error { var err error; fd, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC); return err })
		switch {
		case err == nil:
			if err := setTimeouts(fd, ioTimeout, ioTimeout); err != nil {
				unix.Close(fd)
				return -1, err
			}
			return fd, nil
		case isTimeout(err), errors.Is(err, unix.ECONNABORTED):
		default:
			return -1, fmt.Errorf("accepting: %w", err)
		}
	}
	return -1, nil
}

func (s *servers) serveCRR(lfd int) error {
	buf := make([]byte, messageSize)
	for {
		fd, err := s.accept(lfd)
		if fd < 0 {
			return err
		}
		// A failed exchange is the client's to count; the server goes on with the next one.
		if n, err := read(fd, buf); err == nil && n > 0 {
			_ = write(fd, buf)
		}
		unix.Close(fd)
	}
}

func (s *servers) serveStream(lfd int) error {
	buf := make([]byte, 256<<10)
	for {
		fd, err := s.accept(lfd)
		if fd < 0 {
			return err
		}
		var total uint64
		for {
			n, err := read(fd, buf)
			if n <= 0 || err != nil {
				break
			}
			total += uint64(n)
		}
		var count [8]byte
		binary.BigEndian.PutUint64(count[:], total)
		_ = write(fd, count[:])
		unix.Close(fd)
	}
}

func (s *servers) serveUDP(fd int) error {
	buf := make([]byte, 2048)
	for !s.stop.Load() {
		var n int
		var from unix.Sockaddr
		err := retryEINTR(func() error { var err error; n, from, err = unix.Recvfrom(fd, buf, 0); return err })
		switch {
		case err == nil:
			_ = unix.Sendto(fd, buf[:n], 0, from)
		case isTimeout(err):
		default:
			return fmt.Errorf("receiving UDP: %w", err)
		}
	}
	return nil
}

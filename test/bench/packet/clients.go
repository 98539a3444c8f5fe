package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// maxFailures ends a workload early: the flow is not allowed, or the lab is broken.
const maxFailures = 100

// CRRResult is one run of the connect-request-response-close loop.
type CRRResult struct {
	Connections  int     `json:"connections"`
	Failures     int     `json:"failures"`
	Seconds      float64 `json:"seconds"`
	PerSecond    float64 `json:"perSecond"`
	ConnectP50US float64 `json:"connectP50us"`
	ConnectP99US float64 `json:"connectP99us"`
}

// StreamResult is one run of one TCP stream.
type StreamResult struct {
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Gbps    float64 `json:"gbps"`
}

// UDPResult is one run of UDP request/response.
type UDPResult struct {
	RoundTrips int     `json:"roundTrips"`
	Lost       int     `json:"lost"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"perSecond"`
}

// inParallel runs workers copies of fn, each on its own thread inside the client's namespace, all
// released at the same instant; fn gets that instant and returns when its work is done. It returns
// the time from the release to the end of the last worker.
func inParallel(client *netlab.Pod, workers int, fn func(worker int, start time.Time) error) (time.Duration, error) {
	var ready, done sync.WaitGroup
	release := make(chan time.Time)
	errs := make([]error, workers)
	ends := make([]time.Time, workers)
	ready.Add(workers)
	done.Add(workers)
	for w := range workers {
		go func() {
			defer done.Done()
			// Do runs its function on a thread locked into the namespace, for as long as it runs.
			errs[w] = client.Do(func() error {
				ready.Done()
				start := <-release
				err := fn(w, start)
				ends[w] = time.Now()
				return err
			})
		}()
	}
	ready.Wait()
	start := time.Now()
	for range workers {
		release <- start
	}
	done.Wait()
	return slices.MaxFunc(ends, time.Time.Compare).Sub(start), errors.Join(errs...)
}

// runCRR runs the connect-request-response-close loop for d with workers in parallel.
func runCRR(client *netlab.Pod, dst netip.AddrPort, workers int, d time.Duration) (CRRResult, error) {
	latencies := make([][]float64, workers)
	counts := make([]int, workers)
	failures := make([]int, workers)
	elapsed, err := inParallel(client, workers, func(w int, start time.Time) error {
		lat := make([]float64, 0, 1<<16)
		req, resp := make([]byte, messageSize), make([]byte, messageSize)
		for time.Since(start) < d && failures[w] < maxFailures {
			us, err := connectRequestClose(dst, req, resp)
			if err != nil {
				failures[w]++
				continue
			}
			lat = append(lat, us)
			counts[w]++
		}
		latencies[w] = lat
		if failures[w] >= maxFailures {
			return fmt.Errorf("%d failed connections to %s", failures[w], dst)
		}
		return nil
	})
	all := slices.Concat(latencies...)
	slices.Sort(all)
	res := CRRResult{Seconds: elapsed.Seconds(), ConnectP50US: percentile(all, 50), ConnectP99US: percentile(all, 99)}
	for w := range workers {
		res.Connections += counts[w]
		res.Failures += failures[w]
	}
	res.PerSecond = float64(res.Connections) / res.Seconds
	return res, err
}

// connectRequestClose is one transaction: connect (timed, in µs), send a request, read the reply and
// the server's FIN, close.
func connectRequestClose(dst netip.AddrPort, req, resp []byte) (float64, error) {
	t0 := time.Now()
	fd, err := dial(unix.SOCK_STREAM, dst, ioTimeout)
	if err != nil {
		return 0, err
	}
	us := float64(time.Since(t0).Nanoseconds()) / 1e3
	defer unix.Close(fd)
	if err := write(fd, req); err != nil {
		return 0, fmt.Errorf("sending the request: %w", err)
	}
	got := 0
	for {
		n, err := read(fd, resp)
		if err != nil {
			return 0, fmt.Errorf("reading the reply: %w", err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	if got != len(resp) {
		return 0, fmt.Errorf("reply of %d bytes, want %d", got, len(resp))
	}
	return us, nil
}

// runStream writes to one TCP connection for d, then half-closes it and reads the server's count of
// the bytes it received: throughput as the receiver saw it, buffers drained.
func runStream(client *netlab.Pod, dst netip.AddrPort, d time.Duration) (StreamResult, error) {
	var res StreamResult
	_, err := inParallel(client, 1, func(_ int, _ time.Time) error {
		fd, err := dial(unix.SOCK_STREAM, dst, ioTimeout)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, 128<<10)
		start := time.Now()
		for time.Since(start) < d {
			if err := write(fd, buf); err != nil {
				return fmt.Errorf("streaming to %s: %w", dst, err)
			}
		}
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			return fmt.Errorf("half-closing the stream: %w", err)
		}
		var count [8]byte
		if n, err := read(fd, count[:]); err != nil || n != len(count) {
			return fmt.Errorf("reading the server's byte count (%d bytes): %w", n, err)
		}
		res.Seconds = time.Since(start).Seconds()
		res.Bytes = binary.BigEndian.Uint64(count[:])
		return nil
	})
	if res.Seconds > 0 {
		res.Gbps = float64(res.Bytes) * 8 / res.Seconds / 1e9
	}
	return res, err
}

// runUDP ping-pongs small datagrams for d, one flow per worker: after the first datagram every
// packet is part of an established conntrack entry.
func runUDP(client *netlab.Pod, dst netip.AddrPort, workers int, d time.Duration) (UDPResult, error) {
	trips := make([]int, workers)
	lost := make([]int, workers)
	elapsed, err := inParallel(client, workers, func(w int, start time.Time) error {
		fd, err := dial(unix.SOCK_DGRAM, dst, 200*time.Millisecond)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		req, resp := make([]byte, messageSize), make([]byte, 2048)
		for time.Since(start) < d && lost[w] < maxFailures {
			if err := write(fd, req); err != nil {
				lost[w]++
				continue
			}
			if _, err := read(fd, resp); err != nil {
				lost[w]++
				continue
			}
			trips[w]++
		}
		if lost[w] >= maxFailures {
			return fmt.Errorf("%d UDP datagrams to %s lost", lost[w], dst)
		}
		return nil
	})
	res := UDPResult{Seconds: elapsed.Seconds()}
	for w := range workers {
		res.RoundTrips += trips[w]
		res.Lost += lost[w]
	}
	res.PerSecond = float64(res.RoundTrips) / res.Seconds
	return res, err
}

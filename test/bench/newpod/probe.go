package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// probeResult is one TCP connect attempt, timed from the new pod's network coming up.
type probeResult struct {
	start, end time.Duration
	reached    bool
}

// prober sends TCP connects from a namespace to an address, from several workers started a slot apart,
// until stopped, and keeps every result.
type prober struct {
	from    netlab.Netns
	dst     netip.AddrPort
	t0      time.Time
	timeout time.Duration
	gap     time.Duration

	mu      sync.Mutex
	results []probeResult
}

// run probes with workers until ctx is done.
func (p *prober) run(ctx context.Context, workers int, wg *sync.WaitGroup) {
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Stagger the workers so that a connect starts about every (timeout+gap)/workers.
			select {
			case <-time.After(time.Duration(w) * (p.timeout + p.gap) / time.Duration(workers)):
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				r := p.once()
				if ctx.Err() != nil {
					return // a connect cut short by the stop is not a result
				}
				p.mu.Lock()
				p.results = append(p.results, r)
				p.mu.Unlock()
				select {
				case <-time.After(p.gap):
				case <-ctx.Done():
				}
			}
		}()
	}
}

// once is one connect attempt. A connection that completes, or is refused (a reset came back), reached
// the destination; a timeout did not.
func (p *prober) once() probeResult {
	start := time.Since(p.t0)
	var dialErr error
	err := p.from.Do(func() error {
		d := net.Dialer{Timeout: p.timeout}
		conn, err := d.Dial("tcp", p.dst.String())
		if err == nil {
			// Reset instead of FIN: no TIME_WAIT left behind by thousands of probes.
			if tcp, ok := conn.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0)
			}
			conn.Close()
		}
		dialErr = err
		return nil
	})
	reached := err == nil && (dialErr == nil || errors.Is(dialErr, syscall.ECONNREFUSED))
	return probeResult{start: start, end: time.Since(p.t0), reached: reached}
}

func (p *prober) snapshot() []probeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]probeResult(nil), p.results...)
}

// quietFor reports whether no probe has reached the destination for at least d before now.
func quietFor(results []probeResult, now, d time.Duration) bool {
	last, ok := lastReached(results)
	if !ok {
		return now >= d
	}
	return now-last >= d
}

// firstReached returns the end of the first probe that reached, and whether one did.
func firstReached(results []probeResult) (time.Duration, bool) {
	first, ok := time.Duration(0), false
	for _, r := range results {
		if r.reached && (!ok || r.end < first) {
			first, ok = r.end, true
		}
	}
	return first, ok
}

// lastReached returns the end of the last probe that reached, and whether one did.
func lastReached(results []probeResult) (time.Duration, bool) {
	last, ok := time.Duration(0), false
	for _, r := range results {
		if r.reached && r.end > last {
			last, ok = r.end, true
		}
	}
	return last, ok
}

package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// probe is one TCP connect from the client pod to the target pod.
type probe struct {
	start, end time.Time
	ok         bool
	// otherFailure is a failure that is not a timeout (refused, no free port...): the policy drops,
	// so a blocked probe always times out, and anything else is reported as noise.
	otherFailure bool
}

// prober runs a continuous stream of TCP connects from a pod's network namespace to one address,
// from several workers staggered in time, and keeps every result.
//
// Resolution: a transition is seen at the start of the first probe with the new verdict, so it is
// known to the gap between two probe starts. While the pair is allowed a connect completes in well
// under a millisecond and the workers together start one probe per interval; while it is blocked the
// policy drops the SYN and each worker waits its whole timeout and then its next slot, so probes start
// about every (timeout + workers*interval)/workers.
type prober struct {
	from     netlab.Netns
	dst      netip.AddrPort
	timeout  time.Duration
	interval time.Duration
	workers  int

	mu       sync.Mutex
	probes   []probe
	inFlight []time.Time // per worker, the start of its current probe; zero while pacing
}

func newProber(from netlab.Netns, dst netip.AddrPort, timeout, interval time.Duration, workers int) *prober {
	return &prober{from: from, dst: dst, timeout: timeout, interval: interval, workers: workers, inFlight: make([]time.Time, workers)}
}

// run probes until ctx ends. Probe starts follow one grid of slots interval apart, and worker w owns
// slots w, w+workers, w+2*workers...: a worker whose probe ended waits for its next slot, so workers
// stay spread out instead of falling into step.
func (p *prober) run(ctx context.Context) error {
	base := time.Now()
	errc := make(chan error, p.workers)
	for w := range p.workers {
		go func() {
			// The whole loop runs on one thread inside the pod's namespace: a socket belongs to the
			// namespace of the thread that creates it, and the dial creates it on this goroutine.
			errc <- p.from.Do(func() error { return p.loop(ctx, w, base) })
		}()
	}
	var errs []error
	for range p.workers {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// nextSlot is worker w's first slot at or after now.
func nextSlot(base, now time.Time, interval time.Duration, workers, w int) time.Time {
	period := time.Duration(workers) * interval
	first := base.Add(time.Duration(w) * interval)
	if now.Before(first) {
		return first
	}
	k := (now.Sub(first) + period - 1) / period
	return first.Add(k * period)
}

func (p *prober) loop(ctx context.Context, worker int, base time.Time) error {
	dialer := net.Dialer{Timeout: p.timeout}
	target := p.dst.String()
	for ctx.Err() == nil {
		time.Sleep(time.Until(nextSlot(base, time.Now(), p.interval, p.workers, worker)))
		start := time.Now()
		p.mu.Lock()
		p.inFlight[worker] = start
		p.mu.Unlock()

		conn, err := dialer.Dial("tcp", target)
		end := time.Now()
		if err == nil {
			// Reset instead of FIN: a thousand connections a second would otherwise fill the
			// client's ephemeral ports with TIME_WAIT sockets within half a minute.
			if tcp, ok := conn.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0)
			}
			conn.Close()
		}
		p.mu.Lock()
		p.probes = append(p.probes, probe{start: start, end: end, ok: err == nil, otherFailure: err != nil && !isTimeout(err)})
		p.inFlight[worker] = time.Time{}
		p.mu.Unlock()
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT)
}

// completedSince returns, sorted by start, the probes that started at or after since and before every
// probe still in flight: later probes may still complete out of order.
func (p *prober) completedSince(since time.Time) []probe {
	p.mu.Lock()
	watermark := time.Now()
	for _, t := range p.inFlight {
		if !t.IsZero() && t.Before(watermark) {
			watermark = t
		}
	}
	// Each worker appends in start order, so only the last few hundred entries can be that recent.
	i := len(p.probes)
	for i > 0 && !p.probes[i-1].start.Before(since.Add(-time.Second)) {
		i--
	}
	var out []probe
	for _, pr := range p.probes[i:] {
		if !pr.start.Before(since) && pr.start.Before(watermark) {
			out = append(out, pr)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b probe) int { return a.start.Compare(b.start) })
	return out
}

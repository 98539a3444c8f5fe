package scenario

import (
	"context"
	"sync"
	"time"
)

// check is one expectation ready to probe.
type check struct {
	expect   Expect
	via      Via // ViaPod or ViaService, never ViaDefault
	skipped  string
	expected map[Pair]bool
	pairs    []Pair // probed pairs in matrix order
}

// probe is one connection attempt and, once run, what it observed.
type probe struct {
	pair     Pair
	via      Via
	port     int
	protocol string
	expected bool

	allowed bool
	err     error
}

func (p *probe) matches() bool { return p.err == nil && p.allowed == p.expected }

func (r *runner) planCheck(e Expect, via Via) (*check, error) {
	c := &check{expect: e, via: via}
	if reason, unsupported := r.unsupportedReason(e.Protocol); unsupported {
		c.skipped = reason
		return c, nil
	}
	expected, err := ExpandExpect(r.scenario.Cluster, e)
	if err != nil {
		return nil, err
	}
	c.expected = expected
	c.pairs = r.scenario.Cluster.ProbedPairs(e.Port, e.Protocol)
	return c, nil
}

func (c *check) probes() []*probe {
	probes := make([]*probe, 0, len(c.pairs))
	for _, p := range c.pairs {
		probes = append(probes, &probe{pair: p, via: c.via, port: c.expect.Port, protocol: c.expect.Protocol, expected: c.expected[p]})
	}
	return probes
}

// converge polls every probed pair of the step, each until it matches once, every PollInterval,
// until none is left or the deadline passes. It reports how long that took and whether all matched.
func (r *runner) converge(ctx context.Context, checks []*check, family Family) (time.Duration, bool) {
	start := time.Now()
	var pending []*probe
	for _, c := range checks {
		if c.skipped == "" {
			pending = append(pending, c.probes()...)
		}
	}
	for {
		r.probeAll(ctx, pending, family)
		still := pending[:0]
		for _, p := range pending {
			if !p.matches() {
				still = append(still, p)
			}
		}
		pending = still
		elapsed := time.Since(start)
		if len(pending) == 0 {
			return elapsed, true
		}
		if elapsed >= r.opts.Deadline {
			return elapsed, false
		}
		wait := min(r.opts.PollInterval, r.opts.Deadline-elapsed)
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(wait):
		}
	}
}

// finalCheck probes the whole matrix of c once and compares it exactly with the expectation.
func (r *runner) finalCheck(ctx context.Context, c *check, family Family) CheckResult {
	result := CheckResult{Expect: c.expect, Via: c.via, Skipped: c.skipped}
	if c.skipped != "" {
		return result
	}
	result.Sources = r.scenario.Cluster.PodRefs()
	result.Destinations = r.scenario.Cluster.Serving(c.expect.Port, c.expect.Protocol)
	result.Expected = c.expected
	result.Observed = make(map[Pair]bool, len(c.pairs))
	probes := c.probes()
	r.probeAll(ctx, probes, family)
	for _, p := range probes {
		if p.err != nil {
			if result.ProbeErrors == nil {
				result.ProbeErrors = map[Pair]error{}
			}
			result.ProbeErrors[p.pair] = p.err
		} else {
			result.Observed[p.pair] = p.allowed
		}
		if !p.matches() {
			result.Mismatches = append(result.Mismatches, p.pair)
		}
	}
	return result
}

// probeAll runs the probes with at most Workers at once and records each observation in place.
func (r *runner) probeAll(ctx context.Context, probes []*probe, family Family) {
	jobs := make(chan *probe)
	var wg sync.WaitGroup
	for range min(r.opts.Workers, len(probes)) {
		wg.Go(func() {
			for p := range jobs {
				p.allowed, p.err = r.probe(ctx, p, family)
			}
		})
	}
	for _, p := range probes {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
}

// probe runs one probe the way it names.
func (r *runner) probe(ctx context.Context, p *probe, family Family) (bool, error) {
	if p.via == ViaService {
		return r.cluster.ProbeService(ctx, p.pair.Src, p.pair.Dst, p.port, p.protocol, family)
	}
	return r.cluster.Probe(ctx, p.pair.Src, p.pair.Dst, p.port, p.protocol, family)
}

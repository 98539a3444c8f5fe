package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/nftpolicy/nftpolicy/lab"
)

// The agent's histograms this benchmark reads (controllers/metrics.go).
const (
	programmingLatencyMetric = "nftpolicy_programming_latency_seconds"
	syncDurationMetric       = "nftpolicy_sync_duration_seconds"
)

// histogram is a Prometheus histogram as scraped: cumulative bucket counts by upper bound.
type histogram struct {
	Buckets []bucket `json:"buckets"`
	Sum     float64  `json:"sum"`
	Count   float64  `json:"count"`
}

type bucket struct {
	LE    float64 `json:"le"` // +Inf is stored as math.MaxFloat64 so that JSON can hold it
	Count float64 `json:"count"`
}

// scrapeHistograms reads the agent's metrics endpoint.
func scrapeHistograms(ctx context.Context, agent lab.AgentState) (map[string]histogram, error) {
	var out map[string]histogram
	err := lab.ScrapeMetrics(ctx, agent, func(r io.Reader) (err error) {
		out, err = parseHistograms(r, programmingLatencyMetric, syncDurationMetric)
		return err
	})
	return out, err
}

// parseHistograms reads the label-less histograms called names from the Prometheus text format.
func parseHistograms(r io.Reader, names ...string) (map[string]histogram, error) {
	out := map[string]histogram{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		for _, name := range names {
			h := out[name]
			switch {
			case series == name+"_sum":
				h.Sum = v
			case series == name+"_count":
				h.Count = v
			case strings.HasPrefix(series, name+`_bucket{le="`):
				le := strings.TrimSuffix(strings.TrimPrefix(series, name+`_bucket{le="`), `"}`)
				bound := math.MaxFloat64
				if le != "+Inf" {
					if bound, err = strconv.ParseFloat(le, 64); err != nil {
						return nil, fmt.Errorf("reading bucket %q: %w", series, err)
					}
				}
				h.Buckets = append(h.Buckets, bucket{LE: bound, Count: v})
			default:
				continue
			}
			out[name] = h
		}
	}
	for name, h := range out {
		slices.SortFunc(h.Buckets, func(a, b bucket) int { return compareFloat(a.LE, b.LE) })
		out[name] = h
	}
	return out, sc.Err()
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// minus is what h observed since before, a scrape of the same histogram.
func (h histogram) minus(before histogram) histogram {
	out := histogram{Sum: h.Sum - before.Sum, Count: h.Count - before.Count}
	for i, b := range h.Buckets {
		if i < len(before.Buckets) && before.Buckets[i].LE == b.LE {
			b.Count -= before.Buckets[i].Count
		}
		out.Buckets = append(out.Buckets, b)
	}
	return out
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does: linearly within the
// bucket that holds it. It is only as precise as the buckets (a factor of 2 apart here).
func (h histogram) quantile(q float64) float64 {
	if h.Count == 0 || len(h.Buckets) == 0 {
		return math.NaN()
	}
	rank := q * h.Count
	lower, below := 0.0, 0.0
	for _, b := range h.Buckets {
		if b.Count >= rank {
			if b.LE == math.MaxFloat64 {
				return lower // beyond the last finite bound: all that is known is "more than this"
			}
			if b.Count == below {
				return b.LE
			}
			return lower + (b.LE-lower)*(rank-below)/(b.Count-below)
		}
		lower, below = b.LE, b.Count
	}
	return lower
}

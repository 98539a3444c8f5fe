package harness

import (
	"slices"
	"time"
)

// Summary is the median, minimum and maximum of some figures.
type Summary struct {
	Median, Min, Max float64
	N                int
}

func summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Summary{Median: percentile(s, 50), Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// percentile of sorted xs, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	if p == 50 && len(sorted)%2 == 0 {
		n := len(sorted)
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

func percentileOf(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return percentile(s, p)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// ratios divides a[i] by b[i] pairwise (figures of the same repetition) and summarizes.
func ratios(a, b []float64) Summary {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return summarize(r)
}

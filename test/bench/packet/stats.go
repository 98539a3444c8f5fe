package packet

import (
	"math"
	"slices"
)

// Summary is the median, minimum and maximum of a figure over runs.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// summarize returns the Summary of xs; NaNs are left out.
func summarize(xs []float64) Summary {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return Summary{}
	}
	slices.Sort(s)
	return Summary{Median: percentile(s, 50), Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// percentile of sorted xs by nearest rank; the median of an even count is the mean of the middle two.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if p == 50 && n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(math.Ceil(float64(n)*p/100)) - 1
	return sorted[max(0, min(rank, n-1))]
}

// ratios divides a[i] by b[i], figures of the same round, and summarizes the quotients: a ratio per
// round cancels the drift that both sides of it saw.
func ratios(a, b []float64) Summary {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 && !math.IsNaN(a[i]) {
			r = append(r, a[i]/b[i])
		}
	}
	return summarize(r)
}

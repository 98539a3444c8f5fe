package main

import (
	"math"
	"slices"
)

// summary is a distribution in milliseconds. Percentiles are nearest-rank: the p-th percentile of n
// samples is the ceil(p*n/100)-th smallest, so the p99 of 100 or fewer samples is their maximum.
type summary struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

func summarize(values []float64) summary {
	if len(values) == 0 {
		return summary{}
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return summary{
		N:      len(sorted),
		Min:    sorted[0],
		Median: percentile(sorted, 50),
		P90:    percentile(sorted, 90),
		P99:    percentile(sorted, 99),
		Max:    sorted[len(sorted)-1],
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

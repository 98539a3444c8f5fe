package lab

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// maxNamedWidth is the widest matrix whose columns are headed by pod names; wider ones number them.
const maxNamedWidth = 120

// Matrix is the observed connectivity from every source to every destination.
type Matrix struct {
	sources, destinations []string
	allowed               map[[2]string]bool
	errs                  map[[2]string]error
}

// probeMatrix probes every pair (src != dst) with at most workers probes at once.
func probeMatrix(ctx context.Context, sources, destinations []string, workers int, probe func(ctx context.Context, src, dst string) (bool, error)) *Matrix {
	m := &Matrix{sources: sources, destinations: destinations, allowed: map[[2]string]bool{}, errs: map[[2]string]error{}}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, workers)
	)
	for _, src := range sources {
		for _, dst := range destinations {
			if src == dst {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				ok, err := probe(ctx, src, dst)
				mu.Lock()
				defer mu.Unlock()
				m.allowed[[2]string{src, dst}] = ok
				if err != nil {
					m.errs[[2]string{src, dst}] = err
				}
			}()
		}
	}
	wg.Wait()
	return m
}

// Write lays the matrix out with sources as rows: "." allowed, "X" blocked, "-" self, "?" probe failed.
func (m *Matrix) Write(w io.Writer) {
	headers := m.destinations
	rowLabels := m.sources
	width := 0
	for _, s := range m.sources {
		width = max(width, len(s))
	}
	total := width
	for _, d := range m.destinations {
		total += 1 + max(3, len(d))
	}
	if total > maxNamedWidth {
		position := map[string]int{}
		rowLabels = nil
		for i, s := range m.sources {
			position[s] = i + 1
			rowLabels = append(rowLabels, fmt.Sprintf("%d %s", i+1, s))
		}
		headers = nil
		for _, d := range m.destinations {
			headers = append(headers, strconv.Itoa(position[d]))
		}
		width += 3
	}
	line := []string{pad("", width)}
	for _, h := range headers {
		line = append(line, center(h, max(3, len(h))))
	}
	fmt.Fprintln(w, strings.TrimRight(strings.Join(line, " "), " "))
	for i, src := range m.sources {
		line = []string{pad(rowLabels[i], width)}
		for j, dst := range m.destinations {
			line = append(line, center(m.cell(src, dst), max(3, len(headers[j]))))
		}
		fmt.Fprintln(w, strings.TrimRight(strings.Join(line, " "), " "))
	}
	fmt.Fprintln(w, "legend: . allowed, X blocked, - self, ? probe failed")
	for pair, err := range m.errs {
		fmt.Fprintf(w, "probe %s -> %s failed: %v\n", pair[0], pair[1], err)
	}
}

// Failed reports whether a probe of the matrix failed (neither allowed nor blocked).
func (m *Matrix) Failed() bool { return len(m.errs) > 0 }

func (m *Matrix) cell(src, dst string) string {
	switch {
	case src == dst:
		return "-"
	case m.errs[[2]string{src, dst}] != nil:
		return "?"
	case m.allowed[[2]string{src, dst}]:
		return "."
	}
	return "X"
}

func center(s string, width int) string {
	return pad(strings.Repeat(" ", max(0, (width-len(s))/2))+s, width)
}

func pad(s string, width int) string { return s + strings.Repeat(" ", max(0, width-len(s))) }

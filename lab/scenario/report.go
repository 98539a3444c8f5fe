package scenario

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cells of a rendered matrix.
const (
	cellAllowed     = "."
	cellBlocked     = "X"
	cellSelf        = "-"
	cellProbeFailed = "?"

	// maxNamedWidth is the widest matrix whose columns are headed by pod names; wider matrices
	// number the pods instead.
	maxNamedWidth = 120
	minCellWidth  = 3 // room for a marked cell, "[X]"
)

const legend = "legend: . allowed, X blocked, - self (not probed), [c] observed c where the other was expected, ? probe failed"

// WriteResult writes the report of one file: per family and step the convergence time and, per
// expectation, the observed matrix with its mismatches marked, then the file's verdict.
func WriteResult(w io.Writer, r *Result) {
	if r.Skipped != "" {
		fmt.Fprintf(w, "--- SKIP %s: %s\n", r.Name, r.Skipped)
		return
	}
	for i := range r.Runs {
		writeFamilyRun(w, r.Name, &r.Runs[i])
	}
	fmt.Fprintf(w, "--- %s %s\n", verdict(r.Passed()), r.Name)
}

func writeFamilyRun(w io.Writer, name string, run *FamilyRun) {
	fmt.Fprintf(w, "=== %s [%s]\n", name, run.Family)
	for i := range run.Steps {
		writeStep(w, &run.Steps[i], run.wantSteps)
	}
	if run.Err != nil {
		fmt.Fprintf(w, "error: %v\n", run.Err)
	}
	fmt.Fprintf(w, "--- %s %s [%s]\n", verdict(run.Passed()), name, run.Family)
}

func writeStep(w io.Writer, step *StepResult, steps int) {
	fmt.Fprintf(w, "step %d/%d: ", step.Index+1, steps)
	switch {
	case step.Err != nil:
		fmt.Fprintf(w, "FAIL: %v\n", step.Err)
		return
	case step.Converged:
		fmt.Fprintf(w, "converged in %s\n", formatDuration(step.ConvergeTime))
	default:
		fmt.Fprintf(w, "did not converge in %s\n", formatDuration(step.ConvergeTime))
	}
	// A step that probes through Services says of every matrix which one it is.
	showVia := slices.ContainsFunc(step.Checks, func(c CheckResult) bool { return c.Via == ViaService })
	for i := range step.Checks {
		writeCheck(w, &step.Checks[i], showVia)
	}
}

func writeCheck(w io.Writer, c *CheckResult, showVia bool) {
	what := c.Expect.String()
	if showVia {
		what += " via " + string(c.Via)
	}
	if c.Skipped != "" {
		fmt.Fprintf(w, "  expect %s: SKIP: %s\n", what, c.Skipped)
		return
	}
	fmt.Fprintf(w, "  expect %s: %s\n", what, verdict(c.Passed()))
	for _, line := range renderMatrix(c) {
		fmt.Fprintf(w, "    %s\n", strings.TrimRight(line, " "))
	}
	fmt.Fprintf(w, "    %s\n", legend)
	for _, p := range c.Mismatches {
		fmt.Fprintf(w, "    mismatch %s: expected %s, %s\n", p, allowedWord(c.Expected[p]), observation(c, p))
	}
}

// renderMatrix lays the check out with sources as rows and destinations as columns.
func renderMatrix(c *CheckResult) []string {
	headers, rowLabels := c.Destinations, c.Sources
	if matrixWidth(rowLabels, headers) > maxNamedWidth {
		headers, rowLabels = numbered(c.Sources, c.Destinations)
	}
	labelWidth := 0
	for _, l := range rowLabels {
		labelWidth = max(labelWidth, len(l))
	}
	widths := make([]int, len(headers))
	line := []string{pad("", labelWidth)}
	for j, h := range headers {
		widths[j] = max(minCellWidth, len(h))
		line = append(line, center(h, widths[j]))
	}
	lines := []string{strings.Join(line, " ")}
	for i, src := range c.Sources {
		line = []string{pad(rowLabels[i], labelWidth)}
		for j, dst := range c.Destinations {
			line = append(line, center(cell(c, Pair{Src: src, Dst: dst}), widths[j]))
		}
		lines = append(lines, strings.Join(line, " "))
	}
	return lines
}

// cell is what one pair shows: its observation, bracketed when it differs from the expectation.
func cell(c *CheckResult, p Pair) string {
	if p.Src == p.Dst {
		return cellSelf
	}
	var s string
	if _, failed := c.ProbeErrors[p]; failed {
		s = cellProbeFailed
	} else if c.Observed[p] {
		s = cellAllowed
	} else {
		s = cellBlocked
	}
	for _, m := range c.Mismatches {
		if m == p {
			return "[" + s + "]"
		}
	}
	return s
}

func observation(c *CheckResult, p Pair) string {
	if err, failed := c.ProbeErrors[p]; failed {
		return fmt.Sprintf("probe failed: %v", err)
	}
	return "observed " + allowedWord(c.Observed[p])
}

func matrixWidth(rows, columns []string) int {
	width := 0
	for _, r := range rows {
		width = max(width, len(r))
	}
	for _, c := range columns {
		width += 1 + max(minCellWidth, len(c))
	}
	return width
}

// numbered heads columns with the 1-based position of each pod among the sources, and prefixes
// row labels with the same number.
func numbered(sources, destinations []string) (headers, rowLabels []string) {
	position := map[string]int{}
	for i, src := range sources {
		position[src] = i + 1
		rowLabels = append(rowLabels, fmt.Sprintf("%d %s", i+1, src))
	}
	for _, dst := range destinations {
		headers = append(headers, strconv.Itoa(position[dst]))
	}
	return headers, rowLabels
}

func center(s string, width int) string {
	left := (width - len(s)) / 2
	return pad(strings.Repeat(" ", max(0, left))+s, width)
}

// pad left-aligns s in width.
func pad(s string, width int) string {
	return s + strings.Repeat(" ", max(0, width-len(s)))
}

func verdict(passed bool) string {
	if passed {
		return "PASS"
	}
	return "FAIL"
}

func allowedWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "blocked"
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

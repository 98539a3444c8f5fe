package scenario

import (
	"context"
	"fmt"
	"io"
)

// Summary counts the scenario files of a batch by outcome.
type Summary struct {
	Passed, Failed, Skipped int
}

// String is the last line of a batch: "N passed, M failed", plus ", K skipped" when a whole file
// was skipped.
func (s Summary) String() string {
	line := fmt.Sprintf("%d passed, %d failed", s.Passed, s.Failed)
	if s.Skipped > 0 {
		line += fmt.Sprintf(", %d skipped", s.Skipped)
	}
	return line
}

// OK reports whether no file failed.
func (s Summary) OK() bool { return s.Failed == 0 }

// Add counts one file's result.
func (s *Summary) Add(r *Result) {
	switch {
	case r.Skipped != "":
		s.Skipped++
	case r.Passed():
		s.Passed++
	default:
		s.Failed++
	}
}

// RunFiles loads and runs each scenario file in turn, writing each file's report to w as it
// finishes and the summary line at the end. A file that does not load counts as failed.
func RunFiles(ctx context.Context, cluster Cluster, paths []string, opts Options, w io.Writer) Summary {
	var summary Summary
	for _, path := range paths {
		if ctx.Err() != nil {
			fmt.Fprintf(w, "--- FAIL %s: not run: %v\n", path, ctx.Err())
			summary.Failed++
			continue
		}
		s, err := Load(path)
		if err != nil {
			fmt.Fprintf(w, "--- FAIL %s: %v\n", path, err)
			summary.Failed++
			continue
		}
		result := Run(ctx, cluster, s, opts)
		WriteResult(w, &result)
		summary.Add(&result)
	}
	fmt.Fprintln(w, summary)
	return summary
}

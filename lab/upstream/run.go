// Package upstream runs the upstream Kubernetes e2e suite's NetworkPolicy specs (e2e.test, built from
// k8s.io/kubernetes/test/e2e at the lab's release) against a lab, and reports what passed, failed and
// was skipped, and why.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// Focus selects the NetworkPolicy specs: the Netpol suites and every [Feature:NetworkPolicy] spec.
const Focus = `Netpol|\[Feature:NetworkPolicy\]`

// Options are what a run needs.
type Options struct {
	// E2E is the e2e.test binary.
	E2E string
	// Focus selects the specs to run; "" means Focus.
	Focus string
	// Kubeconfig reaches the lab's API server as its admin.
	Kubeconfig string
	// Skip is a regular expression of specs not to run, with the reason reported for them; "" runs
	// every focused spec.
	Skip, SkipReason string
	// ReportDir receives e2e.test's JSON report and output.
	ReportDir string
	// Args are more flags for e2e.test.
	Args []string
	// Release is the Kubernetes release of the lab and of e2e.test.
	Release string
	// Out receives e2e.test's progress; nil discards it.
	Out io.Writer
}

// Result is one run of the suite.
type Result struct {
	// Name says what ran, e.g. "ipv4, kube-proxy nftables".
	Name    string
	Release string
	Command []string
	// Passed, Failed are the specs' full texts; Skipped holds the runtime skips and the Skip
	// specs, each with its reason.
	Passed, Failed []string
	Skipped        []Skip
	Duration       time.Duration
	// Failures are the failure messages by spec.
	Failures map[string]string
}

// Skip is a spec that did not run and why.
type Skip struct {
	Spec, Reason string
}

// OK says whether the suite ran specs and none failed.
func (r *Result) OK() bool { return len(r.Failed) == 0 && len(r.Passed) > 0 }

// Run runs e2e.test with the NetworkPolicy focus and reads its JSON report. A failing spec is a
// Result, not an error; an error means the suite could not run or report.
func Run(ctx context.Context, name string, opts Options) (*Result, error) {
	if err := os.MkdirAll(opts.ReportDir, 0o755); err != nil {
		return nil, err
	}
	jsonReport := filepath.Join(opts.ReportDir, "report.json")
	if opts.Focus == "" {
		opts.Focus = Focus
	}
	args := []string{
		"--kubeconfig=" + opts.Kubeconfig,
		"--provider=local",
		"--ginkgo.focus=" + opts.Focus,
		"--ginkgo.json-report=" + jsonReport,
		"--ginkgo.no-color",
		"--ginkgo.timeout=2h",
		"--report-dir=" + opts.ReportDir,
	}
	if opts.Skip != "" {
		args = append(args, "--ginkgo.skip="+opts.Skip)
	}
	args = append(args, opts.Args...)
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	cmd := exec.CommandContext(ctx, opts.E2E, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 10 * time.Second
	begin := time.Now()
	runErr := cmd.Run()
	result := &Result{Name: name, Release: opts.Release, Command: append([]string{filepath.Base(opts.E2E)}, args...), Duration: time.Since(begin)}
	reports, err := readReport(jsonReport)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("running %s: %w", opts.E2E, runErr), err)
	}
	result.add(reports, opts)
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return result, fmt.Errorf("running %s: %w", opts.E2E, runErr)
	}
	if runErr != nil && len(result.Failed) == 0 {
		return result, fmt.Errorf("%s exited with %w but reported no failed spec; see %s", opts.E2E, runErr, opts.ReportDir)
	}
	return result, nil
}

func readReport(path string) ([]types.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the suite's report: %w", err)
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, fmt.Errorf("reading the suite's report %s: %w", path, err)
	}
	return reports, nil
}

// add sorts the report's specs. Specs outside the focus are left out: ginkgo reports them as
// skipped without a message. Setup nodes (BeforeSuite and the like) count only when they fail.
func (r *Result) add(reports []types.Report, opts Options) {
	r.Failures = map[string]string{}
	for _, report := range reports {
		for _, spec := range report.SpecReports {
			name := spec.FullText()
			if spec.LeafNodeType != types.NodeTypeIt {
				if spec.State.Is(types.SpecStateFailureStates) {
					name = spec.LeafNodeType.String()
					r.Failed = append(r.Failed, name)
					r.Failures[name] = spec.Failure.Message
				}
				continue
			}
			switch {
			case spec.State == types.SpecStatePassed:
				r.Passed = append(r.Passed, name)
			case spec.State.Is(types.SpecStateFailureStates):
				r.Failed = append(r.Failed, name)
				r.Failures[name] = spec.Failure.Message
			case spec.State == types.SpecStateSkipped && spec.Failure.Message != "":
				r.Skipped = append(r.Skipped, Skip{Spec: name, Reason: spec.Failure.Message})
			case spec.State == types.SpecStateSkipped && opts.Skip != "" && matchesFocus(name) && matches(opts.Skip, name):
				r.Skipped = append(r.Skipped, Skip{Spec: name, Reason: opts.SkipReason})
			}
		}
	}
	slices.Sort(r.Passed)
	slices.Sort(r.Failed)
	slices.SortFunc(r.Skipped, func(a, b Skip) int { return strings.Compare(a.Spec, b.Spec) })
}

var focus = regexp.MustCompile(Focus)

func matchesFocus(name string) bool { return focus.MatchString(name) }

// matches reports whether the regular expression expr matches name; a bad expression matches
// nothing (e2e.test refuses it first).
func matches(expr, name string) bool {
	re, err := regexp.Compile(expr)
	return err == nil && re.MatchString(name)
}

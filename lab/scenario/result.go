package scenario

import "time"

// Result is the outcome of one scenario file: one run per IP family, or a reason the whole file was
// skipped.
type Result struct {
	Name    string
	Skipped string // non-empty when no run happened: every expectation needs a protocol the lab lacks
	Runs    []FamilyRun
}

// Passed reports whether every family's run passed. A skipped file neither passes nor fails.
func (r *Result) Passed() bool {
	if r.Skipped != "" || len(r.Runs) == 0 {
		return false
	}
	for i := range r.Runs {
		if !r.Runs[i].Passed() {
			return false
		}
	}
	return true
}

// FamilyRun is one run of a file, from a clean cluster, for one IP family.
type FamilyRun struct {
	Family Family
	Steps  []StepResult
	// Err is why the run could not go on or finish cleanly: setup, a step's change or teardown failing.
	Err error
	// wantSteps is how many steps the scenario has; a run that stopped early did not pass.
	wantSteps int
}

// Passed reports whether every step ran and passed and the cluster was set up and torn down.
func (r *FamilyRun) Passed() bool {
	if r.Err != nil || len(r.Steps) != r.wantSteps {
		return false
	}
	for i := range r.Steps {
		if !r.Steps[i].Passed() {
			return false
		}
	}
	return true
}

// StepResult is the outcome of one step.
type StepResult struct {
	Index int // 0-based position in the file
	// Err is the failure of the step's delete, apply or relabel; nothing was probed after it.
	Err error
	// Converged is true when every probed pair matched before the deadline; ConvergeTime is how
	// long polling took, from the end of the step's changes.
	Converged    bool
	ConvergeTime time.Duration
	Checks       []CheckResult // one per expectation, in file order
}

// Passed reports whether the step's changes went through and its final matrices matched exactly.
// Convergence polling only waits: a matrix that matched late but exactly still passes.
func (r *StepResult) Passed() bool {
	if r.Err != nil {
		return false
	}
	for i := range r.Checks {
		if !r.Checks[i].Passed() {
			return false
		}
	}
	return true
}

// CheckResult is the final probe of one expectation's matrix.
type CheckResult struct {
	Expect       Expect
	Via          Via      // how destinations were reached: ViaPod or ViaService
	Skipped      string   // non-empty when the lab cannot probe the protocol
	Sources      []string // rows: every pod of the cluster
	Destinations []string // columns: the pods serving the port and protocol
	Expected     map[Pair]bool
	Observed     map[Pair]bool
	ProbeErrors  map[Pair]error
	Mismatches   []Pair // pairs whose observation differs from the expectation or failed, in matrix order
}

// Passed reports whether the check was skipped or matched exactly.
func (r *CheckResult) Passed() bool { return r.Skipped != "" || len(r.Mismatches) == 0 }

package harness

import (
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// runWith is a run whose A takes fullMS at full scale (10 of them without its 1000 elements), C 100 ms,
// and whose element-only events take eventMS.
func runWith(fullMS, eventMS float64) *Run {
	return &Run{
		Full: []FullScale{{Backends: []FullBackend{
			{Backend: BackendA, CompileMS: []float64{0}, ProgramMS: []float64{fullMS}, Elements: 1000, SysMS: []float64{5}},
			{Backend: BackendAFixed, CompileMS: []float64{0}, ProgramMS: []float64{10}, SysMS: []float64{1}},
			{Backend: BackendC, CompileMS: []float64{0}, ProgramMS: []float64{100}},
		}}},
		Incr: &Incremental{Events: []Event{
			{Kind: generator.EventKinds[0], EventMS: eventMS, Ops: 1, NetlinkBytes: 300},
			{Kind: generator.PolicyEdit, EventMS: 9, Ops: 2, NetlinkBytes: 700},
		}},
	}
}

func TestFiguresOf(t *testing.T) {
	f := FiguresOf(runWith(14, 1.5))
	if f.FullMS != 14 || f.FixedMS != 10 || f.CMS != 100 || f.Elements != 1000 {
		t.Errorf("full programming figures = %+v", f)
	}
	if f.PerElementUS != 4 || f.KernelPerElementUS != 4 {
		t.Errorf("per element: A %v µs, kernel %v µs; want 4 and 4", f.PerElementUS, f.KernelPerElementUS)
	}
	if f.EventP50MS != 1.5 || f.Events != 1 || f.NetlinkBytesElement != 300 || f.NetlinkBytesPolicyEdit != 700 {
		t.Errorf("event figures = %+v", f)
	}
}

func TestVersusJudgesTheCandidate(t *testing.T) {
	base := []*Run{runWith(20, 1), runWith(20, 1)}
	faster := Versus("old", "new", base, []*Run{runWith(19, 1.2), runWith(21, 1.2)})
	if !strings.Contains(faster, "full programming within 1.1x of old: **met**") {
		t.Errorf("a candidate as fast as the base is judged slower:\n%s", faster)
	}
	slower := Versus("old", "new", base, []*Run{runWith(30, 3), runWith(30, 3)})
	for _, want := range []string{"full programming within 1.1x of old: **missed** (1.50x", "p99 <= 10 ms: **missed**", "kernel's CPU per element: **missed** (5x"} {
		if !strings.Contains(slower, want) {
			t.Errorf("a slower candidate: want %q in\n%s", want, slower)
		}
	}
}

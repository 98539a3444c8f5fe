// Package harness runs nftpolicy's benchmarks against the baselines of package baselines, each in a
// fresh network namespace, and writes the figures as JSON (one file per run) and as a markdown table
// of ratios. Measurements are steps over one Run: full programming (1) and incremental updates (2)
// are here; per-packet cost (3), agent memory (4) and end-to-end latency (5) need the lab and are
// added as further steps filling further fields of Run.
package harness

import (
	"time"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// Run is everything one invocation measured. Every figure is kept raw (one entry per repetition or
// event), so that the report can compute medians, percentiles and ratios again.
type Run struct {
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Machine   Machine           `json:"machine"`
	Config    Config            `json:"config"`
	Params    generator.Params  `json:"params"` // the full-scale cluster; the growth scale differs in Pods only
	Full      []FullScale       `json:"fullProgramming,omitempty"`
	Floor     *ElementFloor     `json:"elementFloor,omitempty"`       // in an otherwise empty table
	FloorFull *ElementFloor     `json:"elementFloorLoaded,omitempty"` // in the full-scale table
	Probe     *ProbeResult      `json:"resyncProbe,omitempty"`
	Incr      *Incremental      `json:"incremental,omitempty"`
	Notes     []string          `json:"notes,omitempty"`
	Extra     map[string]string `json:"extra,omitempty"`
}

// Config sizes a run.
type Config struct {
	FullRepeats     int    `json:"fullRepeats"`     // full programming repetitions per backend at full scale
	GrowthPods      int    `json:"growthPods"`      // P of the growth comparison (half the full scale)
	GrowthRepeats   int    `json:"growthRepeats"`   // repetitions at the growth scale
	Events          int    `json:"events"`          // events per kind for nftpolicy
	BaselineEvents  int    `json:"baselineEvents"`  // events per kind for baseline C (a full restore each)
	Resyncs         int    `json:"resyncs"`         // full re-applies during the UDP probe stream
	FloorRepeats    int    `json:"floorRepeats"`    // one-element transactions per kind
	IPTablesRestore string `json:"iptablesRestore"` // iptables-restore binary of baseline C
	SkipNaive       bool   `json:"skipNaive"`       // baseline B too large to program
	NetlinkBytes    bool   `json:"netlinkBytes"`    // count nftpolicy's netlink bytes with strace
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"goVersion"`
	IPTables  string `json:"iptables"`
	IPSet     string `json:"ipset"`
	MemoryKiB int64  `json:"memoryKiB"`
	Model     string `json:"cpuModel"`
	// LoadAvg is /proc/loadavg when the run started: other work on the machine adds noise.
	LoadAvg string `json:"loadAvg"`
}

// Backend names, as the figures and the report use them.
const (
	BackendA = "A-nftpolicy"
	BackendB = "B-naive-nftables"
	BackendC = "C-iptables-ipset"
	// BackendAFixed is not a backend but a decomposition of A: A's ruleset with the elements of every
	// named set removed (the dispatch maps keep theirs), programmed as A's is in every repetition. It
	// is the part of A's programming that does not grow with P (table, chains, rules, sets); A minus
	// it is the part per set element.
	BackendAFixed = "A-without-set-elements"
)

// FullScale is measurement 1 at one cluster size.
type FullScale struct {
	Pods        int               `json:"pods"`
	ResolveMS   []float64         `json:"resolveMs"` // shared by every backend: the same model
	Backends    []FullBackend     `json:"backends"`
	ModelCounts map[string]int    `json:"modelCounts"`
	Skipped     map[string]string `json:"skipped,omitempty"` // backend -> why
}

// FullBackend is one backend's full programming, repeated.
type FullBackend struct {
	Backend string `json:"backend"`
	// CompileMS: the pure lowering of the model (A: nft.Compile; B, C: their layout functions).
	CompileMS []float64 `json:"compileMs"`
	// ProgramMS: from the lowered ruleset to the kernel having committed it, in a fresh namespace (A:
	// Applier.Apply, diff and netlink; B: netlink batch; C: ipset restore + iptables-restore).
	ProgramMS []float64 `json:"programMs"`
	Rules     int       `json:"rules"`
	Sets      int       `json:"sets"`     // named sets and maps (A), ipsets (C)
	Elements  int       `json:"elements"` // set and map elements (A, as ranges), ipset entries (C)
	// TextBytes: the size of the text the same change is written as: A and B the `nft -f` script of
	// the transaction, C the ipset restore and iptables-restore inputs.
	TextBytes int `json:"textBytes"`
	// UserMS and SysMS: CPU time of the programming (A, B: this process, getrusage after a GC; C:
	// the ipset and iptables-restore processes), per repetition.
	UserMS []float64 `json:"userMs,omitempty"`
	SysMS  []float64 `json:"sysMs,omitempty"`
	// NetlinkBytes: bytes handed to sendmsg on the nf_tables socket (A only, counted with strace in a
	// separate pass); 0 when not counted.
	NetlinkBytes int `json:"netlinkBytes,omitempty"`
}

// ElementFloor is the kernel's cost of the smallest transactions: one element added, one deleted.
type ElementFloor struct {
	Set      string    `json:"set"`
	AddMS    []float64 `json:"addMs"`
	DeleteMS []float64 `json:"deleteMs"`
}

// ProbeResult is the zero-loss check of measurement 1: a UDP stream of an allowed, established flow
// between two lab pods through the node, while the node's full table is re-applied several times.
type ProbeResult struct {
	Resyncs      int       `json:"resyncs"`
	ResyncMS     []float64 `json:"resyncMs"`
	Sent         int       `json:"sent"`
	Received     int       `json:"received"`
	Lost         int       `json:"lost"`
	IntervalUS   int       `json:"intervalUs"`
	DeniedBefore bool      `json:"deniedBefore"` // a flow the policy does not allow was refused: the table is enforcing
}

// Incremental is measurement 2.
type Incremental struct {
	Events []Event `json:"events"`
}

// Event is one change of the cluster and what each backend did about it.
type Event struct {
	Kind        generator.EventKind `json:"kind"`
	Description string              `json:"description"`
	// nftpolicy
	ApplyMS      float64 `json:"applyMs"` // Applier.Apply: diff and commit, after an untimed GC
	EventMS      float64 `json:"eventMs"` // the whole response: ResolveMS + CompileMS + ApplyMS
	DiffMS       float64 `json:"diffMs"`  // nft.Diff alone, measured separately
	ResolveMS    float64 `json:"resolveMs"`
	CompileMS    float64 `json:"compileMs"`
	Ops          int     `json:"ops"`
	Elements     int     `json:"elements"`
	SetsTouched  int     `json:"setsTouched"` // k: sets and maps whose elements changed
	Rules        int     `json:"rules"`
	TextBytes    int     `json:"textBytes"`
	NetlinkBytes int     `json:"netlinkBytes,omitempty"`
	FullReplace  bool    `json:"fullReplace"`
	// ResizedSets counts sets deleted and created again under their name: a hash set outgrowing its
	// size, which also refills the chains that use it.
	ResizedSets int  `json:"resizedSets,omitempty"`
	Deletes     bool `json:"deletes"` // the transaction deletes elements or rules: one RCU grace period
	// baseline C, when measured for this event
	CSyncMS *float64 `json:"cSyncMs,omitempty"`
	CBytes  int      `json:"cBytes,omitempty"`
}

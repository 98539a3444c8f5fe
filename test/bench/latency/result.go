package main

import (
	"time"

	"github.com/nftpolicy/nftpolicy/test/bench/harness"
)

// run is the JSON file of one benchmark run: bench/runs/latency-TIMESTAMP.json.
type run struct {
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	Machine  harness.Machine `json:"machine"`
	Config   configJSON      `json:"config"`
	Sizes    []*sizeResult   `json:"sizes"`
}

type configJSON struct {
	Nodes             int     `json:"nodes"`
	Trials            int     `json:"trials"`
	ProbeTimeoutMs    float64 `json:"probeTimeoutMs"`
	ProbeIntervalMs   float64 `json:"probeIntervalMs"`
	Probers           int     `json:"probers"`
	Confirm           int     `json:"confirm"`
	SettleMs          float64 `json:"settleMs"`
	TransitionTimeout float64 `json:"transitionTimeoutS"`
	FloorS            float64 `json:"floorS"`
	Nice              int     `json:"nice"`
}

// sizeResult is everything measured on one lab of Pods pods.
type sizeResult struct {
	Pods               int    `json:"pods"`
	RealPods           int    `json:"realPods"`    // with a network namespace, on the lab's nodes
	APIOnlyPods        int    `json:"apiOnlyPods"` // API objects on agentless nodes
	Nodes              int    `json:"nodes"`
	BackgroundPolicies int    `json:"backgroundPolicies"`
	TargetNode         string `json:"targetNode"`
	ClientNode         string `json:"clientNode"`
	Trials             int    `json:"trials"`
	Setup              struct {
		LabStartS    float64 `json:"labStartS"`
		RealPodsS    float64 `json:"realPodsS"`
		APIOnlyPodsS float64 `json:"apiOnlyPodsS"`
		AgentsQuietS float64 `json:"agentsQuietS"` // until no agent synced for 2 s
	} `json:"setup"`
	Floor struct {
		Allowed floorFigures `json:"allowed"`
		Blocked floorFigures `json:"blocked"`
	} `json:"floor"`
	TrialsS float64             `json:"trialsS"`
	Kinds   map[string][]sample `json:"kinds"`
	// Agents are the agents' histograms over the trials, by node.
	Agents map[string]agentFigures `json:"agents"`
}

// floorFigures are the probe loop's own figures with nothing changing.
type floorFigures struct {
	Probes        int     `json:"probes"`
	WrongVerdicts int     `json:"wrongVerdicts"`
	OtherFailures int     `json:"otherFailures"`
	ProbeMs       summary `json:"probeMs"` // one probe's duration
	GapMs         summary `json:"gapMs"`   // between consecutive probe starts: the resolution
	// TargetConntrack is the size of the target node's conntrack table at the end, mostly the
	// probes' own closed connections.
	TargetConntrack int `json:"targetConntrack"`
}

// sample is one timed change.
type sample struct {
	// LatencyMs runs from the write call returning to the start of the first probe of the new verdict.
	LatencyMs float64 `json:"latencyMs"`
	// FromIssueMs runs from the write call's start instead: LatencyMs plus CallMs.
	FromIssueMs float64 `json:"fromIssueMs"`
	// BracketMs is the gap between the last probe of the old verdict and the first of the new one.
	BracketMs float64 `json:"bracketMs"`
	// CallMs is the write call's own duration.
	CallMs float64 `json:"callMs"`
	// WatchMs runs from the call returning to the benchmark's own watch receiving the change.
	WatchMs *float64 `json:"watchMs,omitempty"`
	// ProgrammingMs is the target agent's mean observed-to-committed latency of the changes it timed
	// in this transition (its nftpolicy_programming_latency_seconds sum over count); Programmed is
	// that count.
	ProgrammingMs *float64 `json:"programmingMs,omitempty"`
	Programmed    int      `json:"programmed"`
	// SyncMs is the target agent's mean sync duration in this transition, Syncs their number.
	SyncMs   *float64 `json:"syncMs,omitempty"`
	Syncs    int      `json:"syncs"`
	Flaps    int      `json:"flaps,omitempty"`
	Relapses int      `json:"relapses,omitempty"`
	TimedOut bool     `json:"timedOut,omitempty"`
}

type agentFigures struct {
	ProgrammingLatency histogram `json:"programmingLatency"`
	SyncDuration       histogram `json:"syncDuration"`
}

package packet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/baselines"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
	"github.com/nftpolicy/nftpolicy/test/bench/harness"
)

// Options are the knobs of a run.
type Options struct {
	Params        generator.Params `json:"params"` // the cluster with policies; A-0 uses it with none
	Rounds        int              `json:"rounds"`
	CRRWorkers    int              `json:"crrWorkers"`
	CRRSeconds    float64          `json:"crrSeconds"`
	StreamSeconds float64          `json:"streamSeconds"`
	UDPWorkers    int              `json:"udpWorkers"`
	UDPSeconds    float64          `json:"udpSeconds"`
	ServerThreads int              `json:"serverThreads"` // per server socket (CRR and UDP)
	PauseMS       int              `json:"pauseMs"`       // between two runs, for the softirq backlog to drain
	// DropLog, when set, adds the table with N policies again with drop logging on (A-10k-log).
	DropLog *DropLogOptions `json:"dropLog,omitempty"`
	// Log, when set, gets one line per run.
	Log func(format string, args ...any) `json:"-"`
}

// DefaultOptions: the scale (P=50k, N=10k, L=110). Many short rounds rather than a few long
// ones: on a shared 2-core VM the load changes within seconds, and a ratio per round compares runs
// that were close in time.
func DefaultOptions() Options {
	return Options{
		Params:     generator.Defaults(50000, 10000, generator.DistinctSelectors),
		Rounds:     12,
		CRRWorkers: 2, CRRSeconds: 2,
		StreamSeconds: 1.5,
		UDPWorkers:    2, UDPSeconds: 1.5,
		ServerThreads: 2,
		PauseMS:       200,
		DropLog:       DefaultDropLogOptions(),
	}
}

// Figures are one table's results, one entry per round.
type Figures struct {
	CRR    []CRRResult    `json:"crr"`
	Stream []StreamResult `json:"stream"`
	UDP    []UDPResult    `json:"udp"`
	// Log is, per round, what the table's NFLOG reader read during the round (logging tables only).
	Log []LogCounts `json:"log,omitempty"`
}

// Run is the JSON file of one run.
type Run struct {
	Started  time.Time        `json:"started"`
	Seconds  float64          `json:"seconds"`
	Machine  harness.Machine  `json:"machine"`
	Options  Options          `json:"options"`
	Twins    Twins            `json:"twins"`
	Tables   []Table          `json:"tables"`  // in the order of Figures
	Figures  []Figures        `json:"figures"` // per table
	Order    [][]string       `json:"order"`   // per round, the order the tables ran in
	Problems []string         `json:"problems,omitempty"`
	Summary  map[string]Stats `json:"summary"` // per table name
	Ratios   []RatioRow       `json:"ratios"`
	// LogTotals is, per logging table, what its NFLOG reader read over the whole run, from the
	// checks before the first round until the reader was closed.
	LogTotals map[string]LogCounts `json:"logTotals,omitempty"`
}

// node is one table's node with its pods and servers.
type node struct {
	table          *Table
	node           *netlab.Node
	client, server *netlab.Pod
	srv            *servers
	log            *logReader // the log group's reader, on a table with drop logging
	logSeen        LogCounts  // the reader's counts at the end of the last round
}

func (n *node) dst(port uint16) netip.AddrPort { return netip.AddrPortFrom(n.server.IPv4, port) }

// Measure builds the nodes (one per table), runs the workloads round after round and returns the run. The lab
// is removed before it returns, whatever happens.
func Measure(opts Options) (run *Run, err error) {
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	run = &Run{Started: time.Now().UTC(), Machine: harness.DescribeMachine("iptables-restore"), Options: opts, Summary: map[string]Stats{}}
	lab, err := netlab.New()
	if err != nil {
		return nil, err
	}
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			if n.srv != nil {
				err = errors.Join(err, n.srv.close())
			}
			if n.log != nil {
				err = errors.Join(err, n.log.close())
			}
		}
		err = errors.Join(err, lab.Close())
	}()
	nodes, run.Twins, err = buildNodes(lab, opts, logf)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		run.Tables = append(run.Tables, *n.table)
		if n.log != nil {
			n.logSeen = n.log.counts() // the checks' records count in the totals, not in round 1
		}
	}
	run.Figures = make([]Figures, len(nodes))
	for r := range opts.Rounds {
		order := rotate(len(nodes), r)
		var names []string
		for _, i := range order {
			names = append(names, nodes[i].table.Name)
		}
		run.Order = append(run.Order, names)
		if err := runRound(nodes, order, opts, run, logf, r); err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
	}
	for _, n := range nodes {
		if n.log == nil {
			continue
		}
		if err := n.log.close(); err != nil {
			return nil, fmt.Errorf("drop log of %s: %w", n.table.Name, err)
		}
		if run.LogTotals == nil {
			run.LogTotals = map[string]LogCounts{}
		}
		run.LogTotals[n.table.Name] = n.log.counts()
	}
	run.Seconds = time.Since(run.Started).Seconds()
	run.summarize()
	return run, nil
}

// rotate is the order of n tables in round r: each round starts one table later, so that no table
// always runs first (just after a pause) or last.
func rotate(n, r int) []int {
	out := make([]int, n)
	for i := range n {
		out[i] = (i + r) % n
	}
	return out
}

// runRound runs each workload on every table in turn: CRR on all, then stream on all, then UDP.
func runRound(nodes []*node, order []int, opts Options, run *Run, logf func(string, ...any), r int) error {
	pause := func() { time.Sleep(time.Duration(opts.PauseMS) * time.Millisecond) }
	seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	for _, i := range order {
		n := nodes[i]
		if err := flushConntrack(n.node); err != nil {
			return err
		}
		pause()
		res, err := runCRR(n.client, n.dst(crrPort), opts.CRRWorkers, seconds(opts.CRRSeconds))
		if err != nil {
			return fmt.Errorf("CRR on %s: %w", n.table.Name, err)
		}
		run.Figures[i].CRR = append(run.Figures[i].CRR, res)
		logf("round %d %-15s crr %8.0f conn/s connect p50 %6.1f µs p99 %7.1f µs (%d failed)", r+1, n.table.Name, res.PerSecond, res.ConnectP50US, res.ConnectP99US, res.Failures)
	}
	for _, i := range order {
		n := nodes[i]
		pause()
		res, err := runStream(n.client, n.dst(streamPort), seconds(opts.StreamSeconds))
		if err != nil {
			return fmt.Errorf("stream on %s: %w", n.table.Name, err)
		}
		run.Figures[i].Stream = append(run.Figures[i].Stream, res)
		logf("round %d %-15s stream %6.2f Gbit/s", r+1, n.table.Name, res.Gbps)
	}
	for _, i := range order {
		n := nodes[i]
		pause()
		res, err := runUDP(n.client, n.dst(udpPort), opts.UDPWorkers, seconds(opts.UDPSeconds))
		if err != nil {
			return fmt.Errorf("UDP on %s: %w", n.table.Name, err)
		}
		run.Figures[i].UDP = append(run.Figures[i].UDP, res)
		logf("round %d %-15s udp %8.0f round trips/s (%d lost)", r+1, n.table.Name, res.PerSecond, res.Lost)
	}
	for _, i := range order {
		n := nodes[i]
		if n.log == nil {
			continue
		}
		total := n.log.counts()
		c := total.minus(n.logSeen)
		n.logSeen = total
		run.Figures[i].Log = append(run.Figures[i].Log, c)
		logf("round %d %-15s log %d records (%d allowed, %d denied, %d other), %d overruns, %d lost", r+1, n.table.Name, c.Records, c.Allowed, c.Denied, c.Other, c.Overruns, c.Lost)
	}
	return nil
}

// flushConntrack empties the node's connection tracking table, so that every CRR run starts from the
// same state whatever ran before it.
func flushConntrack(n *netlab.Node) error {
	if err := n.Do(func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) }); err != nil {
		return fmt.Errorf("flushing conntrack on %s: %w", n.Name, err)
	}
	return nil
}

// buildNodes creates one node per table, with its pods, table and servers, and checks that the
// allowed flows pass and (for the policy tables) that a port no policy allows does not.
func buildNodes(lab *netlab.Lab, opts Options, logf func(string, ...any)) ([]*node, Twins, error) {
	withPolicies, err := generator.Generate(opts.Params)
	if err != nil {
		return nil, Twins{}, err
	}
	noPolicies := opts.Params
	noPolicies.Policies = 0
	without, err := generator.Generate(noPolicies)
	if err != nil {
		return nil, Twins{}, err
	}
	twins, err := chooseTwins(selectors.Resolve(withPolicies.Snapshot))
	if err != nil {
		return nil, Twins{}, err
	}
	label := policiesLabel(opts.Params.Policies)
	specs := []struct {
		table    Table
		snapshot *selectors.Snapshot
		twins    *Twins
		log      *DropLogOptions
	}{
		{Table{Name: KindConntrack, Kind: KindConntrack, Description: "`ct state established,related accept`, then `accept`, in one forward base chain"}, nil, nil, nil},
		{Table{Name: "A-0", Kind: KindA, Description: fmt.Sprintf("nftpolicy, P=%d pods, no policy", opts.Params.Pods)}, without.Snapshot, nil, nil},
		{Table{Name: "A-" + label, Kind: KindA, Policies: opts.Params.Policies, Description: fmt.Sprintf("nftpolicy, P=%d pods, N=%d policies", opts.Params.Pods, opts.Params.Policies)}, withPolicies.Snapshot, &twins, nil},
		{Table{Name: "B-" + label, Kind: KindB, Policies: opts.Params.Policies, Description: fmt.Sprintf("baseline B (linear rules), same model as A-%s", label)}, withPolicies.Snapshot, &twins, nil},
	}
	if opts.DropLog != nil {
		// Right after A-N, so that the interleaved order runs the two one after the other.
		logged := Table{Name: "A-" + label + logTableSuffix, Kind: KindA, Policies: opts.Params.Policies,
			Description: fmt.Sprintf("A-%s with drop logging at level all for the lab pods' namespaces, an NFLOG reader draining group %d", label, opts.DropLog.Group)}
		specs = slices.Insert(specs, 3, specs[2])
		specs[3].table, specs[3].log = logged, opts.DropLog
	}
	var nodes []*node
	for _, spec := range specs {
		n, err := newNode(lab, spec.table)
		if err != nil {
			return nodes, twins, err
		}
		nodes = append(nodes, n)
		if err := n.program(spec.snapshot, spec.twins, spec.log); err != nil {
			return nodes, twins, err
		}
		if spec.log != nil {
			if n.log, err = openLogReader(n.node.Path, spec.log.Group); err != nil {
				return nodes, twins, fmt.Errorf("table %s: %w", n.table.Name, err)
			}
		}
		if n.srv, err = startServers(n.server, opts.ServerThreads); err != nil {
			return nodes, twins, err
		}
		if err := n.check(); err != nil {
			return nodes, twins, err
		}
		logf("%-15s %s: %d rules, %d sets, %d elements, first packet walks %d rules, programmed in %.0f ms",
			n.table.Name, n.table.Description, n.table.Rules, n.table.Sets, n.table.Elements, n.table.FirstPacketRules, n.table.ProgramMS)
	}
	return nodes, twins, nil
}

func policiesLabel(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func newNode(lab *netlab.Lab, t Table) (*node, error) {
	nn, err := lab.AddNode()
	if err != nil {
		return nil, err
	}
	n := &node{table: &t, node: nn}
	if n.client, err = nn.AddPod("client"); err != nil {
		return nil, err
	}
	if n.server, err = nn.AddPod("server"); err != nil {
		return nil, err
	}
	// The client's whole port range: a CRR run opens tens of thousands of connections.
	err = n.client.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys/net/ipv4/ip_local_port_range"), []byte("1024 65535"), 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("widening the client's port range: %w", err)
	}
	return n, nil
}

// program writes the node's table: the conntrack-only baseline when snapshot is nil, else A or B of
// the snapshot with the lab pods added; A with drop logging for the lab pods' namespaces when log
// is set.
func (n *node) program(snapshot *selectors.Snapshot, twins *Twins, log *DropLogOptions) error {
	t := n.table
	if snapshot == nil {
		rs := conntrackOnly()
		d, err := programNFT(n.node.Path, rs)
		t.ProgramMS = float64(d.Microseconds()) / 1e3
		if err != nil {
			return err
		}
		return describeNFT(t, rs, n.syn())
	}
	s, err := withLabPods(snapshot, labPods{Client: n.client.IPv4, Server: n.server.IPv4}, twins)
	if err != nil {
		return err
	}
	m := selectors.Resolve(s)
	switch t.Kind {
	case KindA:
		var dl *nft.DropLog
		if log != nil {
			var desc TableDropLog
			dl, desc = dropLogFor(m, *log, labNamespaces(m, n.client.IPv4, n.server.IPv4))
			t.DropLog = &desc
		}
		rs := compileA(m, map[netip.Addr]string{n.client.IPv4: n.client.HostIfname, n.server.IPv4: n.server.HostIfname}, dl)
		if err := describeNFT(t, rs, n.syn()); err != nil {
			return err
		}
		d, err := programNFT(n.node.Path, rs)
		t.ProgramMS = float64(d.Microseconds()) / 1e3
		return err
	case KindB:
		layout, err := baselines.NaiveLayout(m)
		if err != nil {
			return err
		}
		if err := describeNaive(t, layout, n.client.IPv4, n.server.IPv4, crrPort); err != nil {
			return err
		}
		start := time.Now()
		if err := baselines.ProgramNaive(n.node.Path, layout); err != nil {
			return err
		}
		t.ProgramMS = float64(time.Since(start).Microseconds()) / 1e3
		return nil
	}
	return fmt.Errorf("unknown table kind %q", t.Kind)
}

// syn is the first packet of a benchmark connection as the node's forward hook sees it.
func (n *node) syn() nft.Packet {
	return nft.Packet{
		Hook: nft.HookForward, Iifname: n.client.HostIfname, Src: n.client.IPv4, Dst: n.server.IPv4,
		Proto: protoTCP, DstPort: crrPort, Ct: nft.CtNew,
	}
}

// check runs a connection to a port no policy allows, refused by the server's kernel (the table let
// the SYN through) or timed out (the table dropped it), and one transaction of each workload. The
// denied connection goes first: on a logging table its drop is then the first record of the
// client-server pair, which the per-pair limit lets through (it is shared by every log rule).
func (n *node) check() error {
	err := n.client.ConnectTCP(n.dst(deniedPort), 300*time.Millisecond)
	n.table.DeniedPortDropped = err != nil && !errors.Is(err, syscall.ECONNREFUSED)
	if want := n.table.Policies > 0; n.table.DeniedPortDropped != want {
		if err == nil {
			return fmt.Errorf("table %s: a connection to port %d, which no policy allows, went through", n.table.Name, deniedPort)
		}
		return fmt.Errorf("table %s: a connection to port %d (want dropped: %v): %w", n.table.Name, deniedPort, want, err)
	}
	if _, err := runCRR(n.client, n.dst(crrPort), 1, 50*time.Millisecond); err != nil {
		return fmt.Errorf("checking TCP on %s: %w", n.table.Name, err)
	}
	if err := n.client.RequestUDP(n.dst(udpPort), time.Second); err != nil {
		return fmt.Errorf("checking UDP on %s: %w", n.table.Name, err)
	}
	return nil
}

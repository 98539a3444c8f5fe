package harness

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/baselines"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// Table is the name of nftpolicy's table in the benchmark namespaces.
const Table = "nftpolicy"

// withNode runs fn with a fresh node namespace that is removed afterwards, whatever fn returns.
func withNode(fn func(node *netlab.Node) error) (err error) {
	lab, err := netlab.New()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	node, err := lab.AddNode()
	if err != nil {
		return err
	}
	return fn(node)
}

// Interfaces gives every local pod a made-up host interface, so that the anti-spoofing sets are
// filled as on a real node (the kernel does not check that the interfaces exist).
func Interfaces(m *selectors.Model) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for i, p := range m.LocalPods {
		for _, ip := range p.IPs {
			out[ip] = fmt.Sprintf("bench%d", i)
		}
	}
	return out
}

// MeasureFull is measurement 1 at the sizes of scales: every backend programs the same resolved
// model into a fresh namespace, repeats[i] times at scales[i]. Repetitions are interleaved: each
// one programs every scale, backends in turn, so that a ratio between two scales (the growth when P
// doubles) compares figures taken minutes apart at most, not two phases of the run.
func MeasureFull(scales []generator.Params, repeats []int, cfg Config) ([]FullScale, error) {
	type scale struct {
		fs       FullScale
		m        *selectors.Model
		ifaces   map[netip.Addr]string
		a, fixed FullBackend
		b, c     FullBackend
	}
	all := make([]*scale, len(scales))
	most := 0
	for i, params := range scales {
		sc := &scale{fs: FullScale{Pods: params.Pods, Skipped: map[string]string{}},
			a: FullBackend{Backend: BackendA}, fixed: FullBackend{Backend: BackendAFixed},
			b: FullBackend{Backend: BackendB}, c: FullBackend{Backend: BackendC}}
		c, err := generator.Generate(params)
		if err != nil {
			return nil, err
		}
		for range repeats[i] {
			start := time.Now()
			sc.m = selectors.Resolve(c.Snapshot)
			sc.fs.ResolveMS = append(sc.fs.ResolveMS, ms(time.Since(start)))
		}
		sc.fs.ModelCounts = ModelCounts(sc.m)
		sc.ifaces = Interfaces(sc.m)
		if cfg.SkipNaive {
			sc.fs.Skipped[BackendB] = "skipped by configuration"
		}
		all[i] = sc
		most = max(most, repeats[i])
	}
	for rep := range most {
		for i, sc := range all {
			if rep >= repeats[i] {
				continue
			}
			pods := scales[i].Pods
			if err := fullA(sc.m, sc.ifaces, &sc.a, rep == 0, false); err != nil {
				return nil, fmt.Errorf("programming %s at %d pods: %w", BackendA, pods, err)
			}
			if err := fullA(sc.m, sc.ifaces, &sc.fixed, rep == 0, true); err != nil {
				return nil, fmt.Errorf("programming %s at %d pods: %w", BackendAFixed, pods, err)
			}
			if !cfg.SkipNaive {
				if err := fullB(sc.m, &sc.b, rep == 0); err != nil {
					return nil, fmt.Errorf("programming %s at %d pods: %w", BackendB, pods, err)
				}
			}
			if err := fullC(sc.m, cfg.IPTablesRestore, &sc.c, rep == 0); err != nil {
				return nil, fmt.Errorf("programming %s at %d pods: %w", BackendC, pods, err)
			}
		}
	}
	out := make([]FullScale, len(all))
	for i, sc := range all {
		sc.fs.Backends = append(sc.fs.Backends, sc.a, sc.fixed)
		if !cfg.SkipNaive {
			sc.fs.Backends = append(sc.fs.Backends, sc.b)
		}
		sc.fs.Backends = append(sc.fs.Backends, sc.c)
		out[i] = sc.fs
	}
	return out, nil
}

// ModelCounts sizes a resolved model.
func ModelCounts(m *selectors.Model) map[string]int {
	counts := map[string]int{"localPods": len(m.LocalPods), "addressSets": len(m.AddressSets), "serviceSets": len(m.ServiceSets), "problems": len(m.Problems)}
	for _, p := range m.LocalPods {
		for _, iso := range []*selectors.Isolation{p.Ingress, p.Egress} {
			if iso != nil {
				counts["isolations"]++
				counts["rules"] += len(iso.Rules)
			}
		}
	}
	for _, s := range m.AddressSets {
		counts["addressRanges"] += len(s.Ranges)
	}
	for _, s := range m.ServiceSets {
		counts["services"] += len(s.Services)
	}
	return counts
}

// fullA programs A's ruleset into a fresh namespace; withoutSetElements programs it with every named
// set empty (BackendAFixed), its compile time being A's.
func fullA(m *selectors.Model, ifaces map[netip.Addr]string, out *FullBackend, first, withoutSetElements bool) error {
	start := time.Now()
	rs := nft.Compile(nft.CompileInput{Table: Table, Model: m, Interfaces: ifaces})
	out.CompileMS = append(out.CompileMS, ms(time.Since(start)))
	if withoutSetElements {
		rs = withoutSetElementsOf(rs)
	}
	if first {
		out.Rules, out.Sets, out.Elements = RulesetCounts(rs)
		out.TextBytes = len(nft.Diff(nil, rs, nft.FullChanges()).String())
	}
	return withNode(func(node *netlab.Node) error {
		backend, err := kernel.NewNetlinkBackend(node.Path)
		if err != nil {
			return err
		}
		defer backend.Close()
		cpu := startCPU(false)
		start := time.Now()
		if _, err := nft.NewApplier(backend).Apply(rs, nft.FullChanges()); err != nil {
			return err
		}
		out.ProgramMS = append(out.ProgramMS, ms(time.Since(start)))
		cpu.stop(out)
		return nil
	})
}

// withoutSetElementsOf returns rs with every named set empty (sizes kept).
func withoutSetElementsOf(rs *nft.Ruleset) *nft.Ruleset {
	out := *rs
	out.Sets = make([]nft.Set, len(rs.Sets))
	for i, s := range rs.Sets {
		s.Elements = nil
		out.Sets[i] = s
	}
	return &out
}

// RulesetCounts returns the rules, the named sets and maps, and their elements.
func RulesetCounts(rs *nft.Ruleset) (rules, sets, elements int) {
	for _, c := range rs.Chains {
		rules += len(c.Rules)
	}
	for _, s := range rs.Sets {
		elements += len(s.Elements)
	}
	for _, m := range rs.Maps {
		elements += len(m.Elements)
	}
	return rules, len(rs.Sets) + len(rs.Maps), elements
}

func fullB(m *selectors.Model, out *FullBackend, first bool) error {
	start := time.Now()
	n, err := baselines.NaiveLayout(m)
	if err != nil {
		return err
	}
	out.CompileMS = append(out.CompileMS, ms(time.Since(start)))
	if first {
		out.Rules = n.Rules()
		out.TextBytes = len(n.Render())
	}
	return withNode(func(node *netlab.Node) error {
		cpu := startCPU(false)
		start := time.Now()
		if err := baselines.ProgramNaive(node.Path, n); err != nil {
			return err
		}
		out.ProgramMS = append(out.ProgramMS, ms(time.Since(start)))
		cpu.stop(out)
		return nil
	})
}

func fullC(m *selectors.Model, restore string, out *FullBackend, first bool) error {
	start := time.Now()
	c, err := baselines.IPTablesLayout(m)
	if err != nil {
		return err
	}
	out.CompileMS = append(out.CompileMS, ms(time.Since(start)))
	return withNode(func(node *netlab.Node) error {
		syncer := &baselines.IPTablesSyncer{Netns: node.Name, Restore: restore}
		cpu := startCPU(true)
		res, err := syncer.Sync(c)
		if err != nil {
			return err
		}
		out.ProgramMS = append(out.ProgramMS, ms(res.Duration))
		cpu.stop(out)
		if first {
			out.Rules, out.Sets, out.Elements, out.TextBytes = c.Rules, len(c.Sets), c.Elements(), res.Bytes()
		}
		return nil
	})
}

// cpuMeter measures the CPU time of a programming: this process's, or its children's (the tools of
// baseline C). A GC runs first, so that collecting earlier garbage is not counted.
type cpuMeter struct {
	who       int
	user, sys float64
}

// startCPU starts measuring, once the kernel is done tearing down earlier namespaces (settleKernel).
func startCPU(children bool) cpuMeter {
	settleKernel()
	m := cpuMeter{who: syscall.RUSAGE_SELF}
	if children {
		m.who = syscall.RUSAGE_CHILDREN
	}
	runtime.GC()
	m.user, m.sys = rusage(m.who)
	return m
}

func (m cpuMeter) stop(out *FullBackend) {
	user, sys := rusage(m.who)
	out.UserMS = append(out.UserMS, user-m.user)
	out.SysMS = append(out.SysMS, sys-m.sys)
}

func rusage(who int) (user, sys float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0, 0
	}
	return float64(ru.Utime.Nano()) / 1e6, float64(ru.Stime.Nano()) / 1e6
}

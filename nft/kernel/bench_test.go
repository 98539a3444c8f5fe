package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"

	"github.com/google/nftables"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// BenchmarkKernelApply programs a node namespace: a full replacement of the table (the baseline) and
// an incremental one-pod change, both through the netlink backend, one transaction each.
func BenchmarkKernelApply(b *testing.B) {
	backend := benchNamespace(b)
	for _, pods := range benchSizes {
		m, ifaces := benchModel(pods)
		first := nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
		b.Run(fmt.Sprintf("full/pods=%d", pods), func(b *testing.B) {
			for b.Loop() {
				if err := backend.Run(nft.Diff(nil, first, nft.FullChanges())); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("one-pod/pods=%d", pods), func(b *testing.B) {
			a := nft.NewApplier(backend)
			if _, err := a.Apply(first, nft.FullChanges()); err != nil {
				b.Fatal(err)
			}
			spare := []netip.Addr{netip.MustParseAddr("198.19.255.1"), netip.MustParseAddr("198.19.255.3")}
			i := 0
			for b.Loop() {
				b.StopTimer()
				movePod(m, ifaces, spare[i%2])
				i++
				next := nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
				b.StartTimer()
				res, err := a.Apply(next, nft.FullChanges())
				if err != nil {
					b.Fatal(err)
				}
				if res.FullReplace {
					b.Fatal("the one-pod change replaced the table")
				}
			}
		})
	}
}

// issueRuleset compiles the generated cluster of issue 5's measurement 1 (N=10000 policies,
// L=110 local pods, distinct selectors) at the given number of cluster pods, as the bench command
// does: every local pod gets a made-up host interface.
func issueRuleset(b testing.TB, pods int) *nft.Ruleset {
	b.Helper()
	c, err := generator.Generate(generator.Defaults(pods, 10000, generator.DistinctSelectors))
	if err != nil {
		b.Fatal(err)
	}
	m := selectors.Resolve(c.Snapshot)
	ifaces := map[netip.Addr]string{}
	for i, p := range m.LocalPods {
		for _, ip := range p.IPs {
			ifaces[ip] = fmt.Sprintf("bench%d", i)
		}
	}
	return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
}

// BenchmarkProgramFull is measurement 1's "program" figure: the full replacement of the table in a
// namespace where it does not exist yet, one transaction. The table is removed between iterations,
// outside the timed part. Besides time and allocations it reports the CPU time of the process in
// user space and in the kernel (getrusage, after a GC), the kernel's share being mostly nf_tables
// applying the batch.
func BenchmarkProgramFull(b *testing.B) {
	backend := benchNamespace(b)
	for _, pods := range benchSizes {
		rs := issueRuleset(b, pods)
		tx := nft.Diff(nil, rs, nft.FullChanges())
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			var user, sys float64
			for b.Loop() {
				b.StopTimer()
				if err := nft.RemoveTable(backend, tx.Table); err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				u0, s0 := processCPU()
				b.StartTimer()
				if err := backend.Run(tx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				u1, s1 := processCPU()
				user += u1 - u0
				sys += s1 - s0
				b.StartTimer()
			}
			b.ReportMetric(user/float64(b.N), "user-ms/op")
			b.ReportMetric(sys/float64(b.N), "sys-ms/op")
			b.ReportMetric(float64(elementCount(rs)), "elements")
		})
	}
}

// BenchmarkLowerFull is the user-space half of a full replacement without the kernel: lowering every
// operation to netlink messages queued on a connection that is never flushed.
func BenchmarkLowerFull(b *testing.B) {
	for _, pods := range benchSizes {
		tx := nft.Diff(nil, issueRuleset(b, pods), nft.FullChanges())
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				conn, err := nftables.New()
				if err != nil {
					b.Fatal(err)
				}
				if err := newLowering(conn, tx.Table, newAnonymousSetNames()).transaction(tx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// processCPU returns the user and system CPU time of this process, in milliseconds.
func processCPU() (user, sys float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return float64(ru.Utime.Nano()) / 1e6, float64(ru.Stime.Nano()) / 1e6
}

// elementCount returns the elements of every set and map, a range counting as one.
func elementCount(rs *nft.Ruleset) (n int) {
	for _, s := range rs.Sets {
		n += len(s.Elements)
	}
	for _, m := range rs.Maps {
		n += len(m.Elements)
	}
	return n
}

// BenchmarkKernelElementFloor is the smallest transaction there is: one element added to, or deleted
// from, a set. It shows the kernel's own cost per commit, which no layout can go below.
func BenchmarkKernelElementFloor(b *testing.B) {
	backend := benchNamespace(b)
	if err := backend.Run(nft.Diff(nil, nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: emptyModel()}), nft.FullChanges())); err != nil {
		b.Fatal(err)
	}
	elems := []nft.Element{{Addr: netip.MustParseAddr("198.18.0.1")}}
	b.Run("add", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			del := &nft.Transaction{Table: "nftpolicy", Ops: []nft.Op{nft.AddElements{Set: setPodAddrsV4, Type: nft.KeyIPv4, Elements: elems}, nft.DeleteElements{Set: setPodAddrsV4, Type: nft.KeyIPv4, Elements: elems}}}
			if err := backend.Run(del); err != nil { // leaves the set empty, outside the timed part
				b.Fatal(err)
			}
			b.StartTimer()
			if err := backend.Run(&nft.Transaction{Table: "nftpolicy", Ops: []nft.Op{nft.AddElements{Set: setPodAddrsV4, Type: nft.KeyIPv4, Elements: elems}}}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := backend.Run(&nft.Transaction{Table: "nftpolicy", Ops: []nft.Op{nft.DeleteElements{Set: setPodAddrsV4, Type: nft.KeyIPv4, Elements: elems}}}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("delete", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if err := backend.Run(&nft.Transaction{Table: "nftpolicy", Ops: []nft.Op{nft.AddElements{Set: setPodAddrsV4, Type: nft.KeyIPv4, Elements: elems}}}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := backend.Run(&nft.Transaction{Table: "nftpolicy", Ops: []nft.Op{nft.DeleteElements{Set: setPodAddrsV4, Type: nft.KeyIPv4, Elements: elems}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchNamespace returns a backend for a fresh node namespace, removed when the benchmark ends, or
// skips the benchmark where namespaces cannot be made.
func benchNamespace(b *testing.B) *NetlinkBackend {
	b.Helper()
	if reason := netlab.Unavailable(); reason != "" {
		b.Skip(reason)
	}
	lab, err := netlab.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = lab.Close() })
	node, err := lab.AddNode()
	if err != nil {
		b.Fatal(err)
	}
	backend, err := NewNetlinkBackend(node.Path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = backend.Close() })
	return backend
}

// BenchmarkKernelCheck reads the table of issue 5's measurement 1 (10000 policies) back and compares
// it with the committed ruleset, as every periodic resync does; the full replacement of the same
// table, one transaction, is the baseline of the same run.
func BenchmarkKernelCheck(b *testing.B) {
	backend := benchNamespace(b)
	for _, pods := range []int{50000} {
		rs := issueRuleset(b, pods)
		b.Run(fmt.Sprintf("full-replace/pods=%d", pods), func(b *testing.B) {
			for b.Loop() {
				if err := backend.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("read-back/pods=%d", pods), func(b *testing.B) {
			if err := backend.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				diffs, err := backend.Check(rs)
				if err != nil || diffs != nil {
					b.Fatalf("differences %q, error %v", diffs, err)
				}
			}
		})
	}
}

// BenchmarkKernelWatchCost is what watching nf_tables notifications costs our own commits: the kernel
// builds a notification for every object and element of a batch once someone listens, and the
// watch reads them. A full replacement and a one-pod change of the table of issue 5's measurement
// 1, unwatched (the baseline) and watched, in the same run.
func BenchmarkKernelWatchCost(b *testing.B) {
	backend := benchNamespace(b)
	rs := issueRuleset(b, 50000)
	run := func(b *testing.B) {
		b.Run("full", func(b *testing.B) {
			for b.Loop() {
				if err := backend.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("one-element", func(b *testing.B) {
			if err := backend.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
				b.Fatal(err)
			}
			set := rs.Sets[0]
			elem := []nft.Element{{Addr: netip.MustParseAddr("198.19.255.1")}}
			if set.Type == nft.KeyIPv6 {
				elem = []nft.Element{{Addr: netip.MustParseAddr("fd19::ff:1")}}
			}
			if set.Interval {
				elem[0].AddrEnd = elem[0].Addr
			}
			add := &nft.Transaction{Table: rs.Table, Ops: []nft.Op{nft.AddElements{Set: set.Name, Type: set.Type, Interval: set.Interval, Elements: elem}}}
			del := &nft.Transaction{Table: rs.Table, Ops: []nft.Op{nft.DeleteElements{Set: set.Name, Type: set.Type, Interval: set.Interval, Elements: elem}}}
			i := 0
			for b.Loop() {
				tx := add
				if i%2 == 1 {
					tx = del
				}
				i++
				if err := backend.Run(tx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("unwatched", run)
	b.Run("watched", func(b *testing.B) {
		w, err := backend.Watch(rs.Table)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		lost := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range w.Events() {
				if !ev.Lost {
					b.Errorf("our own commits reported as foreign: %+v", ev)
				}
				lost++
			}
		}()
		run(b)
		w.Close()
		<-done
		b.ReportMetric(float64(lost), "losses")
	})
}

// BenchmarkReadRuleset reads a committed table of the issue's cluster back from the kernel and raises
// it into the model, as explain does before each trace; the raised ruleset is checked against the
// lowering of itself, so this includes one lowering too.
func BenchmarkReadRuleset(b *testing.B) {
	backend := benchNamespace(b)
	for _, pods := range benchSizes {
		rs := issueRuleset(b, pods)
		if err := backend.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := backend.ReadRuleset(rs.Table); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExplainReads is what one `kubectl nftpolicy explain` and one metrics scrape read from the
// kernel, on the table of issue 5's measurement 1 (50000 pods, 10000 policies): the periodic
// resync's read-back of the same table (Check) is the baseline of the same run; ReadRuleset raises the
// table into the model, trace follows one packet through the raised ruleset as explain does, and
// counters is one scrape's dump of every counter.
func BenchmarkExplainReads(b *testing.B) {
	backend := benchNamespace(b)
	rs := issueRuleset(b, 50000)
	if err := backend.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
		b.Fatal(err)
	}
	b.Run("read-back", func(b *testing.B) {
		for b.Loop() {
			if diffs, err := backend.Check(rs); err != nil || diffs != nil {
				b.Fatalf("differences %q, error %v", diffs, err)
			}
		}
	})
	b.Run("read-ruleset", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := backend.ReadRuleset(rs.Table); err != nil {
				b.Fatal(err)
			}
		}
	})
	raised, err := backend.ReadRuleset(rs.Table)
	if err != nil {
		b.Fatal(err)
	}
	ifaces := nft.PodInterfaces(raised)
	var src netip.Addr
	for a := range ifaces {
		if a.Is4() {
			src = a
			break
		}
	}
	packet := nft.ForwardPacket(nft.Flow{Src: src, Dst: netip.MustParseAddr("203.0.113.7"), Proto: nft.ProtoTCP, DstPort: 443}, ifaces, "")
	b.Run("trace", func(b *testing.B) {
		for b.Loop() {
			if res := nft.NewTracer(raised).Explain(packet); len(res.Steps) == 0 {
				b.Fatal("an empty path")
			}
		}
	})
	b.Run(fmt.Sprintf("counters=%d", len(rs.Counters)), func(b *testing.B) {
		for b.Loop() {
			values, err := backend.Counters(rs.Table)
			if err != nil || len(values) != len(rs.Counters) {
				b.Fatalf("%d counters, error %v; want %d", len(values), err, len(rs.Counters))
			}
		}
	})
}

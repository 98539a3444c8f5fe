package packet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nftpolicy/nftpolicy/cmd/nftpolicy/agent"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel/nflog"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// logTableSuffix names the drop-logging twin of a table: A-10k-log.
const logTableSuffix = "-log"

// DropLogOptions are the drop log's settings of the logging table: the agent's flags of the same
// names.
type DropLogOptions struct {
	Group    uint16 `json:"group"`
	PairRate uint32 `json:"pairRate"`
	Rate     uint32 `json:"rate"`
}

// DefaultDropLogOptions are the agent's defaults.
func DefaultDropLogOptions() *DropLogOptions {
	return &DropLogOptions{Group: agent.DefaultDropLogGroup, PairRate: agent.DefaultDropLogPairRate, Rate: agent.DefaultDropLogRate}
}

// TableDropLog says how a table logs.
type TableDropLog struct {
	DropLogOptions
	// Namespaces are those of the lab pods, logged at level all as if annotated
	// `nftpolicy.io/log: all` while the agent runs with `--drop-log=namespace` (so the anti-spoofing
	// drops are not logged).
	Namespaces []string `json:"namespaces"`
	// Pods and AllPods count the local pods whose default denies, and whose allowed connections,
	// are logged: every isolated local pod of those namespaces.
	Pods    int `json:"pods"`
	AllPods int `json:"allPods"`
}

// LogCounts are what the NFLOG reader of a logging table read.
type LogCounts struct {
	Records uint64 `json:"records"`
	// Allowed and Denied split Records by drop point: the accept of a policy rule (level all) or a
	// pod's default deny; Other are records whose prefix is not a drop point.
	Allowed  uint64 `json:"allowed"`
	Denied   uint64 `json:"denied"`
	Other    uint64 `json:"other"`
	Overruns uint64 `json:"overruns"` // receive buffer overruns
	Lost     uint64 `json:"lost"`     // records the kernel numbered that never arrived
}

// columns are the counts in the order of the report's columns.
func (c LogCounts) columns() [6]uint64 {
	return [6]uint64{c.Records, c.Allowed, c.Denied, c.Other, c.Overruns, c.Lost}
}

// minus is c - before, counts since a snapshot.
func (c LogCounts) minus(before LogCounts) LogCounts {
	return LogCounts{
		Records: c.Records - before.Records, Allowed: c.Allowed - before.Allowed, Denied: c.Denied - before.Denied,
		Other: c.Other - before.Other, Overruns: c.Overruns - before.Overruns, Lost: c.Lost - before.Lost,
	}
}

// dropLogFor is the nft.DropLog the agent compiles when the namespaces are annotated
// `nftpolicy.io/log: all` and the node-wide level is off: every isolated local pod of those
// namespaces logs its default denies and the first packet of each allowed connection.
func dropLogFor(m *selectors.Model, o DropLogOptions, namespaces []string) (*nft.DropLog, TableDropLog) {
	dl := &nft.DropLog{Group: o.Group, PairRate: o.PairRate, Rate: o.Rate, Pods: map[string]bool{}, AllPods: map[string]bool{}}
	logged := map[string]bool{}
	for _, ns := range namespaces {
		logged[ns] = true
	}
	for _, p := range m.LocalPods {
		if logged[p.Namespace] && (p.Ingress != nil || p.Egress != nil) {
			dl.Pods[p.Key()], dl.AllPods[p.Key()] = true, true
		}
	}
	desc := TableDropLog{DropLogOptions: o, Namespaces: slices.Sorted(maps.Keys(logged)), Pods: len(dl.Pods), AllPods: len(dl.AllPods)}
	return dl, desc
}

// labNamespaces are the namespaces of the local pods with the lab pods' addresses.
func labNamespaces(m *selectors.Model, labIPs ...netip.Addr) []string {
	var out []string
	for _, p := range m.LocalPods {
		for _, ip := range p.IPs {
			if slices.Contains(labIPs, ip) && !slices.Contains(out, p.Namespace) {
				out = append(out, p.Namespace)
			}
		}
	}
	return out
}

// logReader drains a node's log group for the whole run, as the agent's drop logger does, and
// counts what it reads.
type logReader struct {
	src     nflog.Source
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // of Read, once done is closed
	records atomic.Uint64
	allowed atomic.Uint64
	denied  atomic.Uint64
	other   atomic.Uint64
	closeMu sync.Once
}

// openLogReader binds the log group in the network namespace at nodePath with the agent's reader
// options and starts reading.
func openLogReader(nodePath string, group uint16) (*logReader, error) {
	src, err := nflog.Open(nodePath, group, nflog.Options{})
	if err != nil {
		return nil, fmt.Errorf("binding NFLOG group %d: %w", group, err)
	}
	return startLogReader(src), nil
}

// startLogReader reads src until close.
func startLogReader(src nflog.Source) *logReader {
	ctx, cancel := context.WithCancel(context.Background())
	l := &logReader{src: src, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.err = src.Read(ctx, l.count)
	}()
	return l
}

// count sorts one record by the drop point its prefix names.
func (l *logReader) count(r nflog.Record) {
	l.records.Add(1)
	point, ok := nft.ParseLogPrefix(r.Prefix)
	switch {
	case ok && point.Counter != "":
		l.allowed.Add(1)
	case ok && point.Chain != "":
		l.denied.Add(1)
	default:
		l.other.Add(1)
	}
}

// counts are the totals so far.
func (l *logReader) counts() LogCounts {
	return LogCounts{
		Records: l.records.Load(), Allowed: l.allowed.Load(), Denied: l.denied.Load(), Other: l.other.Load(),
		Overruns: l.src.Overruns(), Lost: l.src.Lost(),
	}
}

// close stops reading and unbinds the group; it returns the error that ended Read, if any other
// than being stopped.
func (l *logReader) close() error {
	var err error
	l.closeMu.Do(func() {
		err = l.src.Close()
		<-l.done
		l.cancel()
		if l.err != nil && !errors.Is(l.err, context.Canceled) {
			err = errors.Join(err, fmt.Errorf("reading the log group: %w", l.err))
		}
	})
	return err
}

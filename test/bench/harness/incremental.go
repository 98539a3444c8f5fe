package harness

import (
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/baselines"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// EventStep is what nftpolicy does about one event, without the kernel: the description of the
// event, the new ruleset and the transaction that gets there from the committed one.
type EventStep struct {
	Event
	Model   *selectors.Model
	Ruleset *nft.Ruleset
	Changed nft.Changes // what Ruleset changed since the Compiler's previous one: Apply it with this
	Tx      *nft.Transaction
}

// Pipeline is nftpolicy's incremental path as the agent runs it: a selectors.Resolver that follows
// the cluster object by object, and an nft.Compiler that lowers only what changed since its last call.
type Pipeline struct {
	Resolver *selectors.Resolver
	Compiler nft.Compiler
}

// NewPipeline loads a snapshot into a new resolver, as the agent does from its cache on start.
func NewPipeline(s *selectors.Snapshot) *Pipeline {
	res := selectors.NewResolver(s.Node)
	res.Load(s)
	return &Pipeline{Resolver: res}
}

// Compile compiles the resolver's current model in full (a new Compiler): apply the ruleset with
// nft.FullChanges.
func (pl *Pipeline) Compile() (*selectors.Model, *nft.Ruleset) {
	m, _ := pl.Resolver.Model()
	pl.Compiler = nft.Compiler{}
	rs, _ := pl.Compiler.Compile(nft.CompileInput{Table: Table, Model: m, Changes: selectors.FullChanges(), Interfaces: Interfaces(m)})
	return m, rs
}

// follow hands the cluster's last change to the resolver, as the agent hands it the object an event
// named.
func (pl *Pipeline) follow(ch generator.Change) {
	switch {
	case ch.Pod != nil:
		pl.Resolver.SetPod(*ch.Pod)
	case ch.DeletedPod != nil:
		pl.Resolver.DeletePod(ch.DeletedPod.Namespace, ch.DeletedPod.Name)
	case ch.Namespace != nil:
		pl.Resolver.SetNamespace(*ch.Namespace)
	case ch.Policy != nil:
		pl.Resolver.SetPolicy(ch.Policy)
	}
}

// Next applies one event of kind to the cluster and computes nftpolicy's response to it against
// committed, timing each step: the resolver's update and model, the compile, and (separately) the diff.
func (pl *Pipeline) Next(c *generator.Cluster, kind generator.EventKind, committed *nft.Ruleset) (EventStep, error) {
	desc, err := c.Apply(kind)
	if err != nil {
		return EventStep{}, err
	}
	ev := Event{Kind: kind, Description: desc}
	start := time.Now()
	pl.follow(c.Last)
	m, changes := pl.Resolver.Model()
	ev.ResolveMS = ms(time.Since(start))
	start = time.Now()
	rs, changed := pl.Compiler.Compile(nft.CompileInput{Table: Table, Model: m, Changes: changes, Interfaces: Interfaces(m)})
	ev.CompileMS = ms(time.Since(start))
	TargetPeers(c, m)
	start = time.Now()
	tx := nft.Diff(committed, rs, changed)
	ev.DiffMS = ms(time.Since(start))
	describeTx(&ev, tx)
	return EventStep{Event: ev, Model: m, Ruleset: rs, Changed: changed, Tx: tx}, nil
}

// CheckModel fails when the resolver's model is not what a full resolve of the cluster gives: the
// incremental figures are only worth something if the incremental path computes the same thing.
func (pl *Pipeline) CheckModel(c *generator.Cluster) error {
	got, _ := pl.Resolver.Model()
	if want := selectors.Resolve(c.Snapshot); !reflect.DeepEqual(got, want) {
		return fmt.Errorf("the incremental resolver's model differs from a full resolve of the same cluster")
	}
	return nil
}

// TargetPeers makes the cluster's events change pods that are peers of the node under test (members
// of an address set of m): the changes that reach the node's table. A random pod of a large cluster
// is usually in no peer set of one node, and its changes cost that node nothing.
func TargetPeers(c *generator.Cluster, m *selectors.Model) {
	peers := map[netip.Addr]bool{}
	for _, s := range m.AddressSets {
		for _, r := range s.Ranges {
			if r.From == r.To {
				peers[r.From] = true
			}
		}
	}
	c.Target = func(p *selectors.Pod) bool { return len(p.IPs) > 0 && peers[p.IPs[0]] }
}

// describeTx counts what a transaction sends.
func describeTx(ev *Event, tx *nft.Transaction) {
	ev.Ops = len(tx.Ops)
	touched := map[string]bool{}
	deletedSets, addedSets := map[string]bool{}, map[string]bool{}
	for _, op := range tx.Ops {
		switch o := op.(type) {
		case nft.DeleteTable:
			ev.FullReplace = true
		case nft.AddElements:
			ev.Elements += len(o.Elements)
			touched[o.Set] = true
		case nft.DeleteElements:
			ev.Elements += len(o.Elements)
			touched[o.Set] = true
			ev.Deletes = true
		case nft.AddMapElements:
			ev.Elements += len(o.Elements)
			touched[o.Map] = true
		case nft.DeleteMapElements:
			ev.Elements += len(o.Elements)
			touched[o.Map] = true
			ev.Deletes = true
		case nft.AddRule:
			ev.Rules++
		case nft.FlushChain, nft.DeleteChain, nft.DeleteMap:
			ev.Deletes = true
		case nft.DeleteSet:
			ev.Deletes = true
			deletedSets[o.Name] = true
		case nft.AddSet:
			addedSets[o.Set.Name] = true
		}
	}
	for name := range deletedSets {
		if addedSets[name] {
			ev.ResizedSets++
		}
	}
	ev.SetsTouched = len(touched)
	ev.TextBytes = len(tx.String())
}

// MeasureIncremental is measurement 2: rounds of one event of every kind, each resolved, compiled
// and applied by nftpolicy to a node namespace programmed with the cluster; baseline C re-syncs in
// full for the events of the first baselineRounds rounds, in its own namespace.
func MeasureIncremental(params generator.Params, rounds, baselineRounds int, restore string) (*Incremental, error) {
	c, err := generator.Generate(params)
	if err != nil {
		return nil, err
	}
	inc := &Incremental{}
	err = withNode(func(nodeA *netlab.Node) error {
		return withNode(func(nodeC *netlab.Node) error {
			backend, err := kernel.NewNetlinkBackend(nodeA.Path)
			if err != nil {
				return err
			}
			defer backend.Close()
			applier := nft.NewApplier(backend)
			pl := NewPipeline(c.Snapshot)
			m, rs := pl.Compile()
			TargetPeers(c, m)
			if _, err := applier.Apply(rs, nft.FullChanges()); err != nil {
				return fmt.Errorf("programming the initial table: %w", err)
			}
			syncer := &baselines.IPTablesSyncer{Netns: nodeC.Name, Restore: restore}
			if err := syncC(syncer, m, nil); err != nil {
				return fmt.Errorf("programming baseline C's initial state: %w", err)
			}
			for round := range rounds {
				for _, kind := range generator.EventKinds {
					step, err := pl.Next(c, kind, applier.Committed())
					if err != nil {
						return err
					}
					runtime.GC() // see Event: the figure is the commit, not the collection of the resolve's garbage
					start := time.Now()
					if _, err := applier.Apply(step.Ruleset, step.Changed); err != nil {
						return fmt.Errorf("applying %s: %w", step.Description, err)
					}
					step.ApplyMS = ms(time.Since(start))
					step.EventMS = step.ResolveMS + step.CompileMS + step.ApplyMS
					if round < baselineRounds {
						if err := syncC(syncer, step.Model, &step.Event); err != nil {
							return fmt.Errorf("baseline C after %s: %w", step.Description, err)
						}
					}
					inc.Events = append(inc.Events, step.Event)
				}
			}
			return pl.CheckModel(c)
		})
	})
	return inc, err
}

func syncC(syncer *baselines.IPTablesSyncer, m *selectors.Model, ev *Event) error {
	layout, err := baselines.IPTablesLayout(m)
	if err != nil {
		return err
	}
	res, err := syncer.Sync(layout)
	if err != nil {
		return err
	}
	if ev != nil {
		d := ms(res.Duration)
		ev.CSyncMS, ev.CBytes = &d, res.Bytes()
	}
	return nil
}

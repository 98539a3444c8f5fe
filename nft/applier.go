package nft

import (
	"fmt"
	"strings"
	"sync"
)

// Applier programs desired rulesets through a Backend, sending only what changed since the last
// commit. It keeps the committed ruleset in memory and never reads the kernel back on the hot path.
//
// After a failed transaction, or on the first Apply of a process, the kernel's state is unknown: the
// next transaction replaces the whole table (add, delete, re-create, fill) in one batch, which takes
// over a table left by a previous run without any window where an isolated pod is open.
type Applier struct {
	mu        sync.Mutex
	backend   Backend
	committed *Ruleset
}

// ApplyResult describes one Apply.
type ApplyResult struct {
	FullReplace bool // the whole table was replaced
	Ops         int  // operations sent
	Elements    int  // set and map elements added or deleted
	Rules       int  // rules added
	// OnlyWidens is true when the transaction did nothing but add addresses to peer and service sets:
	// every packet allowed before is still allowed, so no tracked connection can have become denied.
	OnlyWidens bool
}

// Unchanged reports whether nothing had to be sent.
func (r ApplyResult) Unchanged() bool { return r.Ops == 0 }

// NewApplier returns an applier that knows nothing of the kernel's state yet.
func NewApplier(b Backend) *Applier {
	return &Applier{backend: b}
}

// Apply makes the table equal to desired in one transaction. changed names what may differ between
// desired and the ruleset of the last Apply (the Changes a Compiler returned with desired); after a
// failure, or on the first Apply, the whole table is replaced whatever it says.
func (a *Applier) Apply(desired *Ruleset, changed Changes) (ApplyResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	tx := Diff(a.committed, desired, changed)
	res := summarize(tx)
	if res.Ops == 0 {
		a.committed = desired
		return res, nil
	}
	if err := a.backend.Run(tx); err != nil {
		a.committed = nil
		return res, fmt.Errorf("applying %d operations to table %s: %w", res.Ops, desired.Table, err)
	}
	a.committed = desired
	return res, nil
}

// Committed returns the ruleset of the last successful Apply, or nil when the kernel's state is unknown.
// Rulesets are never modified once compiled: callers must not modify it either.
func (a *Applier) Committed() *Ruleset {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.committed
}

// Verify reads the table back and compares it with the ruleset of the last successful Apply. It
// returns the differences, nil when the kernel holds what was committed or nothing was committed
// yet. After a difference or an error the kernel's state is unknown: the next Apply replaces the
// whole table.
func (a *Applier) Verify() ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.committed == nil {
		return nil, nil
	}
	diffs, err := a.backend.Check(a.committed)
	if err != nil {
		table := a.committed.Table
		a.committed = nil
		return nil, fmt.Errorf("reading table %s back: %w", table, err)
	}
	if len(diffs) > 0 {
		a.committed = nil
	}
	return diffs, nil
}

// Forget makes the next Apply replace the whole table, e.g. after another writer touched it.
func (a *Applier) Forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.committed = nil
}

// RemoveTable deletes our table, if it exists, in one transaction.
func RemoveTable(b Backend, table string) error {
	tx := &Transaction{Table: table, Ops: []Op{AddTable{}, DeleteTable{}}}
	if err := b.Run(tx); err != nil {
		return fmt.Errorf("removing table %s: %w", table, err)
	}
	return nil
}

func summarize(tx *Transaction) ApplyResult {
	res := ApplyResult{Ops: len(tx.Ops), OnlyWidens: true}
	for _, op := range tx.Ops {
		if add, ok := op.(AddElements); !ok || !strings.HasPrefix(add.Set, peerSetPrefix) && !strings.HasPrefix(add.Set, serviceSetPrefix) {
			res.OnlyWidens = false
		}
		switch o := op.(type) {
		case DeleteTable:
			res.FullReplace = true
		case AddElements:
			res.Elements += len(o.Elements)
		case DeleteElements:
			res.Elements += len(o.Elements)
		case AddMapElements:
			res.Elements += len(o.Elements)
		case DeleteMapElements:
			res.Elements += len(o.Elements)
		case AddRule:
			res.Rules++
		}
	}
	return res
}

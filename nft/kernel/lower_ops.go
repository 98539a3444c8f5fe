package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// batchSink is what a lowering queues operations on: the backend's nftables.Conn, or a tableImage
// recorder that builds the table a full replacement describes, to compare with the kernel's.
type batchSink interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddSet(*nftables.Set, []nftables.SetElement) error
	DelSet(*nftables.Set)
	SetAddElements(*nftables.Set, []nftables.SetElement) error
	SetDeleteElements(*nftables.Set, []nftables.SetElement) error
	AddChain(*nftables.Chain) *nftables.Chain
	FlushChain(*nftables.Chain)
	DelChain(*nftables.Chain)
	AddRule(*nftables.Rule) *nftables.Rule
	AddObj(nftables.Obj) nftables.Obj
	DeleteObject(nftables.Obj)
}

// lowering queues the operations of one transaction on one batchSink.
//
// Sets created earlier in the same batch are referenced by name and batch ID (the kernel resolves the
// ID when the name is not visible yet); sets that already exist in the kernel are referenced by name
// alone. Chains are always referenced by name.
type lowering struct {
	conn      batchSink
	table     *nftables.Table
	setIDs    map[string]uint32 // named sets and maps created in this batch
	nextID    uint32
	anonymous *anonymousSetNames
	batch     elementBatch // reused by every element message
}

func newLowering(conn batchSink, table string, anonymous *anonymousSetNames) *lowering {
	return &lowering{
		conn:      conn,
		table:     &nftables.Table{Name: table, Family: nftables.TableFamilyINet},
		setIDs:    map[string]uint32{},
		anonymous: anonymous,
		batch:     elementBatch{conn: conn},
	}
}

func (l *lowering) allocID() uint32 {
	l.nextID++
	return l.nextID
}

// transaction queues every operation of tx, in order but for one exception: the elements of a set
// created in this batch are queued after everything else, or before the next deletion. When a rule
// binds an anonymous set (a full replacement at 50k cluster pods has ~300), the kernel walks every
// operation queued so far, and the element operations of a full replacement would be a third of
// them. The order does not change
// the outcome: the kernel applies the batch as a whole, and a set exists, empty, from its AddSet on.
func (l *lowering) transaction(tx *nft.Transaction) error {
	var deferred []int // indexes of the AddElements held back
	queueDeferred := func() error {
		for _, i := range deferred {
			if err := l.op(tx.Ops[i]); err != nil {
				return opError(tx, i, err)
			}
		}
		deferred = deferred[:0]
		return nil
	}
	for i, op := range tx.Ops {
		switch o := op.(type) {
		case nft.AddElements:
			if _, created := l.setIDs[o.Set]; created {
				deferred = append(deferred, i)
				continue
			}
		case nft.DeleteTable, nft.DeleteCounter, nft.DeleteSet, nft.DeleteElements, nft.DeleteMap, nft.DeleteMapElements, nft.DeleteChain:
			if err := queueDeferred(); err != nil {
				return err
			}
		}
		if err := l.op(op); err != nil {
			return opError(tx, i, err)
		}
	}
	return queueDeferred()
}

func opError(tx *nft.Transaction, i int, err error) error {
	return fmt.Errorf("lowering operation %d (%s): %w", i, nft.RenderOp(tx.Table, tx.Ops[i]), err)
}

func (l *lowering) op(op nft.Op) error {
	switch o := op.(type) {
	case nft.AddTable:
		l.conn.AddTable(l.table)
	case nft.DeleteTable:
		l.conn.DelTable(l.table)
		clear(l.setIDs)
	case nft.AddCounter:
		// add counter inet T NAME
		l.conn.AddObj(&nftables.CounterObj{Table: l.table, Name: o.Counter.Name})
	case nft.DeleteCounter:
		l.conn.DeleteObject(l.counterRef(o.Name))
	case nft.AddSet:
		return l.addSet(o.Set)
	case nft.DeleteSet:
		l.conn.DelSet(l.setRef(o.Name, false))
		delete(l.setIDs, o.Name)
	case nft.AddElements:
		return l.elements(o.Set, o.Type, o.Interval, o.Elements, true)
	case nft.DeleteElements:
		return l.elements(o.Set, o.Type, o.Interval, o.Elements, false)
	case nft.AddMap:
		return l.addMap(o.Map)
	case nft.DeleteMap:
		l.conn.DelSet(l.setRef(o.Name, true))
		delete(l.setIDs, o.Name)
	case nft.AddMapElements:
		return l.mapElements(o.Map, o.Type, o.Elements, true)
	case nft.DeleteMapElements:
		return l.mapElements(o.Map, o.Type, o.Elements, false)
	case nft.AddChain:
		return l.addChain(o.Chain)
	case nft.FlushChain:
		l.conn.FlushChain(l.chainRef(o.Name))
	case nft.DeleteChain:
		l.conn.DelChain(l.chainRef(o.Name))
	case nft.AddRule:
		return l.addRule(o.Chain, o.Rule)
	default:
		return fmt.Errorf("unknown operation %T", op)
	}
	return nil
}

// setRef names a set or map; its ID is known when this batch created it.
func (l *lowering) setRef(name string, isMap bool) *nftables.Set {
	return &nftables.Set{Table: l.table, Name: name, ID: l.setIDs[name], IsMap: isMap}
}

func (l *lowering) counterRef(name string) *nftables.NamedObj {
	return &nftables.NamedObj{Table: l.table, Name: name, Type: nftables.ObjTypeCounter}
}

func (l *lowering) chainRef(name string) *nftables.Chain {
	return &nftables.Chain{Table: l.table, Name: name}
}

// setKeyTypes maps our key types to nft's datatypes. Concatenations are padded to 4-byte registers
// by nftables.ConcatSetType, as nft does.
var setKeyTypes = map[nft.KeyType]nftables.SetDatatype{
	nft.KeyIPv4:          nftables.TypeIPAddr,
	nft.KeyIPv6:          nftables.TypeIP6Addr,
	nft.KeyIfname:        nftables.TypeIFName,
	nft.KeyIfnameIPv4:    nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr),
	nft.KeyIfnameIPv6:    nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr),
	nft.KeyIPv4ProtoPort: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
	nft.KeyIPv6ProtoPort: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService),
	nft.KeyPort:          nftables.TypeInetService,
	nft.KeyIPv4Pair:      nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr),
	nft.KeyIPv6Pair:      nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIP6Addr),
}

func isConcat(t nft.KeyType) bool {
	switch t {
	case nft.KeyIfnameIPv4, nft.KeyIfnameIPv6, nft.KeyIPv4ProtoPort, nft.KeyIPv6ProtoPort, nft.KeyIPv4Pair, nft.KeyIPv6Pair:
		return true
	}
	return false
}

// addSet: `add set inet T NAME { type TYPE; [size N;] [flags interval;] [flags dynamic,timeout; timeout T;]
// [comment "..."]; }`.
func (l *lowering) addSet(s nft.Set) error {
	kt, ok := setKeyTypes[s.Type]
	if !ok {
		return fmt.Errorf("set %s: unknown key type %q", s.Name, s.Type)
	}
	set := &nftables.Set{
		Table:         l.table,
		ID:            l.allocID(),
		Name:          s.Name,
		Interval:      s.Interval,
		Concatenation: isConcat(s.Type),
		KeyType:       kt,
		Size:          s.Size,
		Comment:       s.Comment,
		// A dynamic set is filled by the rules' `update @set` statements; its elements expire.
		Dynamic:    s.Dynamic,
		HasTimeout: s.Dynamic,
		Timeout:    s.Timeout,
	}
	if s.Dynamic && s.Timeout <= 0 {
		return fmt.Errorf("set %s: a dynamic set needs a timeout", s.Name)
	}
	switch s.Type {
	case nft.KeyIPv4, nft.KeyIPv6, nft.KeyPort:
		// Addresses and ports are in network byte order; nft records that in the set's user data too.
		set.KeyByteOrder = binaryutil.BigEndian
	case nft.KeyIfname:
		// Without "host byte order" in the set's user data, nft lists names as "".
		set.KeyByteOrder = binaryutil.NativeEndian
	}
	if err := l.conn.AddSet(set, nil); err != nil {
		return fmt.Errorf("adding set %s: %w", s.Name, err)
	}
	l.setIDs[s.Name] = set.ID
	return nil
}

// addMap: `add map inet T NAME { type ipvX_addr : verdict; [comment "..."]; }`.
func (l *lowering) addMap(m nft.Map) error {
	kt, ok := setKeyTypes[m.Type]
	if !ok || (m.Type != nft.KeyIPv4 && m.Type != nft.KeyIPv6) {
		return fmt.Errorf("map %s: unsupported key type %q", m.Name, m.Type)
	}
	set := &nftables.Set{
		Table:        l.table,
		ID:           l.allocID(),
		Name:         m.Name,
		IsMap:        true,
		KeyType:      kt,
		DataType:     nftables.TypeVerdict,
		KeyByteOrder: binaryutil.BigEndian,
		Comment:      m.Comment,
	}
	if err := l.conn.AddSet(set, nil); err != nil {
		return fmt.Errorf("adding map %s: %w", m.Name, err)
	}
	l.setIDs[m.Name] = set.ID
	return nil
}

// elements: `add element inet T NAME { ... }` or `delete element ...`. Interval sets carry each range
// as a start element and an end element, so deleting a range deletes both.
func (l *lowering) elements(name string, t nft.KeyType, interval bool, elems []nft.Element, add bool) error {
	b := &l.batch
	if err := b.begin(l.setRef(name, false), t, add); err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	for _, e := range elems {
		if err := b.pushSetElement(t, interval, e); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return b.flush()
}

// mapElements: `add element inet T NAME { ADDR : goto CHAIN, ... }` or `delete element ... { ADDR }`.
func (l *lowering) mapElements(name string, t nft.KeyType, elems []nft.MapElement, add bool) error {
	b := &l.batch
	if err := b.begin(l.setRef(name, true), t, add); err != nil {
		return fmt.Errorf("map %s: %w", name, err)
	}
	for _, e := range elems {
		var v *expr.Verdict
		if add {
			var err error
			if v, err = lowerVerdict(e.Verdict); err != nil {
				return fmt.Errorf("map %s element %s: %w", name, e.Key, err)
			}
		}
		if err := b.pushMapElement(t, e.Key, v); err != nil {
			return fmt.Errorf("map %s: %w", name, err)
		}
	}
	return b.flush()
}

// addChain: `add chain inet T NAME [{ type filter hook HOOK priority filter + N; policy accept; }]`.
func (l *lowering) addChain(c nft.Chain) error {
	ch := l.chainRef(c.Name)
	if c.Base != nil {
		hook, ok := chainHooks[c.Base.Hook]
		if !ok {
			return fmt.Errorf("chain %s: unknown hook %q", c.Name, c.Base.Hook)
		}
		ch.Type = nftables.ChainTypeFilter
		ch.Hooknum = hook
		ch.Priority = nftables.ChainPriorityRef(*nftables.ChainPriorityFilter + nftables.ChainPriority(c.Base.Priority))
		policy := nftables.ChainPolicyAccept
		ch.Policy = &policy
	}
	l.conn.AddChain(ch)
	return nil
}

var chainHooks = map[nft.Hook]*nftables.ChainHook{
	nft.HookPrerouting:  nftables.ChainHookPrerouting,
	nft.HookInput:       nftables.ChainHookInput,
	nft.HookForward:     nftables.ChainHookForward,
	nft.HookOutput:      nftables.ChainHookOutput,
	nft.HookPostrouting: nftables.ChainHookPostrouting,
}

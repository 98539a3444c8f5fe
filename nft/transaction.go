package nft

import (
	"fmt"
	"strings"
)

// Op is one operation of a transaction. Like Match, the set of kinds is closed.
type Op interface{ isOp() }

// Transaction is plain data: the operations the kernel applies all-or-nothing, in order.
type Transaction struct {
	Table string
	Ops   []Op
}

// AddTable creates our table if it does not exist (`add table inet T`).
type AddTable struct{}

// DeleteTable deletes our table and everything in it (`delete table inet T`).
type DeleteTable struct{}

// AddCounter creates a named counter object (`add counter inet T NAME`), its values zero.
type AddCounter struct{ Counter Counter }

// DeleteCounter deletes a named counter; no rule may refer to it any more.
type DeleteCounter struct{ Name string }

// AddSet creates a set without elements.
type AddSet struct{ Set Set }

// DeleteSet deletes a set; no rule may refer to it any more.
type DeleteSet struct{ Name string }

// AddElements adds elements to a set.
type AddElements struct {
	Set      string
	Type     KeyType
	Interval bool
	Elements []Element
}

// DeleteElements deletes elements from a set.
type DeleteElements struct {
	Set      string
	Type     KeyType
	Interval bool
	Elements []Element
}

// AddMap creates a verdict map without elements.
type AddMap struct{ Map Map }

// DeleteMap deletes a verdict map.
type DeleteMap struct{ Name string }

// AddMapElements adds elements to a verdict map.
type AddMapElements struct {
	Map      string
	Type     KeyType
	Elements []MapElement
}

// DeleteMapElements deletes elements (by key) from a verdict map.
type DeleteMapElements struct {
	Map      string
	Type     KeyType
	Elements []MapElement
}

// AddChain creates a chain without rules.
type AddChain struct{ Chain Chain }

// FlushChain deletes every rule of a chain.
type FlushChain struct{ Name string }

// DeleteChain deletes an empty chain that nothing jumps to.
type DeleteChain struct{ Name string }

// AddRule appends a rule to a chain.
type AddRule struct {
	Chain string
	Rule  Rule
}

func (AddTable) isOp()          {}
func (DeleteTable) isOp()       {}
func (AddCounter) isOp()        {}
func (DeleteCounter) isOp()     {}
func (AddSet) isOp()            {}
func (DeleteSet) isOp()         {}
func (AddElements) isOp()       {}
func (DeleteElements) isOp()    {}
func (AddMap) isOp()            {}
func (DeleteMap) isOp()         {}
func (AddMapElements) isOp()    {}
func (DeleteMapElements) isOp() {}
func (AddChain) isOp()          {}
func (FlushChain) isOp()        {}
func (DeleteChain) isOp()       {}
func (AddRule) isOp()           {}

// Backend runs a transaction atomically: either every operation takes effect or none does. Check
// reads the table back and lists how it differs from rs (nil: it holds exactly rs), so that a change
// made by another writer can be found and repaired.
type Backend interface {
	Run(tx *Transaction) error
	Check(rs *Ruleset) ([]string, error)
}

// String renders the transaction as an nft script, for logs and tests.
func (tx *Transaction) String() string {
	var b strings.Builder
	for _, op := range tx.Ops {
		b.WriteString(RenderOp(tx.Table, op))
		b.WriteByte('\n')
	}
	return b.String()
}

// RenderOp renders one operation of a transaction on table as an nft command.
func RenderOp(table string, op Op) string {
	t := "inet " + table
	switch o := op.(type) {
	case AddTable:
		return "add table " + t
	case DeleteTable:
		return "delete table " + t
	case AddCounter:
		return fmt.Sprintf("add counter %s %s", t, o.Counter.Name)
	case DeleteCounter:
		return fmt.Sprintf("delete counter %s %s", t, o.Name)
	case AddSet:
		return fmt.Sprintf("add set %s %s { %s}", t, o.Set.Name, setHeaderInline(o.Set))
	case DeleteSet:
		return fmt.Sprintf("delete set %s %s", t, o.Name)
	case AddElements:
		return fmt.Sprintf("add element %s %s { %s }", t, o.Set, renderElements(o.Type, o.Interval, o.Elements))
	case DeleteElements:
		return fmt.Sprintf("delete element %s %s { %s }", t, o.Set, renderElements(o.Type, o.Interval, o.Elements))
	case AddMap:
		return fmt.Sprintf("add map %s %s { type %s : verdict; }", t, o.Map.Name, o.Map.Type)
	case DeleteMap:
		return fmt.Sprintf("delete map %s %s", t, o.Name)
	case AddMapElements:
		return fmt.Sprintf("add element %s %s { %s }", t, o.Map, renderMapElements(o.Elements))
	case DeleteMapElements:
		keys := make([]string, len(o.Elements))
		for i, e := range o.Elements {
			keys[i] = e.Key.String()
		}
		return fmt.Sprintf("delete element %s %s { %s }", t, o.Map, strings.Join(keys, ", "))
	case AddChain:
		if o.Chain.Base != nil {
			return fmt.Sprintf("add chain %s %s { %s }", t, o.Chain.Name, baseChainSpec(o.Chain.Base))
		}
		return fmt.Sprintf("add chain %s %s", t, o.Chain.Name)
	case FlushChain:
		return fmt.Sprintf("flush chain %s %s", t, o.Name)
	case DeleteChain:
		return fmt.Sprintf("delete chain %s %s", t, o.Name)
	case AddRule:
		return fmt.Sprintf("add rule %s %s %s", t, o.Chain, RenderRule(o.Rule))
	default:
		panic(fmt.Sprintf("nft: unknown operation %T", op))
	}
}

package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// maxDifferences bounds the differences Check lists: one is enough to repair, a few help a reader.
const maxDifferences = 10

// Check reads our table back from the kernel and lists how it differs from rs, the ruleset last
// committed: nil when the kernel holds exactly rs. Both sides are brought to one comparable form, a
// tableImage: the expected side by lowering a full replacement of rs into a recorder instead of a
// connection, the kernel's side from netlink dumps of the table's chains, rules, sets and elements.
func (b *NetlinkBackend) Check(rs *nft.Ruleset) ([]string, error) {
	want, err := imageOf(rs)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.connection()
	if err != nil {
		return nil, err
	}
	got, err := readImage(conn, rs.Table)
	if err != nil {
		b.dropConn()
		return nil, fmt.Errorf("reading table inet %s back: %w", rs.Table, err)
	}
	return got.differences(want), nil
}

// tableImage is a table in a form both sides can produce and compare: definitions and elements as
// strings, rules as their marshalled expressions, and anonymous sets (whose names differ between
// lowerings) replaced in lookups by their content.
type tableImage struct {
	exists   bool
	counters map[string]bool      // named counters; their values are the kernel's, never compared
	sets     map[string]*setImage // named sets and maps
	anon     map[string]*setImage // anonymous sets, by name
	chains   map[string]*chainImage
	order    []string // chains in creation order, for rules queued before their chain is known
}

type setImage struct {
	def   string
	elems []string
}

type chainImage struct {
	def   string
	rules []*nftables.Rule
}

func newTableImage() *tableImage {
	return &tableImage{counters: map[string]bool{}, sets: map[string]*setImage{}, anon: map[string]*setImage{}, chains: map[string]*chainImage{}}
}

// imageOf lowers a full replacement of rs into a recorder.
func imageOf(rs *nft.Ruleset) (*tableImage, error) {
	img := newTableImage()
	tx := nft.Diff(nil, rs, nft.Changes{})
	if err := newLowering(img, rs.Table, newAnonymousSetNames()).transaction(tx); err != nil {
		return nil, fmt.Errorf("lowering table inet %s for comparison: %w", rs.Table, err)
	}
	return img, nil
}

// The recorder side of batchSink: a full replacement only adds, after deleting the table.

func (t *tableImage) AddTable(tb *nftables.Table) *nftables.Table { t.exists = true; return tb }

func (t *tableImage) DelTable(*nftables.Table) {
	*t = *newTableImage()
}

func (t *tableImage) AddObj(o nftables.Obj) nftables.Obj {
	if name, ok := counterName(o); ok {
		t.counters[name] = true
	}
	return o
}

func (t *tableImage) DeleteObject(o nftables.Obj) {
	if name, ok := counterName(o); ok {
		delete(t.counters, name)
	}
}

// counterName is the name of a counter object, whichever type google/nftables gives it.
func counterName(o nftables.Obj) (string, bool) {
	switch c := o.(type) {
	case *nftables.CounterObj:
		return c.Name, true
	case *nftables.NamedObj:
		return c.Name, c.Type == nftables.ObjTypeCounter
	}
	return "", false
}

func (t *tableImage) AddSet(s *nftables.Set, elems []nftables.SetElement) error {
	img := &setImage{def: setDef(s)}
	if s.Anonymous {
		t.anon[s.Name] = img
	} else {
		t.sets[s.Name] = img
	}
	if s.Dynamic {
		// The rules fill a dynamic set as packets pass: its elements are the kernel's, not ours.
		return nil
	}
	for _, e := range elems {
		img.elems = append(img.elems, elementString(e))
	}
	return nil
}

func (t *tableImage) DelSet(s *nftables.Set) { delete(t.sets, s.Name) }

func (t *tableImage) SetAddElements(s *nftables.Set, elems []nftables.SetElement) error {
	img, ok := t.sets[s.Name]
	if !ok {
		return fmt.Errorf("elements of unknown set %s", s.Name)
	}
	for _, e := range elems {
		img.elems = append(img.elems, elementString(e))
	}
	return nil
}

func (t *tableImage) SetDeleteElements(s *nftables.Set, _ []nftables.SetElement) error {
	return fmt.Errorf("a full replacement deletes no elements (set %s)", s.Name)
}

func (t *tableImage) AddChain(c *nftables.Chain) *nftables.Chain {
	t.chains[c.Name] = &chainImage{def: chainDef(c)}
	t.order = append(t.order, c.Name)
	return c
}

func (t *tableImage) FlushChain(c *nftables.Chain) {
	if ch, ok := t.chains[c.Name]; ok {
		ch.rules = nil
	}
}

func (t *tableImage) DelChain(c *nftables.Chain) { delete(t.chains, c.Name) }

func (t *tableImage) AddRule(r *nftables.Rule) *nftables.Rule {
	if ch, ok := t.chains[r.Chain.Name]; ok {
		ch.rules = append(ch.rules, r)
	}
	return r
}

// readImage dumps table from the kernel.
func readImage(conn *nftables.Conn, table string) (*tableImage, error) {
	d, err := dumpTable(conn, table)
	if err != nil {
		return nil, err
	}
	return d.image()
}

// tableDump is the table as the kernel lists it: sets (anonymous ones included) with their elements,
// map elements with their verdicts decoded, and chains in the kernel's order with their rules.
type tableDump struct {
	table  *nftables.Table // nil when the table does not exist
	objs   []nftables.Obj  // named objects: our counters
	sets   []*nftables.Set
	elems  map[string][]nftables.SetElement // by set name
	chains []*nftables.Chain
	rules  map[string][]*nftables.Rule // by chain name
}

// dumpTable lists table's sets, elements, chains and rules.
func dumpTable(conn *nftables.Conn, table string) (*tableDump, error) {
	d := &tableDump{elems: map[string][]nftables.SetElement{}, rules: map[string][]*nftables.Rule{}}
	tb, err := conn.ListTableOfFamily(table, nftables.TableFamilyINet)
	if errors.Is(err, os.ErrNotExist) || (err != nil && strings.Contains(err.Error(), "no such file or directory")) {
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	d.table = tb
	if d.objs, err = conn.GetNamedObjects(tb); err != nil {
		return nil, fmt.Errorf("listing objects: %w", err)
	}
	if d.sets, err = conn.GetSets(tb); err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	for _, s := range d.sets {
		if s.IsMap {
			// Our maps are verdict maps; google/nftables decodes their data type as their key type
			// and would not decode the verdicts of their elements without this.
			s.DataType = nftables.TypeVerdict
		}
		elems, err := conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("listing elements of set %s: %w", s.Name, err)
		}
		if s.IsMap {
			for i := range elems {
				if elems[i].VerdictData, err = verdictOf(elems[i].Val); err != nil {
					return nil, fmt.Errorf("element of map %s: %w", s.Name, err)
				}
			}
		}
		d.elems[s.Name] = elems
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	for _, c := range chains {
		if c.Table.Name != table {
			continue
		}
		d.chains = append(d.chains, c)
		if d.rules[c.Name], err = conn.GetRules(tb, c); err != nil {
			return nil, fmt.Errorf("listing rules of chain %s: %w", c.Name, err)
		}
	}
	return d, nil
}

// image is the dump in the form Check compares.
func (d *tableDump) image() (*tableImage, error) {
	img := newTableImage()
	if d.table == nil {
		return img, nil
	}
	img.exists = true
	for _, o := range d.objs {
		img.AddObj(o)
	}
	for _, s := range d.sets {
		if err := img.AddSet(s, d.elems[s.Name]); err != nil {
			return nil, err
		}
	}
	for _, c := range d.chains {
		img.AddChain(c)
		img.chains[c.Name].rules = d.rules[c.Name]
	}
	return img, nil
}

// differences lists how t (the kernel's) differs from want, at most maxDifferences of them.
func (t *tableImage) differences(want *tableImage) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if !t.exists {
		if want.exists {
			add("the table is missing")
		}
		return out
	}
	for _, name := range sortedKeys(want.counters) {
		if !t.counters[name] {
			add("counter %s is missing", name)
		}
	}
	for _, name := range sortedKeys(t.counters) {
		if !want.counters[name] {
			add("counter %s is not ours", name)
		}
	}
	for _, name := range sortedKeys(want.sets) {
		w := want.sets[name]
		g, ok := t.sets[name]
		switch {
		case !ok:
			add("set %s is missing", name)
		case g.def != w.def:
			add("set %s is %s, not %s", name, g.def, w.def)
		default:
			if missing, extra := compareElements(g.elems, w.elems); missing+extra > 0 {
				add("set %s lacks %d elements and has %d more", name, missing, extra)
			}
		}
	}
	for _, name := range sortedKeys(t.sets) {
		if _, ok := want.sets[name]; !ok {
			add("set %s is not ours", name)
		}
	}
	for _, name := range sortedKeys(want.chains) {
		w := want.chains[name]
		g, ok := t.chains[name]
		switch {
		case !ok:
			add("chain %s is missing", name)
		case g.def != w.def:
			add("chain %s is %s, not %s", name, g.def, w.def)
		case len(g.rules) != len(w.rules):
			add("chain %s has %d rules, not %d", name, len(g.rules), len(w.rules))
		default:
			for i := range w.rules {
				if t.ruleString(g.rules[i]) != want.ruleString(w.rules[i]) {
					add("rule %d of chain %s differs", i+1, name)
					break
				}
			}
		}
	}
	for _, name := range sortedKeys(t.chains) {
		if _, ok := want.chains[name]; !ok {
			add("chain %s is not ours", name)
		}
	}
	if len(out) > maxDifferences {
		out = append(out[:maxDifferences], fmt.Sprintf("and %d more differences", len(out)-maxDifferences))
	}
	return out
}

// compareElements counts the elements of want missing from got and the elements of got not in want.
func compareElements(got, want []string) (missing, extra int) {
	count := make(map[string]int, len(want))
	for _, e := range want {
		count[e]++
	}
	for _, e := range got {
		count[e]--
	}
	for _, n := range count {
		if n > 0 {
			missing += n
		} else {
			extra -= n
		}
	}
	return missing, extra
}

// ruleString is a rule's expressions, marshalled, with lookups into anonymous sets naming the set's
// content instead of its name, and its user data (the comment).
func (t *tableImage) ruleString(r *nftables.Rule) string {
	var b strings.Builder
	for _, e := range r.Exprs {
		if d, ok := e.(*expr.Dynset); ok {
			// The batch's set ID is not listed back; the set's name is.
			c := *d
			c.SetID = 0
			e = &c
		}
		if l, ok := e.(*expr.Lookup); ok {
			c := *l
			c.SetID = 0
			if anon, ok := t.anon[l.SetName]; ok {
				elems := slices.Clone(anon.elems)
				slices.Sort(elems)
				c.SetName = anon.def + "{" + strings.Join(elems, ",") + "}"
			}
			e = &c
		}
		data, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			fmt.Fprintf(&b, "[%T: %v]", e, err)
			continue
		}
		b.WriteString(hex.EncodeToString(data))
		b.WriteByte(' ')
	}
	b.WriteString("userdata=" + hex.EncodeToString(r.UserData))
	return b.String()
}

// setDef is what a set's definition must match. google/nftables decodes a verdict map's key type as
// its data type, so a map's key is checked through its elements' keys only.
func setDef(s *nftables.Set) string {
	if s.IsMap {
		return fmt.Sprintf("verdict map interval %t", s.Interval)
	}
	def := fmt.Sprintf("key %d/%d interval %t concat %t", s.KeyType.GetNFTMagic(), s.KeyType.Bytes, s.Interval, s.Concatenation)
	if s.Dynamic || s.HasTimeout {
		def += fmt.Sprintf(" dynamic %t timeout %s", s.Dynamic, s.Timeout)
	}
	return def
}

func chainDef(c *nftables.Chain) string {
	if c.Hooknum == nil {
		return "regular"
	}
	policy := "-"
	if c.Policy != nil {
		policy = fmt.Sprint(*c.Policy)
	}
	var prio nftables.ChainPriority
	if c.Priority != nil {
		prio = *c.Priority
	}
	return fmt.Sprintf("type %s hook %d priority %d policy %s", c.Type, *c.Hooknum, prio, policy)
}

func elementString(e nftables.SetElement) string {
	s := hex.EncodeToString(e.Key)
	if len(e.KeyEnd) > 0 {
		s += "-" + hex.EncodeToString(e.KeyEnd)
	}
	if e.IntervalEnd {
		s += " end"
	}
	if v := e.VerdictData; v != nil {
		s += fmt.Sprintf(" : %d %s", v.Kind, v.Chain)
	}
	return s
}

// verdictOf decodes the verdict of a map element, which google/nftables returns undecoded: the
// attributes of NFTA_DATA_VERDICT.
func verdictOf(val []byte) (*expr.Verdict, error) {
	ad, err := netlink.NewAttributeDecoder(val)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	v := &expr.Verdict{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind = expr.VerdictKind(int32(ad.Uint32()))
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	return v, ad.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

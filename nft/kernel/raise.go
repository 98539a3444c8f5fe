package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// ReadRuleset reads our table back from the kernel and raises it into nft's model: the exact inverse
// of the lowering, so that a packet traced through the result meets what the kernel holds, not what
// the agent meant to commit. Rules carry their kernel handles.
//
// The table is read with several netlink dumps; the ruleset generation, which every commit
// increments, is the same before and after them, so the result is one state of the table (a commit
// in between makes ReadRuleset read again, a few times at most).
//
// Anything the lowering never emits (an expression, a set type, a chain type) is an error naming
// where it is: skipping it would make the model wider or narrower than the kernel. As a last guard
// the raised ruleset is lowered again and compared with the dump, as Check compares.
//
// A missing table is an error wrapping os.ErrNotExist.
func (b *NetlinkBackend) ReadRuleset(table string) (*nft.Ruleset, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range maxReadAttempts {
		d, attrs, stable, err := b.dumpStable(table)
		if err != nil {
			return nil, fmt.Errorf("reading table inet %s: %w", table, err)
		}
		if !stable {
			continue
		}
		if d.table == nil {
			return nil, fmt.Errorf("reading table inet %s: %w", table, os.ErrNotExist)
		}
		rs, err := raiseTable(d, attrs)
		if err == nil {
			err = checkRaised(rs, d)
		}
		if err != nil {
			return nil, fmt.Errorf("raising table inet %s: %w", table, err)
		}
		return rs, nil
	}
	return nil, fmt.Errorf("reading table inet %s: the ruleset changed during each of %d reads", table, maxReadAttempts)
}

// maxReadAttempts bounds how often ReadRuleset reads a table that changes while it reads.
const maxReadAttempts = 3

// dumpStable dumps table and the set attributes google/nftables does not decode, and reports whether
// no commit happened meanwhile. b.mu is held.
func (b *NetlinkBackend) dumpStable(table string) (*tableDump, map[string]setAttributes, bool, error) {
	conn, err := b.connection()
	if err != nil {
		return nil, nil, false, err
	}
	fd := -1
	if b.netns != nil {
		fd = int(b.netns.Fd())
	}
	raw, err := dialNetfilter(fd)
	if err != nil {
		return nil, nil, false, err
	}
	defer func() { _ = raw.Close() }()
	before, err := generation(raw)
	if err != nil {
		return nil, nil, false, fmt.Errorf("reading the ruleset generation: %w", err)
	}
	d, err := dumpTable(conn, table)
	if err != nil {
		b.dropConn()
	}
	var attrs map[string]setAttributes
	if err == nil {
		attrs, err = dumpSetAttributes(raw, table)
	}
	after, genErr := generation(raw)
	if genErr != nil {
		return nil, nil, false, fmt.Errorf("reading the ruleset generation: %w", genErr)
	}
	if after != before {
		// A commit in between: a dump may also have failed because an object it listed went away.
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	return d, attrs, true, nil
}

// checkRaised lowers rs again and requires the result to be the dumped table.
func checkRaised(rs *nft.Ruleset, d *tableDump) error {
	want, err := imageOf(rs)
	if err != nil {
		return err
	}
	got, err := d.image()
	if err != nil {
		return err
	}
	if diffs := got.differences(want); len(diffs) > 0 {
		return fmt.Errorf("the model read back does not lower to the kernel's table: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// raiseTable turns a dump into a ruleset: sets and maps sorted by name with sorted elements, base
// chains in the kernel's order (their creation order), then regular chains sorted by name.
func raiseTable(d *tableDump, attrs map[string]setAttributes) (*nft.Ruleset, error) {
	rs := &nft.Ruleset{Table: d.table.Name}
	for _, o := range d.objs {
		name, ok := counterName(o)
		if !ok {
			return nil, fmt.Errorf("named object %T is not a counter: the lowering makes no other", o)
		}
		rs.Counters = append(rs.Counters, nft.Counter{Name: name})
	}
	slices.SortFunc(rs.Counters, func(a, b nft.Counter) int { return strings.Compare(a.Name, b.Name) })
	anon := map[string]*nftables.Set{}
	var maps []*nftables.Set
	for _, s := range d.sets {
		switch {
		case s.Anonymous:
			anon[s.Name] = s
		case s.IsMap:
			maps = append(maps, s)
		default:
			set, err := raiseSet(s, attrs[s.Name], d.elems[s.Name])
			if err != nil {
				return nil, err
			}
			rs.Sets = append(rs.Sets, set)
		}
	}
	var regular []nft.Chain
	for _, c := range d.chains {
		chain, err := raiseChain(c, d.rules[c.Name], anonymousSets{sets: anon, elems: d.elems})
		if err != nil {
			return nil, err
		}
		if chain.Base != nil {
			rs.Chains = append(rs.Chains, chain)
		} else {
			regular = append(regular, chain)
		}
	}
	slices.SortFunc(regular, func(a, b nft.Chain) int { return strings.Compare(a.Name, b.Name) })
	rs.Chains = append(rs.Chains, regular...)
	for _, s := range maps {
		m, err := raiseMap(s, attrs[s.Name], d.elems[s.Name])
		if err != nil {
			return nil, err
		}
		rs.Maps = append(rs.Maps, m)
	}
	slices.SortFunc(rs.Sets, func(a, b nft.Set) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(rs.Maps, func(a, b nft.Map) int { return strings.Compare(a.Name, b.Name) })
	return rs, nil
}

// raiseChain raises a chain's definition and its rules.
func raiseChain(c *nftables.Chain, rules []*nftables.Rule, anon anonymousSets) (nft.Chain, error) {
	chain := nft.Chain{Name: c.Name}
	if c.Hooknum != nil {
		base, err := raiseBaseHook(c)
		if err != nil {
			return nft.Chain{}, fmt.Errorf("chain %s: %w", c.Name, err)
		}
		chain.Base = base
	}
	for _, r := range rules {
		rule, err := raiseRule(r, anon)
		if err != nil {
			return nft.Chain{}, fmt.Errorf("chain %s rule handle %d: %w", c.Name, r.Handle, err)
		}
		chain.Rules = append(chain.Rules, rule)
	}
	return chain, nil
}

// raiseBaseHook reads back `type filter hook HOOK priority filter + N; policy accept;`.
func raiseBaseHook(c *nftables.Chain) (*nft.BaseHook, error) {
	if c.Type != nftables.ChainTypeFilter {
		return nil, fmt.Errorf("type %s, not filter", c.Type)
	}
	if c.Policy == nil || *c.Policy != nftables.ChainPolicyAccept {
		return nil, fmt.Errorf("a policy other than accept")
	}
	if c.Priority == nil {
		return nil, fmt.Errorf("a base chain without priority")
	}
	for hook, num := range chainHooks {
		if *num == *c.Hooknum {
			return &nft.BaseHook{Hook: hook, Priority: int32(*c.Priority - *nftables.ChainPriorityFilter)}, nil
		}
	}
	return nil, fmt.Errorf("unknown hook %d", *c.Hooknum)
}

// raiseRule raises one rule: its matches, then its statements (a verdict map lookup, a verdict), each
// the exact inverse of addRule's lowering, and its comment.
func raiseRule(r *nftables.Rule, anon anonymousSets) (nft.Rule, error) {
	rule := nft.Rule{Handle: r.Handle}
	if len(r.UserData) > 0 {
		comment, ok := userdata.GetString(r.UserData, userdata.TypeComment)
		if !ok {
			return nft.Rule{}, fmt.Errorf("user data %x holds no comment", r.UserData)
		}
		rule.Comment = comment
	}
	es := r.Exprs
	for len(es) > 0 {
		m, n, err := raiseMatch(es, anon)
		if err != nil {
			return nft.Rule{}, fmt.Errorf("%w: expressions %s", err, describeExprs(es))
		}
		if n == 0 {
			break // not a match: the statements follow
		}
		rule.Matches = append(rule.Matches, m)
		es = es[n:]
	}
	for _, st := range ruleStatements {
		n, err := st(es, &rule)
		if err != nil {
			return nft.Rule{}, fmt.Errorf("%w: expressions %s", err, describeExprs(es))
		}
		es = es[n:]
	}
	if len(es) > 0 {
		return nft.Rule{}, fmt.Errorf("expressions %s are not the lowering of any match or statement", describeExprs(es))
	}
	return rule, nil
}

// ruleStatements raise what follows a rule's matches, in the order addRule lowers it. Each consumes
// the expressions of its statement at the head of es, or none when the statement is absent.
var ruleStatements = []func(es []expr.Any, rule *nft.Rule) (int, error){
	raiseVMapStatement,
	raiseLogStatement,
	raiseCounterStatement,
	raiseVerdictStatement,
}

// raiseLogStatement: `log prefix "PREFIX" group G`, and nothing else of the log expression.
func raiseLogStatement(es []expr.Any, rule *nft.Rule) (int, error) {
	l, ok := at[*expr.Log](es, 0)
	if !ok {
		return 0, nil
	}
	if l.Key != 1<<unix.NFTA_LOG_GROUP|1<<unix.NFTA_LOG_PREFIX {
		return 0, fmt.Errorf("log expression with attributes %#x: the lowering sets a group and a prefix only", l.Key)
	}
	rule.Log = &nft.Log{Group: l.Group, Prefix: string(l.Data)}
	return 1, nil
}

// raiseCounterStatement: `counter name "NAME"`.
func raiseCounterStatement(es []expr.Any, rule *nft.Rule) (int, error) {
	ref, ok := at[*expr.Objref](es, 0)
	if !ok {
		return 0, nil
	}
	if ref.Type != int(nftables.ObjTypeCounter) {
		return 0, fmt.Errorf("object reference of type %d", ref.Type)
	}
	rule.Counter = ref.Name
	return 1, nil
}

// raiseVMapStatement: `ip saddr vmap @NAME`.
func raiseVMapStatement(es []expr.Any, rule *nft.Rule) (int, error) {
	family, n, ok := nfprotoOf(es)
	if !ok {
		return 0, nil
	}
	field, ok := addrLoad(es, n, family, nftReg1)
	l, isLookup := at[*expr.Lookup](es, n+1)
	if !ok || !isLookup || !l.IsDestRegSet {
		return 0, nil
	}
	if l.SourceRegister != nftReg1 || l.DestRegister != 0 || l.Invert {
		return 0, fmt.Errorf("verdict map lookup %s", describeExprs(es[n+1:n+2]))
	}
	rule.VMap = &nft.VMapLookup{Family: family, Field: field, Map: l.SetName}
	return n + 2, nil
}

func raiseVerdictStatement(es []expr.Any, rule *nft.Rule) (int, error) {
	v, ok := at[*expr.Verdict](es, 0)
	if !ok {
		return 0, nil
	}
	verdict, err := raiseVerdict(v)
	if err != nil {
		return 0, err
	}
	rule.Verdict = verdict
	return 1, nil
}

// raiseVerdict inverts lowerVerdict.
func raiseVerdict(v *expr.Verdict) (nft.Verdict, error) {
	switch v.Kind {
	case expr.VerdictAccept:
		return nft.Verdict{Kind: nft.Accept}, nil
	case expr.VerdictDrop:
		return nft.Verdict{Kind: nft.Drop}, nil
	case expr.VerdictReturn:
		return nft.Verdict{Kind: nft.Return}, nil
	case expr.VerdictJump, expr.VerdictGoto:
		if v.Chain == "" {
			return nft.Verdict{}, fmt.Errorf("verdict %d without a chain", v.Kind)
		}
		kind := nft.Jump
		if v.Kind == expr.VerdictGoto {
			kind = nft.Goto
		}
		return nft.Verdict{Kind: kind, Chain: v.Chain}, nil
	default:
		return nft.Verdict{}, fmt.Errorf("unknown verdict %d", v.Kind)
	}
}

// at returns es[i] as a T, if it is one.
func at[T expr.Any](es []expr.Any, i int) (T, bool) {
	var zero T
	if i >= len(es) {
		return zero, false
	}
	e, ok := es[i].(T)
	return e, ok
}

// describeExprs writes expressions for an error: their types and fields.
func describeExprs(es []expr.Any) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr.") + strings.TrimPrefix(fmt.Sprintf("%+v", e), "&")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

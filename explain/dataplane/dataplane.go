// Package dataplane is the agent's side of `kubectl nftpolicy explain`: it reads the node's table
// back from the kernel, traces the connection's first packet through it, and compares that with a
// trace through the ruleset the agent committed. It answers over the agent's HTTPS server.
package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/nftpolicy/nftpolicy/explain"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Path is where the agent serves explanations.
const Path = "/explain"

// Kernel reads the node's table as the kernel holds it.
type Kernel interface {
	ReadRuleset(table string) (*nft.Ruleset, error)
	Counters(table string) (map[string]nft.CounterValue, error)
}

// Conntrack counts the tracked connections of a flow.
type Conntrack interface {
	Tracked(f nft.Flow) (int, error)
}

// Handler answers GET Path?direction=egress|ingress&src=IP&dst=IP&protocol=TCP|UDP|SCTP&port=N
// with an explain.DataplaneAnswer in JSON.
type Handler struct {
	Node  string
	Table string
	// Committed is the ruleset of the agent's last successful commit, nil when unknown.
	Committed func() *nft.Ruleset
	Kernel    Kernel
	// Conntrack is nil when the agent cannot read the conntrack table.
	Conntrack Conntrack
}

// Query is one question: the first packet of a connection, seen by one direction's checks.
type Query struct {
	Direction explain.Direction
	Src, Dst  netip.Addr
	Proto     uint8
	Port      uint16
}

// Values encodes q as Handler reads it.
func (q Query) Values() url.Values {
	return url.Values{
		"direction": {string(q.Direction)}, "src": {q.Src.String()}, "dst": {q.Dst.String()},
		"protocol": {protoNames[q.Proto]}, "port": {strconv.Itoa(int(q.Port))},
	}
}

var protoNames = map[uint8]string{nft.ProtoTCP: "TCP", nft.ProtoUDP: "UDP", nft.ProtoSCTP: "SCTP"}

// ParseQuery reads a Query from request values.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	var errs []error
	switch d := explain.Direction(v.Get("direction")); d {
	case explain.Egress, explain.Ingress:
		q.Direction = d
	default:
		errs = append(errs, fmt.Errorf("direction %q: want egress or ingress", v.Get("direction")))
	}
	var err error
	if q.Src, err = netip.ParseAddr(v.Get("src")); err != nil {
		errs = append(errs, fmt.Errorf("src: %w", err))
	}
	if q.Dst, err = netip.ParseAddr(v.Get("dst")); err != nil {
		errs = append(errs, fmt.Errorf("dst: %w", err))
	}
	if q.Src.IsValid() && q.Dst.IsValid() && q.Src.Is4() != q.Dst.Is4() {
		errs = append(errs, errors.New("src and dst are of different families"))
	}
	q.Src, q.Dst = q.Src.Unmap(), q.Dst.Unmap()
	found := false
	for p, name := range protoNames {
		if strings.EqualFold(v.Get("protocol"), name) {
			q.Proto, found = p, true
		}
	}
	if !found {
		errs = append(errs, fmt.Errorf("protocol %q: want TCP, UDP or SCTP", v.Get("protocol")))
	}
	port, err := strconv.ParseUint(v.Get("port"), 10, 16)
	if err != nil || port == 0 {
		errs = append(errs, fmt.Errorf("port %q: want 1-65535", v.Get("port")))
	}
	q.Port = uint16(port)
	return q, errors.Join(errs...)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "explain takes GET", http.StatusMethodNotAllowed)
		return
	}
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ans, err := h.Answer(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// Answer traces q through the table the kernel holds, and through the committed ruleset: where the
// two differ, the kernel's table drifted from what the agent programmed.
func (h *Handler) Answer(q Query) (*explain.DataplaneAnswer, error) {
	kernelRules, err := h.Kernel.ReadRuleset(h.Table)
	if err != nil {
		return nil, fmt.Errorf("reading table %s back from the kernel: %w", h.Table, err)
	}
	ans := &explain.DataplaneAnswer{Node: h.Node, Direction: q.Direction}
	got := trace(kernelRules, q)
	ans.Verdict, ans.Path = got.verdict, got.path
	if err := h.addCounterValues(ans.Path); err != nil {
		return nil, err
	}
	if committed := h.Committed(); committed == nil {
		ans.Drift = append(ans.Drift, "the agent holds no committed ruleset (its first sync, or a failed commit, is pending): the kernel's table is not known to be the agent's")
	} else {
		ans.Drift = append(ans.Drift, compare(trace(committed, q), got)...)
	}
	if h.Conntrack != nil {
		n, err := h.Conntrack.Tracked(nft.Flow{Src: q.Src, Dst: q.Dst, Proto: q.Proto, DstPort: q.Port})
		if err != nil {
			return nil, err
		}
		ans.Conntrack.Held = n > 0
	}
	return ans, nil
}

// traced is one trace's outcome.
type traced struct {
	verdict explain.Verdict
	path    []explain.PathStep
}

// packetFor is the first packet of q as the forward hook of this node sees it: the pod interfaces
// are those the ruleset holds, and an address of no local pod arrives or leaves over the node's
// uplink, whose name no rule of ours matches.
func packetFor(rs *nft.Ruleset, q Query) nft.Packet {
	return nft.ForwardPacket(nft.Flow{Src: q.Src, Dst: q.Dst, Proto: q.Proto, DstPort: q.Port}, nft.PodInterfaces(rs), "")
}

// trace follows the packet through rs, as far as q's direction decides (see nft.OneDirection).
func trace(rs *nft.Ruleset, q Query) traced {
	dir := selectors.Egress
	if q.Direction == explain.Ingress {
		dir = selectors.Ingress
	}
	res := nft.NewTracer(nft.OneDirection(rs, dir)).Explain(packetFor(rs, q))
	out := traced{verdict: explain.Verdict(res.Verdict)}
	for _, st := range res.Steps {
		step := explain.PathStep{
			Hook: string(st.Hook), Chain: st.Chain, Rule: st.Index, Handle: st.Handle, Text: st.Rule, Comment: st.Comment,
			Matched: st.Matched, FailedMatch: st.FailedMatch, Verdict: st.Verdict,
		}
		if st.Matched {
			step.Counter = st.Counter
		}
		for _, l := range st.Lookups {
			step.Lookups = append(step.Lookups, explain.Lookup{Set: l.Set, Key: l.Key, Found: l.Found})
		}
		if m := st.Map; m != nil {
			step.VMap = &explain.VMapHit{Map: m.Map, Key: m.Key, Verdict: m.Verdict, Found: m.Found}
		}
		out.path = append(out.path, step)
	}
	return out
}

// addCounterValues reads the table's counters, in one dump, for the steps whose rule updated one.
func (h *Handler) addCounterValues(path []explain.PathStep) error {
	if !slices.ContainsFunc(path, func(s explain.PathStep) bool { return s.Counter != "" }) {
		return nil
	}
	values, err := h.Kernel.Counters(h.Table)
	if err != nil {
		return fmt.Errorf("reading the counters of table %s: %w", h.Table, err)
	}
	for i := range path {
		if path[i].Counter != "" {
			path[i].CounterValue = values[path[i].Counter].Packets
		}
	}
	return nil
}

// compare lists how the kernel's trace differs from the committed ruleset's.
func compare(want, got traced) []string {
	var out []string
	if want.verdict != got.verdict {
		out = append(out, fmt.Sprintf("the kernel's table %ss the packet, the committed ruleset %ss it", got.verdict, want.verdict))
	}
	n := max(len(want.path), len(got.path))
	for i := range n {
		switch {
		case i >= len(got.path):
			out = append(out, "the kernel's trace ends before committed step "+stepText(want.path[i]))
		case i >= len(want.path):
			out = append(out, "the kernel's trace goes on past the committed one: "+stepText(got.path[i]))
		case stepText(want.path[i]) != stepText(got.path[i]) || want.path[i].Matched != got.path[i].Matched:
			out = append(out, fmt.Sprintf("step %d: kernel %s, committed %s", i, stepText(got.path[i]), stepText(want.path[i])))
		}
	}
	return out
}

// stepText is what two traces must agree on for a step: the rule and what it found. Handles
// differ (the committed ruleset has none) and so do counter values.
func stepText(s explain.PathStep) string {
	text := fmt.Sprintf("%s[%d] %s", s.Chain, s.Rule, s.Text)
	for _, l := range s.Lookups {
		text += fmt.Sprintf("; @%s %s %s", l.Set, l.Key, found(l.Found))
	}
	if m := s.VMap; m != nil {
		text += fmt.Sprintf("; vmap @%s %s %s %s", m.Map, m.Key, found(m.Found), m.Verdict)
	}
	return text
}

func found(ok bool) string {
	if ok {
		return "found"
	}
	return "not found"
}

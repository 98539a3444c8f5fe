package explain

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report for people: the connection, one paragraph per direction, the
// verdict, then each node's path through its table and any disagreement.
func (r *Report) WriteText(w io.Writer) error {
	tw := &textWriter{w: w}
	c := &r.Spec.Connection
	name := c.PortName
	if name != "" {
		name = " (" + name + ")"
	}
	tw.printf("connection: %s (%s) -> %s (%s) %d/%s%s\n", c.Source, c.SrcIP, c.Destination, c.DstIP, c.Port, c.Protocol, name)
	tw.direction(r.Spec.Egress)
	tw.direction(r.Spec.Ingress)
	verdict := "ALLOWED"
	if !r.Spec.Allowed {
		verdict = "DENIED"
	}
	tw.printf("spec: %s\n", verdict)
	for _, p := range r.Spec.Problems {
		tw.printf("  problem: %s\n", p)
	}
	for i := range r.Dataplane {
		tw.dataplane(&r.Dataplane[i])
	}
	for _, a := range r.Agreements() {
		if !a.Agree {
			tw.printf("DISAGREE: node %s %s: spec %s, dataplane %s\n", a.Node, a.Direction, allowedWord(a.SpecAllows), a.Verdict)
		}
	}
	for _, d := range r.Drift {
		tw.printf("DRIFT: %s\n", d)
	}
	return tw.err
}

// textWriter keeps the first write error.
type textWriter struct {
	w   io.Writer
	err error
}

func (tw *textWriter) printf(format string, args ...any) {
	if tw.err == nil {
		_, tw.err = fmt.Fprintf(tw.w, format, args...)
	}
}

func allowedWord(allowed bool) string {
	if allowed {
		return "allows"
	}
	return "denies"
}

// direction writes "egress of default/busybox: isolated by default/x; allowed by default/x
// egress[0] (peer 0: pods app=redis; port 6379/TCP)" or the denial with every rule's reasons.
func (tw *textWriter) direction(da *DirectionAnswer) {
	if da == nil {
		return
	}
	defer tw.audit(da)
	tw.printf("%s of %s: ", da.Direction, da.Pod)
	if !da.Isolated {
		tw.printf("not isolated; allowed\n")
		return
	}
	isolatedBy := make([]string, len(da.IsolatedBy))
	for i, p := range da.IsolatedBy {
		isolatedBy[i] = p.String()
	}
	if da.Allowed {
		a := da.AdmittedBy
		tw.printf("isolated by %s; allowed by %s %s[%d] (%s; %s)\n", strings.Join(isolatedBy, ", "), a.Policy, a.Direction, a.Rule, peerPart(a), portPart(a))
		return
	}
	if len(da.Rejections) == 0 {
		tw.printf("DENIED: isolated by %s; no policy has an %s rule\n", strings.Join(isolatedBy, ", "), da.Direction)
		return
	}
	tw.printf("DENIED: isolated by %s; no rule admits:\n", strings.Join(isolatedBy, ", "))
	for _, rej := range da.Rejections {
		for _, reason := range rej.Reasons {
			tw.printf("  %s %s[%d]: %s\n", rej.Policy, rej.Direction, rej.Rule, reason.Text)
		}
	}
}

// audit writes "  audited (not enforced): default/trial; would drop" or what else the audited
// policies of da would change.
func (tw *textWriter) audit(da *DirectionAnswer) {
	a := da.Audit
	if a == nil {
		return
	}
	names := make([]string, len(a.Policies))
	for i, p := range a.Policies {
		names[i] = p.String()
	}
	tw.printf("  audited (not enforced): %s; ", strings.Join(names, ", "))
	switch a.Verdict {
	case WouldDrop:
		tw.printf("WOULD DROP: no audited rule admits\n")
	case WouldAllow:
		tw.printf("WOULD ALLOW by %s %s[%d] (%s; %s)\n", a.AdmittedBy.Policy, a.AdmittedBy.Direction, a.AdmittedBy.Rule, peerPart(a.AdmittedBy), portPart(a.AdmittedBy))
	default:
		tw.printf("enforcing them would change nothing here\n")
	}
}

func peerPart(a *RuleRef) string {
	if a.AnyPeer {
		return "any peer"
	}
	return fmt.Sprintf("peer %d: %s", a.Peer, a.PeerText)
}

func portPart(a *RuleRef) string {
	if a.AllPorts {
		return "all ports"
	}
	return fmt.Sprintf("port %d: %s", a.Port, a.PortText)
}

// dataplane writes one node's verdict, then one line per step of its path.
func (tw *textWriter) dataplane(dp *DataplaneAnswer) {
	ct := ""
	if dp.Conntrack.Held {
		ct = fmt.Sprintf(" (conntrack holds the flow: %s; policy is skipped)", dp.Conntrack.State)
	}
	tw.printf("dataplane %s on node %s: %s%s\n", dp.Direction, dp.Node, dp.Verdict, ct)
	for i := range dp.Path {
		tw.printf("  %s\n", stepText(&dp.Path[i]))
	}
	for _, d := range dp.Drift {
		tw.printf("  DRIFT: %s\n", d)
	}
}

// stepText is one line: "chain[rule] (handle H) matched|-: text => verdict; counter name=value;
// lookups". The rule's text holds its comment.
func stepText(s *PathStep) string {
	mark := "-"
	if s.Matched {
		mark = "matched"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s[%d]", s.Chain, s.Rule)
	if s.Handle != 0 {
		fmt.Fprintf(&b, " (handle %d)", s.Handle)
	}
	fmt.Fprintf(&b, " %s: %s", mark, s.Text)
	if s.Verdict != "" {
		fmt.Fprintf(&b, " => %s", s.Verdict)
	}
	if s.Counter != "" {
		fmt.Fprintf(&b, "; counter %s=%d", s.Counter, s.CounterValue)
	}
	for _, l := range s.Lookups {
		fmt.Fprintf(&b, "; @%s %s %s", l.Set, l.Key, foundWord(l.Found))
	}
	if v := s.VMap; v != nil {
		fmt.Fprintf(&b, "; vmap @%s %s %s", v.Map, v.Key, foundWord(v.Found))
		if v.Found {
			fmt.Fprintf(&b, " -> %s", v.Verdict)
		}
	}
	return b.String()
}

func foundWord(found bool) string {
	if found {
		return "found"
	}
	return "not found"
}

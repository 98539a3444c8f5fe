package nft

import (
	"net/netip"
)

// TracePath is a packet's whole way through a ruleset, as Tracer.Explain finds it: the verdict and
// every rule evaluated on the way, in order, matched or not.
type TracePath struct {
	Verdict string     `json:"verdict"` // "accept" or "drop"
	Steps   []PathStep `json:"steps"`
}

// PathStep is one rule evaluated.
type PathStep struct {
	Hook    Hook   `json:"hook"`
	Chain   string `json:"chain"`
	Index   int    `json:"index"`            // position of the rule in its chain
	Handle  uint64 `json:"handle,omitempty"` // the rule's kernel handle, when read back from the kernel
	Rule    string `json:"rule"`             // the rule in nft syntax
	Comment string `json:"comment,omitempty"`
	// Counter is the counter object the rule updates when it matches ("" for none).
	Counter string `json:"counter,omitempty"`
	// Matched says all of the rule's matches matched. FailedMatch is then empty, else it is the first
	// match that failed, in nft syntax (the rules after it were not evaluated).
	Matched     bool   `json:"matched"`
	FailedMatch string `json:"failedMatch,omitempty"`
	// Lookups are the set lookups the rule's matches made, in order.
	Lookups []SetLookup `json:"lookups,omitempty"`
	// Map is the rule's verdict map lookup, if it made one.
	Map *MapLookup `json:"map,omitempty"`
	// Verdict is what the rule did to the packet, in nft syntax ("accept", "jump CHAIN"); empty when it
	// did nothing (it did not match, or its verdict map had no element for the packet).
	Verdict string `json:"verdict,omitempty"`
}

// SetLookup is one lookup of a key in a named set.
type SetLookup struct {
	Set   string `json:"set"`
	Key   string `json:"key"` // as nft writes an element: "veth-a" . 10.0.0.1, or 10.0.0.1 . tcp . 6379
	Found bool   `json:"found"`
}

// MapLookup is one lookup of an address in a verdict map.
type MapLookup struct {
	Map     string `json:"map"`
	Key     string `json:"key"`
	Found   bool   `json:"found"`
	Verdict string `json:"verdict,omitempty"` // the element's verdict when found
}

// pathRecorder collects the steps of one Explain. Its methods do nothing on a nil recorder, so that
// Trace and Explain share one walk and cannot diverge.
type pathRecorder struct {
	steps []PathStep
	cur   PathStep // the rule being evaluated; appended by end, before any jump it makes
}

func (r *pathRecorder) begin(hook Hook, chain string, index int, rule Rule) {
	if r == nil {
		return
	}
	r.cur = PathStep{Hook: hook, Chain: chain, Index: index, Handle: rule.Handle, Rule: RenderRule(rule), Comment: rule.Comment, Counter: rule.Counter}
}

func (r *pathRecorder) end(matched bool, failed string, v Verdict) {
	if r == nil {
		return
	}
	r.cur.Matched, r.cur.FailedMatch, r.cur.Verdict = matched, failed, RenderVerdict(v)
	r.steps = append(r.steps, r.cur)
}

func (r *pathRecorder) setLookup(s Set, key Element, found bool) {
	if r == nil {
		return
	}
	if s.Type == KeyPort {
		key.PortEnd = key.Port
	}
	r.cur.Lookups = append(r.cur.Lookups, SetLookup{Set: s.Name, Key: renderElement(s.Type, false, key), Found: found})
}

func (r *pathRecorder) mapLookup(name string, key netip.Addr, found bool, v Verdict) {
	if r == nil {
		return
	}
	r.cur.Map = &MapLookup{Map: name, Key: key.String(), Found: found, Verdict: RenderVerdict(v)}
}

// familyName is nft's name of a family in `meta nfproto`.
func familyName(f Family) string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

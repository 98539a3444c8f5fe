package explain

// Agreement compares the spec and one node's dataplane for one direction.
type Agreement struct {
	Node      string    `json:"node"`
	Direction Direction `json:"direction"`
	// SpecAllows is the spec's answer for the direction: true when that side is no pod or is not
	// isolated.
	SpecAllows bool    `json:"specAllows"`
	Verdict    Verdict `json:"verdict"`
	// Agree is false when the verdict is not what the spec says.
	Agree bool `json:"agree"`
}

// Agreements says, for each dataplane answer, whether the node's verdict is the spec's.
func (r *Report) Agreements() []Agreement {
	out := make([]Agreement, 0, len(r.Dataplane))
	for _, dp := range r.Dataplane {
		specAllows := true
		if da := r.Spec.Direction(dp.Direction); da != nil {
			specAllows = da.Allowed
		}
		out = append(out, Agreement{
			Node:       dp.Node,
			Direction:  dp.Direction,
			SpecAllows: specAllows,
			Verdict:    dp.Verdict,
			Agree:      specAllows == (dp.Verdict == Accept),
		})
	}
	return out
}

// Agrees reports whether every node's verdict is the spec's and no drift was found.
func (r *Report) Agrees() bool {
	if len(r.Drift) > 0 {
		return false
	}
	for _, dp := range r.Dataplane {
		if len(dp.Drift) > 0 {
			return false
		}
	}
	for _, a := range r.Agreements() {
		if !a.Agree {
			return false
		}
	}
	return true
}

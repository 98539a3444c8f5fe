package packet

// Stats summarizes one table's figures over the rounds.
type Stats struct {
	CRRPerSecond Summary `json:"crrPerSecond"`
	ConnectP50US Summary `json:"connectP50us"`
	ConnectP99US Summary `json:"connectP99us"`
	StreamGbps   Summary `json:"streamGbps"`
	UDPPerSecond Summary `json:"udpPerSecond"`
	CRRFailures  int     `json:"crrFailures"`
	UDPLost      int     `json:"udpLost"`
}

// RatioRow is one comparison, Numerator/Denominator, per figure: each a per-round ratio summarized.
type RatioRow struct {
	Numerator    string  `json:"numerator"`
	Denominator  string  `json:"denominator"`
	CRRPerSecond Summary `json:"crrPerSecond"`
	ConnectP50US Summary `json:"connectP50us"`
	ConnectP99US Summary `json:"connectP99us"`
	StreamGbps   Summary `json:"streamGbps"`
	UDPPerSecond Summary `json:"udpPerSecond"`
}

// series are a table's figures per round, in the order of the rounds.
type series struct {
	crr, p50, p99, stream, udp []float64
}

func (f Figures) series() series {
	var s series
	for _, c := range f.CRR {
		s.crr = append(s.crr, c.PerSecond)
		s.p50 = append(s.p50, c.ConnectP50US)
		s.p99 = append(s.p99, c.ConnectP99US)
	}
	for _, st := range f.Stream {
		s.stream = append(s.stream, st.Gbps)
	}
	for _, u := range f.UDP {
		s.udp = append(s.udp, u.PerSecond)
	}
	return s
}

// summarize fills Summary and Ratios from Tables and Figures: every table against the conntrack-only
// baseline, each A table against the B table with as many policies, and each A table with drop
// logging against the A table with as many policies and none.
func (r *Run) summarize() {
	r.Summary = map[string]Stats{}
	r.Ratios = nil
	all := make([]series, len(r.Tables))
	base := -1
	for i, t := range r.Tables {
		s := r.Figures[i].series()
		all[i] = s
		st := Stats{
			CRRPerSecond: summarize(s.crr), ConnectP50US: summarize(s.p50), ConnectP99US: summarize(s.p99),
			StreamGbps: summarize(s.stream), UDPPerSecond: summarize(s.udp),
		}
		for _, c := range r.Figures[i].CRR {
			st.CRRFailures += c.Failures
		}
		for _, u := range r.Figures[i].UDP {
			st.UDPLost += u.Lost
		}
		r.Summary[t.Name] = st
		if t.Kind == KindConntrack {
			base = i
		}
	}
	ratio := func(i, j int) RatioRow {
		a, b := all[i], all[j]
		return RatioRow{
			Numerator: r.Tables[i].Name, Denominator: r.Tables[j].Name,
			CRRPerSecond: ratios(a.crr, b.crr), ConnectP50US: ratios(a.p50, b.p50), ConnectP99US: ratios(a.p99, b.p99),
			StreamGbps: ratios(a.stream, b.stream), UDPPerSecond: ratios(a.udp, b.udp),
		}
	}
	for i, t := range r.Tables {
		if base >= 0 && i != base {
			r.Ratios = append(r.Ratios, ratio(i, base))
		}
		if t.Kind != KindA {
			continue
		}
		for j, u := range r.Tables {
			switch {
			case t.DropLog == nil && u.Kind == KindB && u.Policies == t.Policies:
				r.Ratios = append(r.Ratios, ratio(i, j))
			case t.DropLog != nil && u.Kind == KindA && u.DropLog == nil && u.Policies == t.Policies:
				r.Ratios = append(r.Ratios, ratio(i, j))
			}
		}
	}
}

// ratio returns the row num/den, if the run has it.
func (r *Run) ratio(num, den string) (RatioRow, bool) {
	for _, row := range r.Ratios {
		if row.Numerator == num && row.Denominator == den {
			return row, true
		}
	}
	return RatioRow{}, false
}

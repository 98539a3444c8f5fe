package harness

import (
	"fmt"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// Step is one measurement over a Run. Measurements 3 to 5 of the issue (per-packet cost, agent
// memory, end-to-end latency) are further steps that fill further fields of Run.
type Step struct {
	Name string
	Run  func(r *Run) error
}

// Steps lists the measurements of a run, in order.
func Steps(params generator.Params, cfg Config) []Step {
	growth := params
	growth.Pods = cfg.GrowthPods
	return []Step{
		{"full", func(r *Run) error {
			scales := []generator.Params{params, growth}
			full, err := MeasureFull(scales, []int{cfg.FullRepeats, cfg.GrowthRepeats}, cfg)
			if err != nil {
				return err
			}
			for i, fs := range full {
				if cfg.NetlinkBytes {
					sent, err := CountNetlinkBytes(scales[i], 0)
					if err != nil {
						r.Notes = append(r.Notes, fmt.Sprintf("netlink bytes of the full programming at P=%d not counted: %v", scales[i].Pods, err))
					} else if len(sent) > 0 {
						fs.Backends[0].NetlinkBytes = sent[0]
					}
				}
				r.Full = append(r.Full, fs)
			}
			return nil
		}},
		{"floor", func(r *Run) error {
			f, err := MeasureElementFloor(cfg.FloorRepeats, nil)
			if err != nil {
				return err
			}
			r.Floor = f
			c, err := generator.Generate(params)
			if err != nil {
				return err
			}
			m := selectors.Resolve(c.Snapshot)
			r.FloorFull, err = MeasureElementFloor(cfg.FloorRepeats, nft.Compile(nft.CompileInput{Table: Table, Model: m, Interfaces: Interfaces(m)}))
			return err
		}},
		{"probe", func(r *Run) error {
			p, err := MeasureResyncProbe(params, cfg.Resyncs)
			r.Probe = p
			return err
		}},
		{"incremental", func(r *Run) error {
			inc, err := MeasureIncremental(params, cfg.Events, cfg.BaselineEvents, cfg.IPTablesRestore)
			if err != nil {
				return err
			}
			r.Incr = inc
			if !cfg.NetlinkBytes {
				return nil
			}
			sent, err := CountNetlinkBytes(params, cfg.Events)
			if err != nil {
				r.Notes = append(r.Notes, fmt.Sprintf("netlink bytes of the events not counted: %v", err))
				return nil
			}
			if len(sent) != len(inc.Events)+1 {
				r.Notes = append(r.Notes, fmt.Sprintf("netlink bytes of the events not counted: %d transactions seen for %d events", len(sent)-1, len(inc.Events)))
				return nil
			}
			for i := range inc.Events {
				inc.Events[i].NetlinkBytes = sent[i+1]
			}
			return nil
		}},
	}
}

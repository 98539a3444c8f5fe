package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// AllocPart is the share of one part of the agent in what it allocated between two heap profiles.
type AllocPart struct {
	Part          string  `json:"part"`
	Bytes         float64 `json:"bytes"`
	BytesPerEvent float64 `json:"bytesPerEvent"`
	// Excluded parts are the measurement's own (profiles, scrapes): not counted per event.
	Excluded bool `json:"excluded,omitempty"`
}

// AllocBreakdown is where the agent's allocations went from its profile after the first sync to its
// profile at the end of the scale: every paced event and the whole churn.
type AllocBreakdown struct {
	Events int         `json:"events"`
	Parts  []AllocPart `json:"parts"`
	// SampleBytes is the profiles' sampling rate: one allocation recorded per that many bytes on
	// average, so parts of a few such samples are rough.
	SampleBytes int64 `json:"sampleBytes"`
}

// allocParts attributes a sample to the first part one of whose frames contains one of its
// patterns, in this order: the measurement's own work first, then our code that calls into
// libraries (a status write's HTTP request is the status write), then the libraries.
var allocParts = []struct {
	part     string
	excluded bool
	patterns []string
}{
	{"writing heap profiles", true, []string{"runtime/pprof.", "net/http/pprof."}},
	{scrapesPart, true, []string{"prometheus/promhttp.", "prometheus.(*Registry).Gather"}},
	{"status write (server-side apply of NodeEnforcement status)", false, []string{"NodeReconciler).writeStatus"}},
	{"netlink exchange: google/nftables and mdlayher/netlink (messages, acknowledgements, echoed rules)", false, []string{"github.com/google/nftables", "github.com/mdlayher/"}},
	{"conntrack cleanup (dump and judge of tracked connections)", false, []string{"vishvananda/netlink", "Conntrack"}},
	{"resolver (selectors)", false, []string{"nftpolicy/selectors."}},
	{"compiler", false, []string{"nftpolicy/nft.(*Compiler)", "nftpolicy/nft.(*compiler)"}},
	{"diff", false, []string{"nftpolicy/nft.Diff"}},
	{"lowering and applier (ours)", false, []string{"nftpolicy/nft."}},
	{"receiving events: watch decode", false, []string{"watch.(*StreamWatcher)", "rest/watch."}},
	{"receiving events: informer, reflector, cache transform", false, []string{"k8s.io/client-go/tools/cache.", "controllers.(*sharing)"}},
	{"receiving events: HTTP/2", false, []string{"golang.org/x/net/http2", "net/http."}},
	{"reconciler (ours, other)", false, []string{"nftpolicy/controllers."}},
	{"controller-runtime (queue, event handlers)", false, []string{"sigs.k8s.io/controller-runtime"}},
	{"metrics updates (prometheus)", false, []string{"prometheus"}},
}

const (
	otherPart   = "other"
	scrapesPart = "serving metrics scrapes"
)

// allocBreakdown reads the heap profiles before and after, and divides what was allocated between
// them among allocParts, per event.
func allocBreakdown(beforePath, afterPath string, events int) (*AllocBreakdown, error) {
	if events <= 0 {
		return nil, errors.New("no events")
	}
	before, err := readProfile(beforePath)
	if err != nil {
		return nil, err
	}
	after, err := readProfile(afterPath)
	if err != nil {
		return nil, err
	}
	before.Scale(-1)
	diff, err := profile.Merge([]*profile.Profile{after, before})
	if err != nil {
		return nil, fmt.Errorf("subtracting %s from %s: %w", beforePath, afterPath, err)
	}
	index := slices.IndexFunc(diff.SampleType, func(t *profile.ValueType) bool { return t.Type == "alloc_space" })
	if index < 0 {
		return nil, fmt.Errorf("%s has no alloc_space samples", afterPath)
	}
	bytes := map[string]float64{}
	for _, s := range diff.Sample {
		bytes[partOf(s)] += float64(s.Value[index])
	}
	out := &AllocBreakdown{Events: events, SampleBytes: after.Period}
	for _, p := range allocParts {
		if b, ok := bytes[p.part]; ok {
			out.Parts = append(out.Parts, AllocPart{Part: p.part, Bytes: b, BytesPerEvent: b / float64(events), Excluded: p.excluded})
		}
	}
	if b, ok := bytes[otherPart]; ok {
		out.Parts = append(out.Parts, AllocPart{Part: otherPart, Bytes: b, BytesPerEvent: b / float64(events)})
	}
	return out, nil
}

func partOf(s *profile.Sample) string {
	for _, p := range allocParts {
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				for _, pattern := range p.patterns {
					if strings.Contains(line.Function.Name, pattern) {
						return p.part
					}
				}
			}
		}
	}
	return otherPart
}

func readProfile(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return p, nil
}

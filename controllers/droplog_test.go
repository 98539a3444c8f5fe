package controllers

import (
	"maps"
	"slices"
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// dropLogModel has, per namespace, one isolated pod and one pod no policy selects: a/isolated,
// a/open, b/isolated, b/open, c/isolated, c/open.
func dropLogModel() *selectors.Model {
	m := &selectors.Model{}
	for _, ns := range []string{"a", "b", "c"} {
		m.LocalPods = append(m.LocalPods,
			selectors.LocalPod{Namespace: ns, Name: "isolated", Ingress: &selectors.Isolation{}},
			selectors.LocalPod{Namespace: ns, Name: "open"})
	}
	return m
}

func annotations(values map[string]string) func(string) (string, bool) {
	return func(ns string) (string, bool) { v, ok := values[ns]; return v, ok }
}

func loggedPods(dl *nft.DropLog) []string {
	if dl == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(dl.Pods))
}

func TestDropLogForTakesTheNamespaceLevelOverTheNodes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		node      DropLogLevel
		values    map[string]string
		want      []string
		antiSpoof bool
	}{
		{"off everywhere: nothing compiled", DropLogOff, nil, nil, false},
		{"one namespace opts in", DropLogOff, map[string]string{"b": "deny"}, []string{"b/isolated"}, false},
		{"all logs the denies too", DropLogOff, map[string]string{"a": "all"}, []string{"a/isolated"}, false},
		{"all and deny side by side", DropLogOff, map[string]string{"a": "all", "b": "deny"}, []string{"a/isolated", "b/isolated"}, false},
		{"node-wide deny, one namespace opts out", DropLogDeny, map[string]string{"c": "off"}, []string{"a/isolated", "b/isolated"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var levels dropLogLevels
			dl, bad := dropLogFor(&DropLogSettings{Level: tc.node, Group: 5, PairRate: 5, Rate: 50}, &levels, dropLogModel(), annotations(tc.values))
			if len(bad) != 0 {
				t.Errorf("bad annotations %v, want none", bad)
			}
			if got := loggedPods(dl); !slices.Equal(got, tc.want) {
				t.Errorf("logged pods %v, want %v", got, tc.want)
			}
			if dl != nil && (dl.AntiSpoof != tc.antiSpoof || dl.Group != 5) {
				t.Errorf("drop log %+v, want anti-spoofing %t in group 5", dl, tc.antiSpoof)
			}
			var wantAll []string
			for _, p := range tc.want {
				if tc.values[p[:1]] == "all" {
					wantAll = append(wantAll, p)
				}
			}
			if dl != nil && !slices.Equal(slices.Sorted(maps.Keys(dl.AllPods)), wantAll) {
				t.Errorf("pods logging all %v, want %v", slices.Sorted(maps.Keys(dl.AllPods)), wantAll)
			}
		})
	}
}

func TestUnknownLogAnnotationChangesNothingAndIsReportedOnce(t *testing.T) {
	var levels dropLogLevels
	s := &DropLogSettings{Level: DropLogOff, Group: 5, PairRate: 5, Rate: 50}
	dl, bad := dropLogFor(s, &levels, dropLogModel(), annotations(map[string]string{"a": "deny"}))
	if got := loggedPods(dl); !slices.Equal(got, []string{"a/isolated"}) || len(bad) != 0 {
		t.Fatalf("logged %v, bad %v", got, bad)
	}
	// A typo keeps a's level as it was, and b (never valid) at the node's level.
	values := map[string]string{"a": "denyy", "b": "verbose"}
	dl, bad = dropLogFor(s, &levels, dropLogModel(), annotations(values))
	if got := loggedPods(dl); !slices.Equal(got, []string{"a/isolated"}) {
		t.Errorf("after unknown values: logged %v, want a/isolated as before", got)
	}
	if !slices.Equal(bad, []string{"a", "b"}) {
		t.Errorf("reported %v, want a and b", bad)
	}
	if _, bad = dropLogFor(s, &levels, dropLogModel(), annotations(values)); len(bad) != 0 {
		t.Errorf("reported %v again, want each unknown value once", bad)
	}
	values["b"] = "loud"
	if _, bad = dropLogFor(s, &levels, dropLogModel(), annotations(values)); !slices.Equal(bad, []string{"b"}) {
		t.Errorf("reported %v, want b's new unknown value", bad)
	}
	// Removing the annotation goes back to the node's level.
	dl, _ = dropLogFor(s, &levels, dropLogModel(), annotations(nil))
	if dl != nil {
		t.Errorf("without annotations at node level off: %+v, want nothing logged", dl)
	}
}

func TestParseDropLogLevel(t *testing.T) {
	for _, ok := range []string{"off", "deny", "all"} {
		if l, err := ParseDropLogLevel(ok); err != nil || string(l) != ok {
			t.Errorf("ParseDropLogLevel(%q) = %q, %v", ok, l, err)
		}
	}
	for _, bad := range []string{"", "Deny", "on"} {
		if _, err := ParseDropLogLevel(bad); err == nil {
			t.Errorf("ParseDropLogLevel(%q) accepted it", bad)
		}
	}
}

// Audited policies are logged whatever the namespaces' levels: their pods need the log settings
// even where nothing else is logged.
func TestDropLogForCompilesTheSettingsForAudits(t *testing.T) {
	m := dropLogModel()
	m.LocalPods[1].AuditEgress = &selectors.Isolation{Policies: []selectors.PolicyRef{{Namespace: "a", Name: "trial"}}}
	var levels dropLogLevels
	dl, _ := dropLogFor(&DropLogSettings{Level: DropLogOff, Group: 5, PairRate: 5, Rate: 50}, &levels, m, annotations(nil))
	if dl == nil || len(dl.Pods) != 0 || dl.AntiSpoof || dl.Group != 5 {
		t.Errorf("drop log %+v, want the settings with no pod logging its drops", dl)
	}
	if dl, _ := dropLogFor(&DropLogSettings{Level: DropLogOff, Group: 5, PairRate: 5, Rate: 50}, &levels, dropLogModel(), annotations(nil)); dl != nil {
		t.Errorf("without audited policies: drop log %+v, want nil", dl)
	}
}

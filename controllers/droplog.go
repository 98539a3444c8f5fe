// Drop logging: which local pods log their default denies, from the node-wide level and each
// namespace's LogAnnotation.

package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// LogAnnotation on a Namespace sets the drop log level of its pods: off, deny or all. It overrides
// the node-wide level (DropLogSettings.Level).
const LogAnnotation = "nftpolicy.io/log"

// DropLogLevel is what is logged: nothing, the default denies, or (all) also the first packet of
// allowed connections.
type DropLogLevel string

const (
	DropLogOff  DropLogLevel = "off"
	DropLogDeny DropLogLevel = "deny"
	DropLogAll  DropLogLevel = "all"
)

// ParseDropLogLevel reads a level as the flag and the annotation write it.
func ParseDropLogLevel(s string) (DropLogLevel, error) {
	switch l := DropLogLevel(s); l {
	case DropLogOff, DropLogDeny, DropLogAll:
		return l, nil
	}
	return "", fmt.Errorf("drop log level %q: want off, deny or all", s)
}

// DropLogSettings turn drop logging on for a node (NodeReconciler.DropLog).
type DropLogSettings struct {
	// Level applies to the pods of namespaces without a valid LogAnnotation; anything but off also
	// logs the anti-spoofing drops.
	Level DropLogLevel
	// Group, PairRate and Rate are nft.DropLog's.
	Group          uint16
	PairRate, Rate uint32
}

// ReasonBadLogAnnotation is the Event reason of a LogAnnotation with an unknown value.
const ReasonBadLogAnnotation = "InvalidLogAnnotation"

// logAnnotationOf keeps only LogAnnotation of a Namespace's annotations (nil without it).
func logAnnotationOf(annotations map[string]string, v *internTable) map[string]string {
	value, ok := annotations[LogAnnotation]
	if !ok {
		return nil
	}
	return map[string]string{LogAnnotation: v.String(value)}
}

// dropLogLevels is what the last syncs made of each namespace's LogAnnotation: the last valid level
// (an unknown value changes nothing), and the unknown value last reported, so that each is reported
// once.
type dropLogLevels struct {
	valid    map[string]DropLogLevel
	reported map[string]string
}

// namespaceLevel resolves one namespace's level from its annotation value (present or not): a valid
// value is taken, an unknown one keeps the level the namespace had, and reports bad (once per value).
func (d *dropLogLevels) namespaceLevel(ns, value string, present bool, node DropLogLevel) (level DropLogLevel, bad bool) {
	if d.valid == nil {
		d.valid, d.reported = map[string]DropLogLevel{}, map[string]string{}
	}
	if !present {
		delete(d.valid, ns)
		delete(d.reported, ns)
		return node, false
	}
	if l, err := ParseDropLogLevel(value); err == nil {
		d.valid[ns] = l
		delete(d.reported, ns)
		return l, false
	}
	bad = d.reported[ns] != value
	d.reported[ns] = value
	if l, ok := d.valid[ns]; ok {
		return l, bad
	}
	return node, bad
}

// dropLogFor is the nft.DropLog of a model: the local pods whose namespace's level is not off.
// annotation returns a namespace's LogAnnotation. It returns the namespaces whose annotation is
// unknown and not reported yet. Level all also logs the first packet of allowed connections.
func dropLogFor(s *DropLogSettings, levels *dropLogLevels, m *selectors.Model, annotation func(ns string) (string, bool)) (*nft.DropLog, []string) {
	dl := &nft.DropLog{Group: s.Group, PairRate: s.PairRate, Rate: s.Rate, Pods: map[string]bool{}, AllPods: map[string]bool{},
		AntiSpoof: s.Level != DropLogOff}
	seen := map[string]DropLogLevel{}
	var bad []string
	for _, p := range m.LocalPods {
		level, ok := seen[p.Namespace]
		if !ok {
			value, present := annotation(p.Namespace)
			var isBad bool
			level, isBad = levels.namespaceLevel(p.Namespace, value, present, s.Level)
			seen[p.Namespace] = level
			if isBad {
				bad = append(bad, p.Namespace)
			}
		}
		if level != DropLogOff && (p.Ingress != nil || p.Egress != nil) {
			dl.Pods[p.Key()] = true
			if level == DropLogAll {
				dl.AllPods[p.Key()] = true
			}
		}
	}
	for ns := range levels.valid {
		if _, ok := seen[ns]; !ok {
			delete(levels.valid, ns) // no local pod left: forget it
			delete(levels.reported, ns)
		}
	}
	if !dl.AntiSpoof && len(dl.Pods) == 0 && !audits(m) {
		return nil, bad
	}
	return dl, bad
}

// audits reports whether audited policies select a local pod: their records are logged whatever
// the namespaces' levels.
func audits(m *selectors.Model) bool {
	return slices.ContainsFunc(m.LocalPods, func(p selectors.LocalPod) bool { return p.AuditIngress != nil || p.AuditEgress != nil })
}

// dropLog reads the LogAnnotation of the local pods' namespaces from the cache and returns the
// model's nft.DropLog (nil: nothing logged, or r.DropLog unset), reporting unknown values as Events
// on their Namespace.
func (r *NodeReconciler) dropLog(ctx context.Context, m *selectors.Model) (*nft.DropLog, error) {
	if r.DropLog == nil {
		return nil, nil
	}
	var readErr error
	namespaces := map[string]*corev1.Namespace{}
	annotation := func(name string) (string, bool) {
		ns := &corev1.Namespace{}
		if err := r.Client.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
			if !apierrors.IsNotFound(err) && readErr == nil {
				readErr = fmt.Errorf("reading namespace %s: %w", name, err)
			}
			return "", false
		}
		namespaces[name] = ns
		v, ok := ns.Annotations[LogAnnotation]
		return v, ok
	}
	dl, bad := dropLogFor(r.DropLog, &r.state.dropLogLevels, m, annotation)
	if readErr != nil {
		return nil, readErr
	}
	for _, name := range bad {
		ns := namespaces[name]
		logf.FromContext(ctx).V(2).Info("Reporting an unknown drop log level", "namespace", name, "value", ns.Annotations[LogAnnotation])
		r.Recorder.Eventf(ns, nil, corev1.EventTypeWarning, ReasonBadLogAnnotation, actionEnforcing,
			"%s: unknown value %q (want off, deny or all); node %s keeps the namespace's drop log as it was", LogAnnotation, ns.Annotations[LogAnnotation], r.NodeName)
	}
	return dl, nil
}

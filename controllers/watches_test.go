package controllers

import (
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func runningPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "redis", Labels: map[string]string{"app": "redis"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.PodSpec{
			NodeName: "node-a",
			Containers: []corev1.Container{
				{Name: "redis", Image: "redis:7", Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}},
					Env: []corev1.EnvVar{{Name: "MODE", Value: "primary"}}},
				{Name: "sidecar", Image: "busybox"},
			},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIPs:     []corev1.PodIP{{IP: "10.1.0.10"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func TestStripPodKeepsWhatSelectorsRead(t *testing.T) {
	pod := runningPod()
	out, err := newSharing().stripPod(pod.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got, want := out.(*CachedPod).Pod, selectors.PodOf(pod)
	if got.Name != want.Name || got.Node != want.Node || got.Phase != want.Phase || len(got.IPs) != 1 || len(got.Ports) != 1 || got.Labels["app"] != "redis" {
		t.Errorf("cached pod reads as %+v, want %+v", got, want)
	}
}

func TestPodChangedDropsUpdatesSelectorsDoNotRead(t *testing.T) {
	s := newSharing()
	old := runningPod()
	cachedOld, err := s.stripPod(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*corev1.Pod)
		want   bool
	}{
		{"readiness", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }, false},
		{"annotation", func(p *corev1.Pod) { p.Annotations["note"] = "x" }, false},
		{"labels", func(p *corev1.Pod) { p.Labels["app"] = "cache" }, true},
		{"address", func(p *corev1.Pod) { p.Status.PodIPs[0].IP = "10.1.0.99" }, true},
		{"phase", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }, true},
		{"node", func(p *corev1.Pod) { p.Spec.NodeName = "node-b" }, true},
		{"port", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 6380 }, true},
	} {
		cur := old.DeepCopy()
		tc.change(cur)
		cachedCur, err := s.stripPod(cur)
		if err != nil {
			t.Fatal(err)
		}
		if got := podChanged.Update(event.UpdateEvent{ObjectOld: cachedOld.(*CachedPod), ObjectNew: cachedCur.(*CachedPod)}); got != tc.want {
			t.Errorf("%s change: podChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNodeLogConstructorGivesTheDefaultsValuesWithoutAllocating checks the sync logger: the values
// the builder's default logger has (controller, namespace, name), and no allocation per sync.
func TestNodeLogConstructorGivesTheDefaultsValuesWithoutAllocating(t *testing.T) {
	var lines []string
	base := funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{}).WithValues("controller", "nodeenforcement")
	logFor := nodeLogConstructor(base, "node-a")
	nodeReq := &reconcile.Request{NamespacedName: types.NamespacedName{Name: "node-a"}}
	otherReq := &reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "x"}}

	logFor(nil).Info("starting")
	logFor(nodeReq).Info("sync")
	logFor(otherReq).Info("sync")
	want := []string{
		`"level"=0 "msg"="starting" "controller"="nodeenforcement"`,
		`"level"=0 "msg"="sync" "controller"="nodeenforcement" "namespace"="" "name"="node-a"`,
		`"level"=0 "msg"="sync" "controller"="nodeenforcement" "namespace"="ns" "name"="x"`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("logged\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if n := testing.AllocsPerRun(100, func() { _ = logFor(nodeReq) }); n != 0 {
		t.Errorf("the node's sync logger allocates %v times per sync", n)
	}
}

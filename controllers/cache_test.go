package controllers

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// fullPod is a pod as the API server sends it, with everything a kubelet and controllers add. Its
// strings are copies of their own, as a decoder hands them out, so that sharing is visible.
func fullPod(name string, tweaks ...func(*corev1.Pod)) *corev1.Pod {
	c := strings.Clone
	now := metav1.Now()
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: c("Pod"), APIVersion: c("v1")},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: c("shop"), Name: name, UID: "2f8e6f1c-5a5e-4b7e-9a55-0c4a1b2c3d4e", ResourceVersion: c("1234"),
			Generation: 1, CreationTimestamp: now, GenerateName: "web-7d9f-",
			Labels:          map[string]string{c("app"): c("web"), c("pod-template-hash"): c("7d9f")},
			Annotations:     map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-7d9f"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
		},
		Spec: corev1.PodSpec{
			NodeName: c("node-7"), ServiceAccountName: "web", RestartPolicy: corev1.RestartPolicyAlways,
			Volumes: []corev1.Volume{{Name: "token"}},
			Containers: []corev1.Container{
				{Name: c("web"), Image: "shop/web:1", Env: []corev1.EnvVar{{Name: "MODE", Value: "prod"}},
					Ports: []corev1.ContainerPort{
						{Name: c("http"), ContainerPort: 8080, Protocol: corev1.Protocol(c("TCP"))},
						{Name: c("metrics"), ContainerPort: 9090, Protocol: corev1.Protocol(c("TCP")), HostPort: 9090},
					}},
				{Name: c("sidecar"), Image: "proxy:1"},
				{Name: c("dns"), Image: "dns:1", Ports: []corev1.ContainerPort{{Name: c("dns"), ContainerPort: 53, Protocol: corev1.Protocol(c("UDP"))}}},
			},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists}},
		},
		Status: corev1.PodStatus{
			Phase:             corev1.PodPhase(c("Running")),
			PodIP:             "10.1.0.10",
			PodIPs:            []corev1.PodIP{{IP: "10.1.0.10"}, {IP: "fd00::10"}},
			HostIP:            "192.168.0.7",
			StartTime:         &now,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, RestartCount: 2}},
			QOSClass:          corev1.PodQOSBurstable,
		},
	}
	for _, tweak := range tweaks {
		tweak(pod)
	}
	return pod
}

func strip(t *testing.T, transform func(any) (any, error), obj any) any {
	t.Helper()
	out, err := transform(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

func sameMap[K comparable, V any](a, b map[K]V) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func TestStripPodKeepsExactlyWhatSelectorsAndTheInformerRead(t *testing.T) {
	got := strip(t, newSharing().stripPod, fullPod("web-1")).(*CachedPod)
	want := &CachedPod{
		Pod: selectors.Pod{
			Namespace: "shop", Name: "web-1",
			Labels: map[string]string{"app": "web", "pod-template-hash": "7d9f"},
			IPs:    []netip.Addr{netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("fd00::10")},
			Node:   "node-7",
			Phase:  corev1.PodRunning,
			Ports: []selectors.ContainerPort{
				{Name: "http", Number: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "metrics", Number: 9090, Protocol: corev1.ProtocolTCP},
				{Name: "dns", Number: 53, Protocol: corev1.ProtocolUDP},
			},
		},
		ResourceVersion: "1234",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripped pod =\n%+v\nwant\n%+v", got, want)
	}
}

// Whatever the pod, the cached pod must read as the original: selectors see the same pod.
func TestStrippedPodReadsAsTheOriginal(t *testing.T) {
	for name, pod := range map[string]*corev1.Pod{
		"running":           fullPod("web-1"),
		"host network":      fullPod("web-2", func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
		"podIP only":        fullPod("web-3", func(p *corev1.Pod) { p.Status.PodIPs = nil }),
		"pending":           fullPod("web-4", func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodPending} }),
		"no ports":          fullPod("web-5", func(p *corev1.Pod) { p.Spec.Containers = p.Spec.Containers[1:2] }),
		"no labels":         fullPod("web-6", func(p *corev1.Pod) { p.Labels = nil }),
		"unparsable podIPs": fullPod("web-7", func(p *corev1.Pod) { p.Status.PodIPs[1].IP = "not-an-ip" }),
		"mapped IPv4":       fullPod("web-8", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "::ffff:10.1.0.10"}} }),
	} {
		cached := strip(t, newSharing().stripPod, pod.DeepCopy()).(*CachedPod)
		if got, want := cached.Pod, selectors.PodOf(pod); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: cached pod reads as\n%+v\nwant\n%+v", name, got, want)
		}
		if cached.GetResourceVersion() != pod.ResourceVersion || cached.GetName() != pod.Name || cached.GetNamespace() != pod.Namespace {
			t.Errorf("%s: cached pod's metadata reads as %s/%s@%s", name, cached.GetNamespace(), cached.GetName(), cached.GetResourceVersion())
		}
	}
}

func TestStripPodSharesWhatRepeatsBetweenPods(t *testing.T) {
	s := newSharing()
	a := strip(t, s.stripPod, fullPod("web-1")).(*CachedPod)
	b := strip(t, s.stripPod, fullPod("web-2")).(*CachedPod)
	if !sameMap(a.Labels, b.Labels) {
		t.Error("two pods with equal labels do not share one label map")
	}
	for field, pair := range map[string][2]string{
		"namespace":  {a.Namespace, b.Namespace},
		"node":       {a.Node, b.Node},
		"phase":      {string(a.Phase), string(b.Phase)},
		"port name":  {a.Ports[0].Name, b.Ports[0].Name},
		"port proto": {string(a.Ports[0].Protocol), string(b.Ports[0].Protocol)},
	} {
		if !sameString(pair[0], pair[1]) {
			t.Errorf("the %s %q is not shared between the pods", field, pair[0])
		}
	}
	if &a.Ports[0] != &b.Ports[0] {
		t.Error("two pods with equal ports do not share one port list")
	}
	other := strip(t, s.stripPod, fullPod("db-1", func(p *corev1.Pod) {
		p.Labels = map[string]string{"app": "db"}
		p.Spec.Containers[0].Ports[0].ContainerPort = 5432
	})).(*CachedPod)
	if sameMap(other.Labels, a.Labels) || &other.Ports[0] == &a.Ports[0] {
		t.Error("a pod with other labels or ports shares the first pod's")
	}
	for key := range other.Labels {
		for firstKey := range a.Labels {
			if key == firstKey && !sameString(key, firstKey) {
				t.Errorf("the label key %q of two label sets is two copies of one string", key)
			}
		}
	}
}

// A cached pod is a fraction of a corev1.Pod: every agent caches every pod of the cluster.
func TestCachedPodIsSmall(t *testing.T) {
	if got, pod := unsafe.Sizeof(CachedPod{}), unsafe.Sizeof(corev1.Pod{}); got > 160 || got*6 > pod {
		t.Errorf("a CachedPod is %d bytes (a corev1.Pod %d): want at most 160", got, pod)
	}
}

func TestStripPodLeavesItsInputAlone(t *testing.T) {
	pod := fullPod("web-1")
	before := pod.DeepCopy()
	strip(t, newSharing().stripPod, pod)
	if !reflect.DeepEqual(pod, before) {
		t.Errorf("stripPod changed its input:\n%+v\nwant\n%+v", pod, before)
	}
}

// The informer may transform an object twice (a streamed initial list is transformed into a temporary
// store, and again when it replaces the cache's contents): the second time costs no copy.
func TestTransformsAreIdempotent(t *testing.T) {
	s := newSharing()
	once := strip(t, s.stripPod, fullPod("web-1"))
	if twice := strip(t, s.stripPod, once); twice != once {
		t.Errorf("stripping a cached pod gave a new pod\n%+v\nwant the same\n%+v", twice, once)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}}
	onceNS := strip(t, s.stripNamespace, ns)
	if twice := strip(t, s.stripNamespace, onceNS); !reflect.DeepEqual(twice, onceNS) {
		t.Errorf("stripping a stripped namespace gave %+v, want %+v", twice, onceNS)
	}
	np := policy("allow-web")
	oncePolicy := strip(t, s.stripPolicy, np).(*networkingv1.NetworkPolicy).DeepCopy()
	if twice := strip(t, s.stripPolicy, np); !reflect.DeepEqual(twice, oncePolicy) {
		t.Errorf("stripping a stripped policy gave %+v, want %+v", twice, oncePolicy)
	}
}

// The predicates compare old and new cached pods: they must still tell the changes selectors read
// from those they do not.
func TestPodChangedOnStrippedPods(t *testing.T) {
	s := newSharing()
	old := strip(t, s.stripPod, fullPod("web-1")).(*CachedPod)
	for _, tc := range []struct {
		name   string
		change func(*corev1.Pod)
		want   bool
	}{
		{"readiness", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }, false},
		{"restart count", func(p *corev1.Pod) { p.Status.ContainerStatuses[0].RestartCount++ }, false},
		{"labels", func(p *corev1.Pod) { p.Labels["app"] = "shop" }, true},
		{"address", func(p *corev1.Pod) { p.Status.PodIPs[0].IP = "10.1.0.99" }, true},
		{"phase", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }, true},
		{"node", func(p *corev1.Pod) { p.Spec.NodeName = "node-8" }, true},
		{"host network", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, true},
		{"port", func(p *corev1.Pod) { p.Spec.Containers[2].Ports[0].ContainerPort = 5353 }, true},
	} {
		cur := fullPod("web-1", tc.change)
		cur.ResourceVersion = "1235"
		stripped := strip(t, s.stripPod, cur).(*CachedPod)
		if got := podChanged.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: stripped}); got != tc.want {
			t.Errorf("%s change: podChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStripNamespaceKeepsNameAndLabels(t *testing.T) {
	s := newSharing()
	ns := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: strings.Clone("shop"), UID: "u", ResourceVersion: "7",
			Labels:      map[string]string{"team": "a", "kubernetes.io/metadata.name": "shop"},
			Annotations: map[string]string{"note": "x"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
	got := strip(t, s.stripNamespace, ns).(*corev1.Namespace)
	want := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", ResourceVersion: "7",
		Labels: map[string]string{"team": "a", "kubernetes.io/metadata.name": "shop"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripped namespace = %+v, want %+v", got, want)
	}
	pod := strip(t, s.stripPod, fullPod("web-1")).(*CachedPod)
	if !sameString(got.Name, pod.Namespace) {
		t.Error("the namespace's name and its pods' namespace are two copies of one string")
	}
	// The drop log annotation is kept, and no other.
	ns.Annotations[LogAnnotation] = "deny"
	got = strip(t, s.stripNamespace, ns).(*corev1.Namespace)
	if want := map[string]string{LogAnnotation: "deny"}; !reflect.DeepEqual(got.Annotations, want) {
		t.Errorf("stripped annotations = %v, want %v", got.Annotations, want)
	}
}

func policy(name string) *networkingv1.NetworkPolicy {
	c := strings.Clone
	port := intstr.FromString("http")
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: c("shop"), Name: name, UID: "7c1d2e3f-0000-4000-8000-000000000001", ResourceVersion: "9", Generation: 3,
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{c("app"): c("web")}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{c("app"): c("web")}},
						NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
							{Key: c("team"), Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{c("app"): c("db")}}}}}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

func TestStripPolicyKeepsItsSpecAndSharesSelectors(t *testing.T) {
	s := newSharing()
	np := policy("allow-web")
	spec := np.Spec.DeepCopy()
	got := strip(t, s.stripPolicy, np).(*networkingv1.NetworkPolicy)
	if !reflect.DeepEqual(&got.Spec, spec) {
		t.Errorf("stripped spec =\n%+v\nwant\n%+v", got.Spec, spec)
	}
	if got.Annotations != nil || got.ManagedFields != nil || got.Generation != 3 || got.UID == "" || got.ResourceVersion != "9" {
		t.Errorf("stripped metadata = %+v, want no annotations or managed fields, and the uid, generation and resourceVersion", got.ObjectMeta)
	}
	if !sameMap(got.Spec.PodSelector.MatchLabels, got.Spec.Ingress[0].From[0].PodSelector.MatchLabels) {
		t.Error("equal matchLabels within a policy are two maps")
	}
	other := strip(t, s.stripPolicy, policy("allow-web-too")).(*networkingv1.NetworkPolicy)
	if !sameMap(got.Spec.PodSelector.MatchLabels, other.Spec.PodSelector.MatchLabels) ||
		!sameString(got.Spec.Ingress[0].From[0].NamespaceSelector.MatchExpressions[0].Key, other.Spec.Ingress[0].From[0].NamespaceSelector.MatchExpressions[0].Key) {
		t.Error("two policies with equal selectors do not share them")
	}
	changed := policy("allow-web")
	changed.Generation = 4
	if !policyChanged.Update(event.UpdateEvent{ObjectOld: got, ObjectNew: strip(t, s.stripPolicy, changed).(*networkingv1.NetworkPolicy)}) {
		t.Error("a new generation of a stripped policy is not seen as a change")
	}
	if policyChanged.Update(event.UpdateEvent{ObjectOld: got, ObjectNew: strip(t, s.stripPolicy, policy("allow-web")).(*networkingv1.NetworkPolicy)}) {
		t.Error("an update of nothing the agent reads is seen as a change")
	}
	audited := policy("allow-web")
	audited.Annotations[selectors.ModeAnnotation] = selectors.ModeAudit
	auditedGot := strip(t, s.stripPolicy, audited).(*networkingv1.NetworkPolicy)
	if !maps.Equal(auditedGot.Annotations, map[string]string{selectors.ModeAnnotation: selectors.ModeAudit}) {
		t.Errorf("stripped annotations = %v, want the mode alone", auditedGot.Annotations)
	}
	if !policyChanged.Update(event.UpdateEvent{ObjectOld: got, ObjectNew: auditedGot}) {
		t.Error("a mode change, which keeps the generation, is not seen as a change")
	}
}

// Any other object (a tombstone of a deleted one, say) goes through untouched.
func TestTransformsPassOtherObjects(t *testing.T) {
	s := newSharing()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
	for _, transform := range []func(any) (any, error){s.stripPod, s.stripNamespace, s.stripPolicy} {
		if got := strip(t, transform, node); got != node {
			t.Errorf("a transform replaced a %T", node)
		}
	}
}

func TestPendingChangesKeepTheEarliestAndNeverLoseOne(t *testing.T) {
	pod := func(name string) client.Object {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	}
	t0 := time.Now()
	ref := func(name string) objectRef { return objectRef{kind: kindPod, namespace: "default", name: name} }
	var p pendingChanges
	p.note(kindPod, pod("a"), t0)
	p.note(kindPod, pod("a"), t0.Add(time.Second)) // a later change of the same object
	p.note(kindPod, pod("b"), t0.Add(time.Second))
	first := p.take()
	if first.full || len(first.objects) != 2 || !first.objects[ref("a")].Equal(t0) {
		t.Fatalf("taken = %+v, want a (at t0) and b", first)
	}
	if p.pending() {
		t.Error("changes are still pending after take")
	}

	// A failed sync puts its batch back; a newer note of the same object keeps the earlier time.
	p.note(kindPod, pod("a"), t0.Add(2*time.Second))
	p.putBack(first)
	again := p.take()
	if len(again.objects) != 2 || !again.objects[ref("a")].Equal(t0) {
		t.Errorf("after putBack: %+v, want a at t0 and b", again)
	}

	// Past maxPendingObjects, the next sync re-reads everything.
	for i := range maxPendingObjects + 1 {
		p.note(kindPod, pod(fmt.Sprint(i)), t0)
	}
	if overflow := p.take(); !overflow.full || len(overflow.objects) != maxPendingObjects {
		t.Errorf("after %d changes: full = %v with %d objects, want a full re-read", maxPendingObjects+1, overflow.full, len(overflow.objects))
	}
	p.putBack(changeBatch{full: true})
	if back := p.take(); !back.full {
		t.Error("a full batch put back is no longer full")
	}
}

package explain_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftpolicy/nftpolicy/explain"
)

// Explain over API objects converted as the agent converts them: addresses from status.podIPs,
// named ports from the containers, namespace labels.
func TestSnapshotFromObjects(t *testing.T) {
	pod := func(name, app, ip string, ports ...corev1.ContainerPort) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": app}},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: ports}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}}},
		}
	}
	pods := []corev1.Pod{
		pod("busybox", "busybox", "10.0.1.10"),
		pod("redis", "redis", "10.0.1.20", corev1.ContainerPort{Name: "redis", ContainerPort: 6379}),
	}
	nss := []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "a"}}}}
	pols := []networkingv1.NetworkPolicy{*makePolicy("from-team-a", map[string]string{"app": "redis"},
		ingressRule(peers(nsPodsPeer(map[string]string{"team": "a"}, map[string]string{"app": "busybox"})), tcpNamed("redis")))}
	s := explain.SnapshotFromObjects(pods, nss, pols)
	port, _ := explain.ParsePortSpec("redis")
	got, err := explain.Explain(s, explain.PodTarget("default", "busybox"), explain.PodTarget("default", "redis"), port, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Allowed || got.Ingress.AdmittedBy == nil || got.Connection.Port != 6379 {
		t.Errorf("answer %+v, ingress %+v: want allowed on 6379 by from-team-a", got, got.Ingress)
	}
	nss[0].Labels["team"] = "b"
	got, err = explain.Explain(explain.SnapshotFromObjects(pods, nss, pols), explain.PodTarget("default", "busybox"), explain.PodTarget("default", "redis"), port, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Allowed || got.Ingress.Rejections[0].Reasons[0].Kind != explain.ReasonPeerNamespaceSelector {
		t.Errorf("ingress %+v: want denied by the namespace selector", got.Ingress)
	}
}

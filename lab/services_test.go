package lab

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

func TestPodServiceSelectsThePodOnEveryServedPort(t *testing.T) {
	l := &Lab{opts: Options{IPFamily: FamilyDual}}
	pod := scenario.Pod{Name: "a", Labels: map[string]string{"pod": "a"}, Ports: []scenario.Port{
		{Name: "serve-80-tcp", Port: 80, Protocol: scenario.ProtocolTCP},
		{Port: 80, Protocol: scenario.ProtocolUDP},
		{Name: "assoc", Port: 9000, Protocol: scenario.ProtocolSCTP},
	}}
	svc := l.podService("x", pod)
	if svc.Namespace != "x" || svc.Name != "svc-a" || svc.Labels[ManagedByLabel] != managedByLab {
		t.Errorf("metadata = %+v", svc.ObjectMeta)
	}
	if got := svc.Spec.Selector; len(got) != 1 || got[scenario.PodServiceLabel] != "a" {
		t.Errorf("selector = %v, want only %s=a", got, scenario.PodServiceLabel)
	}
	want := []corev1.ServicePort{
		{Name: "serve-80-tcp", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP},
		{Name: "udp-80", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolUDP},
	}
	if len(svc.Spec.Ports) != len(want) {
		t.Fatalf("ports = %+v, want %+v (no SCTP: the lab serves none)", svc.Spec.Ports, want)
	}
	for i := range want {
		if svc.Spec.Ports[i] != want[i] {
			t.Errorf("port %d = %+v, want %+v", i, svc.Spec.Ports[i], want[i])
		}
	}
	if *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(svc.Spec.IPFamilies) != 2 {
		t.Errorf("dual-stack lab: policy %s, families %v", *svc.Spec.IPFamilyPolicy, svc.Spec.IPFamilies)
	}
	if got := withPodServiceLabel("a", map[string]string{"pod": "b"}); got[scenario.PodServiceLabel] != "a" || got["pod"] != "b" {
		t.Errorf("relabelled pod's labels = %v, want the file's and the lab's", got)
	}

	l.opts.IPFamily = FamilyIPv6
	if svc := l.podService("x", pod); *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || svc.Spec.IPFamilies[0] != corev1.IPv6Protocol {
		t.Errorf("IPv6 lab: policy %s, families %v", *svc.Spec.IPFamilyPolicy, svc.Spec.IPFamilies)
	}
	if svc := l.podService("x", scenario.Pod{Name: "quiet", Ports: []scenario.Port{{Port: 1, Protocol: scenario.ProtocolSCTP}}}); svc != nil {
		t.Errorf("a pod serving no TCP or UDP got Service %+v", svc)
	}
}

func TestCustomServiceDefaultsTargetPortToPort(t *testing.T) {
	l := &Lab{opts: Options{IPFamily: FamilyIPv4}}
	svc := l.customService("default", scenario.Service{Name: "frontend", Selector: map[string]string{"app": "guestbook"}, Ports: []scenario.ServicePort{
		{Name: "http", Port: 80, TargetPort: intstr.FromString("http-server"), Protocol: scenario.ProtocolTCP},
		{Name: "redis", Port: 6379, Protocol: scenario.ProtocolTCP},
	}})
	if got := svc.Spec.Ports[0].TargetPort; got != intstr.FromString("http-server") {
		t.Errorf("named targetPort = %v", got)
	}
	if got := svc.Spec.Ports[1].TargetPort; got != intstr.FromInt32(6379) {
		t.Errorf("unset targetPort = %v, want the port", got)
	}
}

func TestReadyEndpoints(t *testing.T) {
	http := corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}
	slice := func(ready *bool, portName string, addr string) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
	}
	addr := netip.MustParseAddr("198.18.0.10")
	for _, tt := range []struct {
		name   string
		slices []discoveryv1.EndpointSlice
		want   bool
	}{
		{"no slice", nil, false},
		{"ready", []discoveryv1.EndpointSlice{slice(ptr.To(true), "http", "198.18.0.10")}, true},
		{"ready unset reads as ready", []discoveryv1.EndpointSlice{slice(nil, "http", "198.18.0.10")}, true},
		{"not ready", []discoveryv1.EndpointSlice{slice(ptr.To(false), "http", "198.18.0.10")}, false},
		{"another port's slice", []discoveryv1.EndpointSlice{slice(ptr.To(true), "admin", "198.18.0.10")}, false},
	} {
		if got := hasReadyEndpointFor(tt.slices, http); got != tt.want {
			t.Errorf("%s: hasReadyEndpointFor = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !hasReadyAddress([]discoveryv1.EndpointSlice{slice(nil, "http", "198.18.0.10")}, addr) ||
		hasReadyAddress([]discoveryv1.EndpointSlice{slice(nil, "http", "198.18.0.11")}, addr) ||
		hasReadyAddress([]discoveryv1.EndpointSlice{slice(ptr.To(false), "http", "198.18.0.10")}, addr) {
		t.Error("hasReadyAddress does not find exactly the ready endpoint of the pod's address")
	}
}

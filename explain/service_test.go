package explain_test

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/explain"
)

// redisMaster is a Service whose port "redis" 6379 targets the pods' named port "redis-server",
// which the pods define as 6380: the EndpointSlices hold the number.
func redisMaster() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "redis-master"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "redis", Port: 6379, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("redis-server")},
			{Name: "metrics", Port: 9121, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9121)},
		}},
	}
}

type endpoint struct {
	pod   string
	addr  string
	ready *bool
}

func slice(name, service string, family discoveryv1.AddressType, portName string, port int32, endpoints ...endpoint) discoveryv1.EndpointSlice {
	proto := corev1.ProtocolTCP
	es := discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: family,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, e := range endpoints {
		ep := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: e.pod}
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

func TestServiceBackends(t *testing.T) {
	notReady := false
	slices := []discoveryv1.EndpointSlice{
		slice("redis-master-v4", "redis-master", discoveryv1.AddressTypeIPv4, "redis", 6380,
			endpoint{pod: "redis-1", addr: "10.0.1.21"}, endpoint{pod: "redis-0", addr: "10.0.1.20"},
			endpoint{pod: "redis-2", addr: "10.0.1.22", ready: &notReady}),
		slice("redis-master-v6", "redis-master", discoveryv1.AddressTypeIPv6, "redis", 6380,
			endpoint{pod: "redis-0", addr: "fd00::1:20"}),
		slice("redis-master-metrics", "redis-master", discoveryv1.AddressTypeIPv4, "metrics", 9121,
			endpoint{pod: "redis-0", addr: "10.0.1.20"}),
		slice("other", "redis-replica", discoveryv1.AddressTypeIPv4, "redis", 7000,
			endpoint{pod: "replica-0", addr: "10.0.1.30"}),
		slice("external", "redis-master", discoveryv1.AddressTypeIPv4, "redis", 6380,
			endpoint{addr: "198.51.100.5"}),
	}
	for _, port := range []intstr.IntOrString{intstr.FromString("redis"), intstr.FromInt32(6379)} {
		got, err := explain.ServiceBackends(redisMaster(), slices, port, "")
		if err != nil {
			t.Fatalf("port %s: %v", port.String(), err)
		}
		want := []explain.Backend{
			{IPs: addrs("198.51.100.5"), TargetPort: 6380, Protocol: corev1.ProtocolTCP},
			{Pod: "default/redis-0", IPs: addrs("10.0.1.20", "fd00::1:20"), TargetPort: 6380, Protocol: corev1.ProtocolTCP},
			{Pod: "default/redis-1", IPs: addrs("10.0.1.21"), TargetPort: 6380, Protocol: corev1.ProtocolTCP},
		}
		if len(got) != len(want) {
			t.Fatalf("port %s: backends %+v, want %+v", port.String(), got, want)
		}
		for i := range want {
			if got[i].Pod != want[i].Pod || got[i].TargetPort != want[i].TargetPort || got[i].Protocol != want[i].Protocol || !equalAddrs(got[i].IPs, want[i].IPs) {
				t.Errorf("port %s: backend %d = %+v, want %+v", port.String(), i, got[i], want[i])
			}
		}
		if tg := got[1].Target(); !tg.IsPod() || tg.String() != "default/redis-0" {
			t.Errorf("backend target %v, want the pod", tg)
		}
		if tg := got[0].Target(); tg.IsPod() || tg.IP != netip.MustParseAddr("198.51.100.5") {
			t.Errorf("backend target %v, want the address", tg)
		}
		if p := got[1].Port(); p != (explain.PortSpec{Protocol: corev1.ProtocolTCP, Number: 6380}) {
			t.Errorf("backend port %+v", p)
		}
	}
}

func TestServiceBackendsErrors(t *testing.T) {
	slices := []discoveryv1.EndpointSlice{slice("redis-master-v4", "redis-master", discoveryv1.AddressTypeIPv4, "redis", 6380)}
	external := redisMaster()
	external.Spec.Type = corev1.ServiceTypeExternalName
	dns := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "dns"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
	}}}
	tests := []struct {
		name     string
		svc      *corev1.Service
		port     intstr.IntOrString
		protocol corev1.Protocol
		want     string
	}{
		{"unknown port", redisMaster(), intstr.FromInt32(80), "", "no port 80 (ports: [redis=6379/TCP metrics=9121/TCP])"},
		{"wrong protocol", redisMaster(), intstr.FromString("redis"), corev1.ProtocolUDP, "no port redis"},
		{"no ready endpoint", redisMaster(), intstr.FromString("redis"), "", "has no ready endpoint for port redis=6379/TCP"},
		{"ExternalName", external, intstr.FromString("redis"), "", "ExternalName"},
		{"ambiguous port", dns, intstr.FromInt32(53), "", "give the protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := explain.ServiceBackends(tt.svc, slices, tt.port, tt.protocol)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

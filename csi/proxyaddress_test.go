package csi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/fake"
)

// TestStatusProxyAddressIsTrustedOnlyForTheProxy pins that a Connector's
// status.proxy.httpAddress.url decides where the volume's files send the
// pod's token only when its host is one of the proxy's own names or the
// proxy its class declares; any other status address is replaced by the
// derived one, and the log says why.
func TestStatusProxyAddressIsTrustedOnlyForTheProxy(t *testing.T) {
	derived := publicurl.Default + "/namespaces/" + podNamespace + "/connectors/git"
	cases := []struct {
		name, status string
		proxy        *v1alpha1.ProxySpec
		trusted      bool
		// derived, when set, is the address without status (the class's
		// own proxy); default: the path form under the public URL.
		derived string
	}{
		{"the public host", "http://connectors-proxy.connectors-system.svc/custom/git", nil, true, ""},
		{"another name of the proxy's Service", "http://connectors-proxy.connectors-system.svc.cluster.local:8080/custom/git", nil, true, ""},
		{"a host of someone who may write status", "http://collector.evil.test/namespaces/team-a/connectors/git", nil, false, ""},
		{"the proxy's name as a prefix of another host", "http://connectors-proxy.connectors-system.svc.evil.test/x", nil, false, ""},
		{"userinfo on the proxy's host", "http://x:y@connectors-proxy.connectors-system.svc/x", nil, false, ""},
		{"not http", "ftp://connectors-proxy.connectors-system.svc/x", nil, false, ""},
		{"the class's proxy URI", "https://class-proxy.example.com/git",
			&v1alpha1.ProxySpec{Destination: v1alpha1.Destination{URI: "https://class-proxy.example.com"}}, true, ""},
		{"the class's proxy Service", "http://git-proxy.tools.svc:8080/git",
			&v1alpha1.ProxySpec{Destination: v1alpha1.Destination{Ref: &v1alpha1.KReference{Kind: "Service", Name: "git-proxy", Namespace: "tools"}}}, true, ""},
		{"another host than the class's proxy", "https://elsewhere.example.com/git",
			&v1alpha1.ProxySpec{Destination: v1alpha1.Destination{URI: "https://class-proxy.example.com"}}, false, "https://class-proxy.example.com"},
		{"a host-form name of another Connector", "http://c-other.team-a.svc.cluster.local", nil, false, ""},
		// Without its Service: see TestHostFormAddressIsTrustedOnlyForTheProjectsService.
		{"the Connector's own host-form name, no Service", "http://c-git." + podNamespace + ".svc.cluster.local", nil, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs fake.LogBuffer
			h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
			class := gitClass()
			class.Spec.Proxy = c.proxy
			h.objects.AddClass(class)
			conn := h.objects.addConnector(podNamespace, "git", "git", "https://git.example.com/org")
			conn.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: c.status}}
			req := publishRequest(t, "v", h.target("v"))
			req.VolumeContext[csi.AttrConfigurationNames] = "gitconfig"
			require.NoError(t, h.publish(context.Background(), req))
			want := derived
			if c.derived != "" {
				want = c.derived
			}
			if c.trusted {
				want = c.status
			}
			assert.Equal(t, want, readVolumeFile(t, req.TargetPath, "connector.status.proxyAddress"))
			gitconfig := readVolumeFile(t, req.TargetPath, ".gitconfig")
			assert.Contains(t, gitconfig, `[http "`+want+`/"]`)
			logged := strings.Contains(logs.String(), "not using the connector's")
			assert.Equal(t, !c.trusted, logged, "a distrusted status address is logged, a trusted one is not")
			assert.NotContains(t, logs.String(), "x:y@", "the log never holds a status URL's userinfo")
		})
	}
}

// TestHostFormAddressIsTrustedOnlyForTheProjectsService pins issue 22
// finding 4: the Connector's host-form name c-<name>.<ns>.svc, whether from
// status (written by someone who may write status while the status writer
// is off) or derived for a proxy-resolver: host class, is written into the
// volume only when the Service of that name is the project's (its labels
// and a controller reference to this Connector's UID) and an ExternalName
// to the proxy. Any other Service of that name may lead anywhere: the
// volume gets the path form and the log says why.
func TestHostFormAddressIsTrustedOnlyForTheProjectsService(t *testing.T) {
	const uid = types.UID("5a1c6c4e-0000-4000-8000-000000000001")
	hostForm := "http://c-git." + podNamespace + ".svc.cluster.local"
	path := publicurl.Default + "/namespaces/" + podNamespace + "/connectors/git"
	proxyHost := "connectors-proxy.connectors-system.svc.cluster.local"
	service := func(edit func(*corev1.Service)) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: podNamespace, Name: "c-git",
				Labels: map[string]string{v1alpha1.HostFormManagedByLabel: v1alpha1.HostFormManagedByValue, v1alpha1.HostFormConnectorLabel: "git"},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: v1alpha1.GroupVersion.String(), Kind: "Connector", Name: "git", UID: uid, Controller: ptr.To(true),
				}},
			},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: proxyHost},
		}
		if edit != nil {
			edit(s)
		}
		return s
	}
	cases := []struct {
		name    string
		svc     *corev1.Service
		trusted bool
		reason  string
	}{
		{"no Service", nil, false, "does not exist"},
		{"a user's Service, ExternalName to elsewhere", service(func(s *corev1.Service) {
			s.Labels, s.OwnerReferences, s.Spec.ExternalName = nil, nil, "collector.evil.test"
		}), false, "lacks the labels"},
		{"a user's Service to the proxy, without labels", service(func(s *corev1.Service) { s.Labels = nil }), false, "lacks the labels"},
		{"the labels of another Connector", service(func(s *corev1.Service) { s.Labels[v1alpha1.HostFormConnectorLabel] = "other" }), false, "lacks the labels"},
		{"the labels but another owner UID", service(func(s *corev1.Service) { s.OwnerReferences[0].UID = "another-uid" }), false, "not controlled by this connector"},
		{"the labels but an owner that is not the controller", service(func(s *corev1.Service) { s.OwnerReferences[0].Controller = nil }), false, "not controlled by this connector"},
		{"the labels and owner, ExternalName elsewhere", service(func(s *corev1.Service) { s.Spec.ExternalName = "collector.evil.test" }), false, "not an ExternalName Service to the proxy"},
		{"the labels and owner, a ClusterIP Service", service(func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ExternalName: proxyHost}
		}), false, "not an ExternalName Service to the proxy"},
		{"the project's Service", service(nil), true, ""},
		{"the project's Service, ExternalName with a trailing dot", service(func(s *corev1.Service) { s.Spec.ExternalName = proxyHost + "." }), true, ""},
	}
	for _, from := range []string{"status", "derived"} {
		for _, c := range cases {
			t.Run(from+"/"+c.name, func(t *testing.T) {
				var logs fake.LogBuffer
				h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
				class := gitClass()
				conn := h.objects.addConnector(podNamespace, "git", "git", "https://git.example.com/org")
				conn.UID = uid
				if from == "status" {
					conn.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: hostForm}}
				} else {
					class.Annotations = map[string]string{v1alpha1.ProxyResolverAnnotation: v1alpha1.ProxyResolverHost}
				}
				h.objects.AddClass(class)
				if c.svc != nil {
					h.objects.AddService(c.svc)
				}
				req := publishRequest(t, "v", h.target("v"))
				req.VolumeContext[csi.AttrConfigurationNames] = "gitconfig"
				require.NoError(t, h.publish(context.Background(), req))
				want := path
				if c.trusted {
					want = hostForm
				}
				assert.Equal(t, want, readVolumeFile(t, req.TargetPath, "connector.status.proxyAddress"))
				assert.Contains(t, readVolumeFile(t, req.TargetPath, ".gitconfig"), `[http "`+want+`/"]`)
				if c.trusted {
					assert.NotContains(t, logs.String(), "not using the connector's")
					return
				}
				assert.Contains(t, logs.String(), "host-form")
				assert.Contains(t, logs.String(), c.reason, "the log says why")
				assert.NotContains(t, logs.String(), testToken)
			})
		}
	}
}

// TestHostFormAddressWithoutAServiceReader pins that a plugin given no
// Services reader trusts no host-form name.
func TestHostFormAddressWithoutAServiceReader(t *testing.T) {
	h := newHarness(t, func(o *csi.Options) { o.Services = nil })
	conn := h.objects.addConnector(podNamespace, "git", "git", "https://git.example.com/org")
	conn.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: "http://c-git." + podNamespace + ".svc.cluster.local"}}
	req := publishRequest(t, "v", h.target("v"))
	require.NoError(t, h.publish(context.Background(), req))
	assert.Equal(t, publicurl.Default+"/namespaces/"+podNamespace+"/connectors/git", readVolumeFile(t, req.TargetPath, "connector.status.proxyAddress"))
}

// TestHostFormAddressUnderTheClassProxy pins that under a class with its
// own proxy the host-form Service must lead to that proxy, and that a
// distrusted host-form status address gives way to the class's proxy.
func TestHostFormAddressUnderTheClassProxy(t *testing.T) {
	const uid = types.UID("5a1c6c4e-0000-4000-8000-000000000002")
	hostForm := "http://c-git." + podNamespace + ".svc.cluster.local:8080"
	for _, c := range []struct {
		name, externalName, want string
	}{
		{"ExternalName to the class proxy", "git-proxy.tools.svc.cluster.local", hostForm},
		{"ExternalName to the node proxy", "connectors-proxy.connectors-system.svc.cluster.local", "http://git-proxy.tools.svc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			class := gitClass()
			class.Spec.Proxy = &v1alpha1.ProxySpec{Destination: v1alpha1.Destination{Ref: &v1alpha1.KReference{Kind: "Service", Name: "git-proxy", Namespace: "tools"}}}
			h.objects.AddClass(class)
			conn := h.objects.addConnector(podNamespace, "git", "git", "https://git.example.com/org")
			conn.UID = uid
			conn.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: hostForm}}
			h.objects.AddService(&corev1.Service{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: podNamespace, Name: "c-git",
					Labels: map[string]string{v1alpha1.HostFormManagedByLabel: v1alpha1.HostFormManagedByValue, v1alpha1.HostFormConnectorLabel: "git"},
					OwnerReferences: []metav1.OwnerReference{{
						APIVersion: v1alpha1.GroupVersion.String(), Kind: "Connector", Name: "git", UID: uid, Controller: ptr.To(true),
					}},
				},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: c.externalName},
			})
			req := publishRequest(t, "v", h.target("v"))
			require.NoError(t, h.publish(context.Background(), req))
			assert.Equal(t, c.want, readVolumeFile(t, req.TargetPath, "connector.status.proxyAddress"))
		})
	}
}

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

// A volume whose configuration.names are partly missing mounts with the
// ones found, and the node raises a Warning Event on the pod naming the
// others, as upstream does. Naming none that exist still fails NotFound.
func TestPartlyMissingConfigurationsRaiseAPodEvent(t *testing.T) {
	t.Parallel()
	s := newStory(t, "e2e-compat")
	class := "compat-" + s.ns
	s.create(&v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: class},
		Spec: v1alpha1.ConnectorClassSpec{Configurations: []v1alpha1.Configuration{{
			Name: "config",
			Data: map[string]string{"config.txt": "address={{ .connector.spec.address }}\n"},
		}}},
	})
	t.Cleanup(func() {
		_ = s.h.env.Client.Delete(context.Background(), &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: class}})
	})
	s.connector(connectorSpec{name: "tool", class: class, address: "https://tool.example.com"})
	s.serviceAccount(s.ns, "reader")
	s.allow(s.ns, "reader", "tool")
	tok := s.token(s.ns, "reader")

	v := s.publish("reader", map[string]string{
		"connectors":          "tool",
		"configuration.names": "config,maven,npmrc",
	}, tok)
	if got := v.file(t, "config.txt"); got != "address=https://tool.example.com\n" {
		t.Errorf("config.txt = %q", got)
	}

	var event *eventsv1.Event
	deadline := time.Now().Add(30 * time.Second)
	for event == nil {
		list, err := s.h.env.Kube.EventsV1().Events(s.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range list.Items {
			if e.Regarding.Kind == "Pod" && e.Regarding.Name == v.pod.Name {
				event = &list.Items[i]
			}
		}
		if event == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no Event on pod %s/%s after 30s", s.ns, v.pod.Name)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if event.Type != "Warning" || event.Reason != "ConfigurationNotFound" || string(event.Regarding.UID) != v.pod.UID {
		t.Errorf("event = type %q reason %q regarding %+v", event.Type, event.Reason, event.Regarding)
	}
	for _, want := range []string{`"maven"`, `"npmrc"`, "configuration.names"} {
		if !strings.Contains(event.Note, want) {
			t.Errorf("event note %q does not name %s", event.Note, want)
		}
	}
	if strings.Contains(event.Note, `"config"`) {
		t.Errorf("event note %q names a configuration that was found", event.Note)
	}

	none := s.newVolume("reader", map[string]string{"connectors": "tool", "configuration.names": "maven,npmrc,!context.token"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.h.kubelet.Publish(ctx, none.id, none.target, none.pod, none.attrs, map[string]kubelet.Token{audience: tok})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), `configurations "maven", "npmrc" not found`) {
		t.Errorf("publishing with no configuration found: %v, want NotFound naming both", err)
	}
}

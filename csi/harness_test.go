package csi_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/fake"
)

// Fixture values shared by the tests.
const (
	podNamespace = "team-a"
	podName      = "app-0"
	podSA        = "builder"
	audience     = csi.DefaultAudience
	testToken    = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLWJvZHk.c2lnbmF0dXJlLXZhbHVl"
	testCAPEM    = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
)

// fakeObjects is the shared in-memory kube.Objects with this package's
// fixture builder.
type fakeObjects struct{ *fake.Objects }

func newFakeObjects() *fakeObjects { return &fakeObjects{fake.NewObjects()} }

func (f *fakeObjects) addConnector(ns, name, class, address string) *v1alpha1.Connector {
	return f.AddConnector(&v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: class, Address: address},
	})
}

// newAuthorizer allows every Connector until a test denies one.
func newAuthorizer() *fake.Auth {
	a := fake.NewAuth()
	a.AllowAll()
	return a
}

// gitClass is a ConnectorClass with one template configuration.
func gitClass() *v1alpha1.ConnectorClass {
	return &v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: "git"},
		Spec: v1alpha1.ConnectorClassSpec{Configurations: []v1alpha1.Configuration{{
			Name: "notes",
			Data: map[string]string{"notes.txt": "{{ range .connectors }}{{ .spec.address }}\n{{ end }}"},
		}}},
	}
}

// harness is a real Server on a unix socket with fakes behind it.
type harness struct {
	server   *csi.Server
	node     csipb.NodeClient
	identity csipb.IdentityClient
	conn     *grpc.ClientConn
	mounter  mount.Interface
	objects  *fakeObjects
	auth     *fake.Auth
	registry *prometheus.Registry
	// dir holds the socket and the volume targets.
	dir string
}

// newHarness starts a Server with a fake mounter (unless opts sets one),
// the fixture objects, and a client. edit may change the options.
func newHarness(t testing.TB, edit func(*csi.Options)) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "csi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	h := &harness{
		objects:  newFakeObjects(),
		auth:     newAuthorizer(),
		registry: prometheus.NewRegistry(),
		dir:      dir,
	}
	h.objects.AddClass(gitClass())
	h.objects.addConnector(podNamespace, "git", "git", "https://git.example.com/org")
	h.objects.addConnector("shared", "registry", "git", "https://registry.example.com")
	opts := csi.Options{
		NodeID:     "node-1",
		Endpoint:   "unix://" + filepath.Join(dir, "plugin", "csi.sock"),
		Version:    "v0.0.0-test",
		Objects:    h.objects,
		Services:   h.objects,
		Authorizer: h.auth,
		CACertPEM:  []byte(testCAPEM),
		Mounter:    newFakeMounter(),
		Registerer: h.registry,
		// The targets live in the test's directory.
		KubeletRoot: dir,
	}
	if edit != nil {
		edit(&opts)
	}
	h.mounter = opts.Mounter
	h.start(t, opts)
	return h
}

// start builds, starts and connects to a server; the server stops in
// cleanup.
func (h *harness) start(t testing.TB, opts csi.Options) {
	t.Helper()
	srv, err := csi.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	conn, err := grpc.NewClient("unix://"+srv.Socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	h.server, h.conn = srv, conn
	h.node = csipb.NewNodeClient(conn)
	h.identity = csipb.NewIdentityClient(conn)
	t.Cleanup(func() { h.stop() })
}

// stop closes the client and stops the server; it is safe to repeat.
func (h *harness) stop() {
	if h.conn != nil {
		_ = h.conn.Close()
		h.conn = nil
	}
	if h.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.server.Stop(ctx)
		h.server = nil
	}
}

// newFakeMounter is mount-utils' fake whose Unmount empties the directory,
// as unmounting a tmpfs does.
func newFakeMounter() *mount.FakeMounter {
	m := mount.NewFakeMounter(nil)
	m.UnmountFunc = func(path string) error {
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	return m
}

// tokensJSON is the kubelet's serviceAccount.tokens value.
func tokensJSON(t testing.TB, aud, token string, expires time.Time) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{aud: map[string]any{
		"token":               token,
		"expirationTimestamp": expires.UTC().Format(time.RFC3339),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// volumeContext is what kubelet sends for an inline volume naming the
// connectors, with the token in volume_context.
func volumeContext(t testing.TB, connectors, token string) map[string]string {
	t.Helper()
	return map[string]string{
		csi.AttrConnectors:     connectors,
		csi.AttrPodNamespace:   podNamespace,
		csi.AttrPodName:        podName,
		csi.AttrPodUID:         "0b6c6f4e-1111-2222-3333-444455556666",
		csi.AttrServiceAccount: podSA,
		csi.AttrEphemeral:      "true",
		csi.TokensKey:          tokensJSON(t, audience, token, time.Now().Add(time.Hour)),
	}
}

// publishRequest is a valid publish request of volume id at target.
func publishRequest(t testing.TB, id, target string) *csipb.NodePublishVolumeRequest {
	t.Helper()
	return &csipb.NodePublishVolumeRequest{
		VolumeId:   id,
		TargetPath: target,
		Readonly:   true,
		VolumeCapability: &csipb.VolumeCapability{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		VolumeContext: volumeContext(t, "git", testToken),
	}
}

func (h *harness) target(id string) string {
	return filepath.Join(h.dir, "pods", id, "mount")
}

func (h *harness) publish(ctx context.Context, req *csipb.NodePublishVolumeRequest) error {
	_, err := h.node.NodePublishVolume(ctx, req)
	return err
}

func (h *harness) unpublish(ctx context.Context, id, target string) error {
	_, err := h.node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

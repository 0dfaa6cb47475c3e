package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

// story is one end-to-end test: its own namespace, the credentials it must
// never see leak, and everything it ran.
type story struct {
	t  *testing.T
	h  *harness
	ns string

	mu sync.Mutex
	// credentials are the tools' real secrets, in the forms they could leak
	// in (raw, and as a Basic or base64 header value), by label.
	credentials map[string]string
	// unlogged are the credentials and the pod tokens: no line of the node
	// log may hold one.
	unlogged map[string]string
}

// newStory starts (or reuses) the harness and creates a namespace. When the
// test ends it checks the node log for every credential and token the
// story registered.
func newStory(t *testing.T, prefix string) *story {
	t.Helper()
	h := suite(t)
	s := &story{t: t, h: h, ns: h.env.Namespace(t, prefix), credentials: map[string]string{}, unlogged: map[string]string{}}
	t.Cleanup(func() {
		s.mu.Lock()
		unlogged := s.unlogged
		s.mu.Unlock()
		if err := h.scanLog(unlogged); err != nil {
			t.Error(err)
		}
	})
	return s
}

// credential registers a tool's secret: it may appear in no mounted file,
// no node log line and no output the test captured. user, when not empty,
// adds the Basic form user:secret.
func (s *story) credential(label, user, secret string) {
	forms := map[string]string{
		secret: label,
		base64.StdEncoding.EncodeToString([]byte(secret)):       label + " (base64)",
		base64.StdEncoding.EncodeToString([]byte(":" + secret)): label + " (as Basic)",
	}
	if user != "" {
		forms[base64.StdEncoding.EncodeToString([]byte(user+":"+secret))] = label + " (as Basic)"
	}
	s.mu.Lock()
	for v, l := range forms {
		s.credentials[v] = l
	}
	s.mu.Unlock()
	for v, l := range forms {
		s.unlog(l, v)
	}
}

// unlog forbids a string in the node log, for this story and for the
// suite's final check.
func (s *story) unlog(label, v string) {
	s.mu.Lock()
	s.unlogged[v] = label
	s.mu.Unlock()
	s.h.forbid(label, v)
}

// podToken registers a pod's token: it belongs in the volume, never in the
// node log.
func (s *story) podToken(label, token string) {
	s.unlog(label, token)
	if parts := strings.Split(token, "."); len(parts) == 3 {
		// The signature alone identifies the token.
		s.unlog(label+" (signature)", parts[2])
	}
}

// leaked returns the label of a credential text holds, or "".
func (s *story) leaked(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v, l := range s.credentials {
		if strings.Contains(text, v) {
			return l
		}
	}
	return ""
}

// capture checks output the test is about to log for credentials, then
// logs it.
func (s *story) capture(what, output string) {
	s.t.Helper()
	if l := s.leaked(output); l != "" {
		s.t.Errorf("the output of %s holds %s (output withheld)", what, l)
		return
	}
	s.t.Logf("%s:\n%s", what, strings.TrimRight(output, "\n"))
}

// run runs a command with a clean environment plus env and returns its
// combined output, captured.
func (s *story) run(dir string, env []string, name string, args ...string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s.capture("$ "+name+" "+strings.Join(args, " "), out.String())
	return out.String(), err
}

// shell runs script with sh -c, as a container's command would.
func (s *story) shell(dir string, env []string, script string) (string, error) {
	s.t.Helper()
	return s.run(dir, env, "sh", "-c", script)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- API objects -----------------------------------------------------------

func (s *story) create(obj client.Object) {
	s.t.Helper()
	if err := s.h.env.Client.Create(context.Background(), obj); err != nil {
		s.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// basicAuthSecret creates a kubernetes.io/basic-auth Secret.
func (s *story) basicAuthSecret(name, user, password string) {
	s.t.Helper()
	s.credential("the password of Secret "+name, user, password)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Type:       corev1.SecretTypeBasicAuth,
		StringData: map[string]string{corev1.BasicAuthUsernameKey: user, corev1.BasicAuthPasswordKey: password},
	}
	s.create(sec)
}

// bearerSecret creates a connectors.cpaas.io/bearer-token Secret.
func (s *story) bearerSecret(name, token string) {
	s.t.Helper()
	s.credential("the token of Secret "+name, "", token)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Type:       "connectors.cpaas.io/bearer-token",
		StringData: map[string]string{"token": token},
	}
	s.create(sec)
}

// caSecret creates a Secret holding ca.crt, for a Connector's caCertSecretRef.
func (s *story) caSecret(name string, caPEM []byte) {
	s.t.Helper()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Data:       map[string][]byte{"ca.crt": caPEM},
	}
	s.create(sec)
}

// connectorSpec describes a Connector to create.
type connectorSpec struct {
	name, class, address string
	// authName and secret name the auth type and its Secret; empty for none.
	authName, secret string
	// caSecret names the Secret with the upstream's CA; empty for none.
	caSecret string
}

func (s *story) connector(c connectorSpec) {
	s.t.Helper()
	obj := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: c.name},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: c.class, Address: c.address},
	}
	if c.secret != "" {
		obj.Spec.Auth = v1alpha1.ConnectorAuth{Name: c.authName, SecretRef: &corev1.ObjectReference{Name: c.secret}}
	}
	if c.caSecret != "" {
		obj.Spec.CACertSecretRef = &corev1.LocalObjectReference{Name: c.caSecret}
	}
	s.create(obj)
}

// serviceAccount creates a ServiceAccount in namespace ns.
func (s *story) serviceAccount(ns, name string) {
	s.t.Helper()
	s.h.env.ServiceAccount(s.t, ns, name)
}

// allow lets a ServiceAccount get one Connector of the story's namespace,
// as examples/git-connector.yaml's Role and RoleBinding do, and waits until
// the API server's authorizer agrees.
func (s *story) allow(saNamespace, sa, connector string) {
	s.t.Helper()
	name := "use-" + connector + "-" + saNamespace + "-" + sa
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{v1alpha1.GroupVersion.Group},
			Resources:     []string{v1alpha1.ConnectorResource},
			ResourceNames: []string{connector},
			Verbs:         []string{"get"},
		}},
	}
	s.create(role)
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: saNamespace, Name: sa}},
	}
	s.create(rb)
	s.waitAccess(saNamespace, sa, connector, true)
}

// waitAccess polls a SubjectAccessReview until the ServiceAccount's access
// to the Connector is want: RBAC changes reach the authorizer through a
// cache, and the node caches a denial for a few seconds.
func (s *story) waitAccess(saNamespace, sa, connector string, want bool) {
	s.t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + saNamespace + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + saNamespace, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: s.ns, Verb: "get", Group: v1alpha1.GroupVersion.Group,
			Resource: v1alpha1.ConnectorResource, Name: connector,
		},
	}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := s.h.env.Kube.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
		if err != nil {
			s.t.Fatalf("subject access review: %v", err)
		}
		if out.Status.Allowed == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s/%s access to connector %s/%s: still %v after 15s", saNamespace, sa, s.ns, connector, out.Status.Allowed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// token runs a pod as sa in namespace ns on the suite's node, with the
// loopback address the clients use as its IP, and mints its token for the
// proxy audience, bound to the pod and valid for an hour, as kubelet does.
// The token is registered as never to be logged.
func (s *story) token(ns, sa string) kubelet.Token {
	s.t.Helper()
	ctx := context.Background()
	pod, err := kubelet.RunPod(ctx, s.h.env.Kube, kubelet.Pod{Namespace: ns, Name: "pod-" + randomHex(6), ServiceAccount: sa}, nodeName, podIP)
	if err != nil {
		s.t.Fatal(err)
	}
	tok, err := kubelet.MintToken(ctx, s.h.env.Kube, pod, audience, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	s.podToken("the pod token of "+ns+"/"+sa, tok.Token)
	return tok
}

// --- volumes ---------------------------------------------------------------

// volume is one pod's published CSI volume.
type volume struct {
	id, target string
	pod        kubelet.Pod
	attrs      map[string]string
}

// newVolume makes the pod's volume directory, as kubelet does before
// NodePublishVolume, and unpublishes it when the test ends.
func (s *story) newVolume(sa string, attrs map[string]string) *volume {
	s.t.Helper()
	uid := randomHex(8)
	podDir := filepath.Join(s.h.work, "pods", uid)
	v := &volume{
		id:     "csi-" + randomHex(16),
		target: filepath.Join(podDir, "volumes", "kubernetes.io~csi", "connectors", "mount"),
		pod:    kubelet.Pod{Namespace: s.ns, Name: "pod-" + uid, UID: uid, ServiceAccount: sa},
		attrs:  attrs,
	}
	if err := os.MkdirAll(v.target, 0o750); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		s.unpublish(v)
		_ = os.RemoveAll(podDir)
	})
	return v
}

// publishOnce sends NodePublishVolume. A Connector created a moment ago may
// not be in the node's cache yet: NotFound is retried for a few seconds.
func (s *story) publishOnce(v *volume, tok kubelet.Token) error {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.h.kubelet.Publish(ctx, v.id, v.target, v.pod, v.attrs, map[string]kubelet.Token{audience: tok})
		cancel()
		if status.Code(err) != codes.NotFound || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// publish publishes a new volume for a pod running as sa and checks that no
// mounted file holds a credential.
func (s *story) publish(sa string, attrs map[string]string, tok kubelet.Token) *volume {
	s.t.Helper()
	v := s.newVolume(sa, attrs)
	if err := s.publishOnce(v, tok); err != nil {
		s.t.Fatalf("NodePublishVolume: %v", err)
	}
	s.checkVolume(v)
	return v
}

// republish sends NodePublishVolume again with a new token, as kubelet does
// for a driver with requiresRepublish.
func (s *story) republish(v *volume, tok kubelet.Token) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.h.kubelet.Publish(ctx, v.id, v.target, v.pod, v.attrs, map[string]kubelet.Token{audience: tok}); err != nil {
		s.t.Fatalf("republishing: %v", err)
	}
	s.checkVolume(v)
}

// unpublish sends NodeUnpublishVolume and checks that nothing stays mounted;
// a mount left behind is detached so it does not outlive the test.
func (s *story) unpublish(v *volume) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.h.kubelet.Unpublish(ctx, v.id, v.target); err != nil {
		s.t.Errorf("NodeUnpublishVolume %s: %v", v.id, err)
	}
	mps, err := mountPoints(v.target)
	if err != nil {
		s.t.Error(err)
	}
	for _, mp := range mps {
		s.t.Errorf("%s is still mounted after NodeUnpublishVolume", mp)
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
	if _, err := os.Stat(v.target); !errors.Is(err, fs.ErrNotExist) {
		s.t.Errorf("%s still exists after NodeUnpublishVolume", v.target)
	}
}

// checkVolume fails when a mounted file holds a credential.
func (s *story) checkVolume(v *volume) {
	s.t.Helper()
	n := 0
	err := filepath.WalkDir(v.target, func(p string, e fs.DirEntry, err error) error {
		// The ..data link and the per-file links lead to files walked anyway.
		if err != nil || e.IsDir() || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := os.ReadFile(p) //nolint:gosec // a file of the volume under test
		if err != nil {
			return err
		}
		n++
		if l := s.leaked(string(b)); l != "" {
			s.t.Errorf("mounted file %s holds %s", strings.TrimPrefix(p, v.target+"/"), l)
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("reading the volume: %v", err)
	}
	if n == 0 {
		s.t.Fatalf("the volume at %s holds no file", v.target)
	}
}

// file reads a file of the published volume.
func (v *volume) file(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.target, name))
	if err != nil {
		t.Fatalf("reading %s from the volume: %v", name, err)
	}
	return string(b)
}

// auditLine returns the first audit line of the node that records a
// proxied request to connector in mode with the credential injected, or "".
func (s *story) auditLine(connector, mode string) string {
	awaitAuditWindow()
	b, err := os.ReadFile(s.h.logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var rec struct {
			Msg       string `json:"msg"`
			Connector string `json:"connector"`
			Mode      string `json:"mode"`
			Injected  bool   `json:"injected"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue // a log line on standard error
		}
		if rec.Msg == "request" && rec.Connector == s.ns+"/"+connector && rec.Mode == mode && rec.Injected {
			return line
		}
	}
	return ""
}

// get sends a GET with an Authorization header (none when empty) and
// returns the status and body; the body is checked for credentials.
func (s *story) get(url, authorization string) (int, string) {
	s.t.Helper()
	return s.do(http.DefaultClient, url, authorization)
}

// getVia sends a GET through the forward proxy, authenticating to it as
// user with the token.
func (s *story) getVia(url, user, token string) (int, string) {
	s.t.Helper()
	proxy := &neturl.URL{Scheme: "http", Host: s.h.proxyAddr, User: neturl.UserPassword(user, token)}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	defer c.CloseIdleConnections()
	return s.do(c, url, "")
}

func (s *story) do(c *http.Client, url, authorization string) (int, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", req.URL.Redacted(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: reading the body: %v", req.URL.Redacted(), err)
	}
	shown := string(body)
	if len(shown) > 300 {
		shown = shown[:300] + "…"
	}
	if l := s.leaked(string(body)); l != "" {
		s.t.Errorf("the answer to GET %s holds %s", req.URL.Redacted(), l)
	} else {
		s.capture(fmt.Sprintf("GET %s: %d", req.URL.Redacted(), resp.StatusCode), shown)
	}
	return resp.StatusCode, string(body)
}

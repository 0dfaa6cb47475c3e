package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/gitapi"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// People's tokens, from the API server's static token file: TokenReview
// authenticates them as the users alice and bob.
const (
	aliceToken = "alice-7f3a9c2e1b5d4f60"
	bobToken   = "bob-5d1e8a7c3f2b9e14"
	gitlabPAT  = "glpat-4be1c9d07a3e5f28"
)

// classAPIServer is a ConnectorClass API service: it records the X-Plugin
// headers and the Authorization it was sent and answers a list, as
// upstream's API specification describes.
type classAPIServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func startClassAPI(t *testing.T) *classAPIServer {
	s := &classAPIServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := r.Header.Clone()
		h.Set("X-Seen-Path", r.URL.Path)
		h.Set("X-Seen-Query", r.URL.RawQuery)
		s.seen = append(s.seen, h)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"listMeta":{"totalItems":2},"items":[{"name":"main"},{"name":"v1.0"}]}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *classAPIServer) requests() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.seen...)
}

// gatewayEnv is a real API server with people and ServiceAccounts, a
// GitLab-style tool behind the catalog's gitlab class, a class API
// service, and two gateways on one proxy: read, with the defaults, and
// full, with the connectors/apis check and write passthrough.
type gatewayEnv struct {
	api        *apiserver.Env
	ns         string
	tool       *gitapi.Server
	other      *recorderLog
	classAPI   *classAPIServer
	read, full string
	logs       *logBuffer
	bodies     *bodies
	// ciToken may get connectors and connectors/apis/gitlab; writerToken
	// may also create on one OpenAPI path; proxyToken is alice's SA token
	// for the workload proxy's audience.
	ciToken, writerToken, proxyToken string
}

func startGatewayEnv(t *testing.T) *gatewayEnv {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(aliceToken+",alice,uid-alice\n"+bobToken+",bob,uid-bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api := apiserver.Start(t, apiserver.Options{APIServerFlags: map[string]string{"token-auth-file": tokens}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g := &gatewayEnv{api: api, ns: api.Namespace(t, "gateway"), logs: &logBuffer{}, bodies: &bodies{}}
	ns := g.ns

	g.tool = gitapi.Start(gitapi.Options{Style: gitapi.GitLab, Token: gitlabPAT})
	t.Cleanup(g.tool.Close)
	g.other = &recorderLog{}
	other := httptest.NewServer(g.other.handler("other"))
	t.Cleanup(other.Close)
	g.classAPI = startClassAPI(t)

	class := catalogClass(t, "gitlab")
	class.Spec.API = &v1alpha1.APISpec{Destination: v1alpha1.Destination{URI: g.classAPI.URL}}
	class.Spec.API.OpenAPI = &apiextensionsv1.JSON{Raw: []byte(`{"openapi":"3.0.1","paths":{
		"/api/v4/projects/{id}/repository/branches":{"get":{"x-provider-type":"proxy"},"post":{"x-provider-type":"proxy"}},
		"/gitlab/gitrefs":{"get":{"x-provider-type":"api","operationId":"listGitRefs"}}}}`)}
	create(t, api, class)
	create(t, api, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gitlab-token"},
		Type: "connectors.cpaas.io/gitlab-pat-auth", StringData: map[string]string{"token": gitlabPAT}})
	create(t, api, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gitlab-ca"},
		StringData: map[string]string{"ca.crt": string(g.tool.CAPEM())}})
	gitlab := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gitlab"}}
	gitlab.Spec.ConnectorClassName = "gitlab"
	gitlab.Spec.Address = g.tool.URL()
	gitlab.Spec.Auth = v1alpha1.ConnectorAuth{Name: "patAuth", SecretRef: &corev1.ObjectReference{Name: "gitlab-token"}}
	gitlab.Spec.CACertSecretRef = &corev1.LocalObjectReference{Name: "gitlab-ca"}
	create(t, api, gitlab)
	otherConn := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}}
	otherConn.Spec.Address = other.URL
	create(t, api, otherConn)

	// alice may get every Connector of the namespace; bob nothing.
	grant(t, api, ns, "alice-reader", rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"},
		rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connectors"}, Verbs: []string{"get"}})
	api.ServiceAccount(t, ns, "ci")
	grant(t, api, ns, "ci-api-reader", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "ci"},
		rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connectors", "connectors/apis/gitlab"}, Verbs: []string{"get"}})
	api.ServiceAccount(t, ns, "writer")
	grant(t, api, ns, "branch-writer", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "writer"},
		rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connectors"}, Verbs: []string{"get"}},
		rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group},
			Resources: []string{"connectors/apis/gitlab/api/v4/projects/{id}/repository/branches"}, Verbs: []string{"create"}})
	g.ciToken = api.Token(t, ns, "ci", nil, time.Hour)
	g.writerToken = api.Token(t, ns, "writer", nil, time.Hour)
	g.proxyToken = api.Token(t, ns, "ci", []string{proxyAudience}, time.Hour)

	p := newWithAPI(ctx, t, api, func(o *Options) {
		o.AuditLog = g.logs
		o.Log = g.logs.Logger()
	})
	for _, gw := range []struct {
		addr *string
		opts GatewayOptions
	}{
		{&g.read, GatewayOptions{}},
		{&g.full, GatewayOptions{APIPermissions: true, WritePassthrough: true}},
	} {
		reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: api.Kube, APIAudiences: true})
		if err != nil {
			t.Fatal(err)
		}
		gw.opts.Auth = reviewer
		h, err := p.Gateway(gw.opts)
		if err != nil {
			t.Fatal(err)
		}
		*gw.addr = "http://" + serveOn(ctx, t, p.NewGatewayServer(h, ServerOptions{}))
	}
	return g
}

// catalogClass reads a ConnectorClass of the catalog in deploy/classes.
func catalogClass(t *testing.T, name string) *v1alpha1.ConnectorClass {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "deploy", "classes", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := &v1alpha1.ConnectorClass{}
	if err := yaml.Unmarshal(b, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func create(t *testing.T, api *apiserver.Env, obj client.Object) {
	t.Helper()
	if err := api.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
}

// grant binds subject to a Role of rules in ns.
func grant(t *testing.T, api *apiserver.Env, ns, name string, subject rbacv1.Subject, rules ...rbacv1.PolicyRule) {
	t.Helper()
	create(t, api, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules})
	create(t, api, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}, Subjects: []rbacv1.Subject{subject}})
}

// call sends method to the gateway at base with token and returns the
// status, headers and body.
func (g *gatewayEnv) call(t *testing.T, base, method, path, token string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req := newRequest(t, method, base+path, nil)
	if method == http.MethodPost {
		req.Body = http.NoBody
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, plainClient(), req, g.bodies)
}

func plainClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// requireStatus checks an error answer: code, and a metav1.Status body
// with that code and reason.
func requireStatus(t *testing.T, code int, h http.Header, body string, want int, reason metav1.StatusReason) {
	t.Helper()
	if code != want {
		t.Fatalf("status %d, want %d: %s", code, want, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var st metav1.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("body is not a metav1.Status: %v: %s", err, body)
	}
	if st.Kind != "Status" || st.Status != metav1.StatusFailure || int(st.Code) != want || st.Reason != reason || st.Message == "" {
		t.Errorf("Status %+v, want code %d reason %s and a message", st, want, reason)
	}
}

func (g *gatewayEnv) toolRequests() int { return len(g.tool.Requests()) }

// TestConnectorsAPI runs upstream's documented Connectors API requests
// against the gateway, with people's and ServiceAccounts' real tokens
// reviewed by a real API server.
func TestConnectorsAPI(t *testing.T) {
	g := startGatewayEnv(t)
	ns := g.ns
	projects := "/connectors/v1alpha1/" + ns + "/gitlab/path/api/v4/projects"

	t.Run("a user with get lists projects with curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			testenv.SkipOrFail(t, "curl is not installed: run make deps")
		}
		before := g.toolRequests()
		out, err := exec.CommandContext(context.Background(), curl, "-fsS", "-H", "Authorization: Bearer "+aliceToken, g.read+projects).CombinedOutput() //nolint:gosec // the test's own curl
		g.bodies.add(string(out))
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		var list []map[string]any
		if err := json.Unmarshal(out, &list); err != nil || len(list) != 1 || list[0]["path_with_namespace"] != gitapi.User+"/app" {
			t.Fatalf("projects %s, want %s/app", out, gitapi.User)
		}
		seen := g.tool.Requests()[before:]
		if len(seen) != 1 || !seen[0].Authorized || seen[0].Path != "/api/v4/projects" {
			t.Fatalf("the tool saw %+v, want one authorized GET /api/v4/projects", seen)
		}
		if v, ok := seen[0].Credentials["Authorization"]; ok {
			t.Errorf("the caller's Authorization reached the tool: %q", v)
		}
	})

	t.Run("a user without get gets 403 and the tool is never reached", func(t *testing.T) {
		before := g.toolRequests()
		code, h, body := g.call(t, g.read, http.MethodGet, projects, bobToken)
		requireStatus(t, code, h, body, http.StatusForbidden, metav1.StatusReasonForbidden)
		if !strings.Contains(body, ns+"/gitlab") {
			t.Errorf("the answer does not name the connector: %s", body)
		}
		if n := g.toolRequests() - before; n != 0 {
			t.Errorf("the tool was reached %d times", n)
		}
	})

	t.Run("tokens the gateway does not take get 401", func(t *testing.T) {
		before := g.toolRequests()
		for name, auth := range map[string]string{
			"none":                   "",
			"basic":                  "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+aliceToken)),
			"the proxy's audience":   "Bearer " + g.proxyToken,
			"not a token":            "Bearer garbage",
			"bearer without a token": "Bearer ",
		} {
			req := newRequest(t, http.MethodGet, g.read+projects, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			code, h, body := do(t, plainClient(), req, g.bodies)
			requireStatus(t, code, h, body, http.StatusUnauthorized, metav1.StatusReasonUnauthorized)
			if got := h.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
				t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", name, got)
			}
		}
		if n := g.toolRequests() - before; n != 0 {
			t.Errorf("the tool was reached %d times", n)
		}
	})

	t.Run("writes are 405 without passthrough", func(t *testing.T) {
		before := g.toolRequests()
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "PROPFIND"} {
			code, h, body := g.call(t, g.read, m, projects, aliceToken)
			requireStatus(t, code, h, body, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed)
			if h.Get("Allow") != "GET, HEAD, OPTIONS" {
				t.Errorf("%s: Allow %q", m, h.Get("Allow"))
			}
		}
		if n := g.toolRequests() - before; n != 0 {
			t.Errorf("the tool was reached %d times", n)
		}
		// HEAD and OPTIONS are reads: they reach the tool (whose stand-in
		// serves GET only).
		for _, m := range []string{http.MethodHead, http.MethodOptions} {
			before := g.toolRequests()
			code, _, _ := g.call(t, g.read, m, projects, aliceToken)
			if seen := g.tool.Requests()[before:]; code == http.StatusMethodNotAllowed || len(seen) != 1 || seen[0].Method != m {
				t.Errorf("%s: %d; the tool saw %+v", m, code, seen)
			}
		}
	})

	t.Run("an SA with only get on connectors/apis cannot POST with passthrough on", func(t *testing.T) {
		code, _, body := g.call(t, g.full, http.MethodGet, projects, g.ciToken)
		if code != http.StatusOK || !strings.Contains(body, gitapi.User+"/app") {
			t.Fatalf("GET: %d %s, want the projects", code, body)
		}
		before := g.toolRequests()
		code, h, body := g.call(t, g.full, http.MethodPost, projects, g.ciToken)
		requireStatus(t, code, h, body, http.StatusForbidden, metav1.StatusReasonForbidden)
		if !strings.Contains(body, "create") || !strings.Contains(body, "connectors/apis/gitlab") {
			t.Errorf("the answer does not name the verb and subresource: %s", body)
		}
		if n := g.toolRequests() - before; n != 0 {
			t.Errorf("the tool was reached %d times", n)
		}
	})

	t.Run("get on the Connector is not enough with the apis check on", func(t *testing.T) {
		before := g.toolRequests()
		code, h, body := g.call(t, g.full, http.MethodGet, projects, aliceToken)
		requireStatus(t, code, h, body, http.StatusForbidden, metav1.StatusReasonForbidden)
		if n := g.toolRequests() - before; n != 0 {
			t.Errorf("the tool was reached %d times", n)
		}
	})

	t.Run("create on one OpenAPI path lets that POST through", func(t *testing.T) {
		branches := "/connectors/v1alpha1/" + ns + "/gitlab/path/api/v4/projects/ci-bot%2Fapp/repository/branches"
		before := g.toolRequests()
		code, _, body := g.call(t, g.full, http.MethodPost, branches, g.writerToken)
		// The stand-in serves GETs only: its 404 shows the POST reached it.
		seen := g.tool.Requests()[before:]
		if code != http.StatusNotFound || len(seen) != 1 || seen[0].Method != http.MethodPost || !seen[0].Authorized {
			t.Fatalf("POST: %d %s; the tool saw %+v", code, body, seen)
		}
		if seen[0].Path != "/api/v4/projects/ci-bot/app/repository/branches" {
			t.Errorf("the tool saw path %q", seen[0].Path)
		}
		code, h, body := g.call(t, g.full, http.MethodPost, projects, g.writerToken)
		requireStatus(t, code, h, body, http.StatusForbidden, metav1.StatusReasonForbidden)
	})

	t.Run("a custom API service gets the X-Plugin headers and answers a list", func(t *testing.T) {
		before := len(g.classAPI.requests())
		code, _, body := g.call(t, g.read, http.MethodGet, "/connectors/v1alpha1/"+ns+"/gitlab/path/gitlab/gitrefs?search=ma", aliceToken,
			HeaderPluginSecret, base64.StdEncoding.EncodeToString([]byte(`{"token":"Zm9yZ2Vk"}`)), "Private-Token", "forged")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var list struct {
			ListMeta struct {
				TotalItems int `json:"totalItems"`
			} `json:"listMeta"`
			Items []map[string]string `json:"items"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil || list.ListMeta.TotalItems != 2 || len(list.Items) != 2 {
			t.Fatalf("list %s", body)
		}
		seen := g.classAPI.requests()[before:]
		if len(seen) != 1 {
			t.Fatalf("the API service saw %d requests", len(seen))
		}
		h := seen[0]
		if h.Get("X-Seen-Path") != "/gitlab/gitrefs" || h.Get("X-Seen-Query") != "search=ma" {
			t.Errorf("the API service saw %s?%s", h.Get("X-Seen-Path"), h.Get("X-Seen-Query"))
		}
		if got := decode64(t, h.Get(HeaderPluginMeta)); got != `{"baseURL":"`+g.tool.URL()+`"}` {
			t.Errorf("X-Plugin-Meta %s", got)
		}
		if got := decode64(t, h.Get(HeaderPluginAuth)); got != "connectors.cpaas.io/gitlab-pat-auth" {
			t.Errorf("X-Plugin-Auth %s", got)
		}
		var data map[string][]byte
		if err := json.Unmarshal([]byte(decode64(t, h.Get(HeaderPluginSecret))), &data); err != nil || string(data["token"]) != gitlabPAT {
			t.Errorf("X-Plugin-Secret does not carry the Connector's Secret data (err %v)", err)
		}
		if v := h.Get("Authorization"); v != "" {
			t.Errorf("the caller's Authorization reached the API service: %q", v)
		}
	})

	t.Run("hostile paths are refused and reach no Connector", func(t *testing.T) {
		long := strings.Repeat("a", 64)
		cases := []struct {
			path   string
			want   int
			reason metav1.StatusReason
		}{
			{"/connectors/v1alpha1/" + ns + "/gitlab/path/../../other/path/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "/gitlab/path/api/%2e%2e/%2E%2E/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "/gitlab/path/api/..%2f..%2fx", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "/gitlab/path/a%5c..%5cx", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "%2Fgitlab/other/path/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "/git%2flab/path/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "/../path/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + long + "/gitlab/path/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "/" + strings.Repeat("b", 254) + "/path/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + strings.ToUpper(ns) + "/gitlab/path/x", http.StatusBadRequest, metav1.StatusReasonBadRequest},
			{"/connectors/v1alpha1/" + ns + "/gitlab/x", http.StatusNotFound, metav1.StatusReasonNotFound},
			{"/connectors/v1alpha1/" + ns + "/gitlab", http.StatusNotFound, metav1.StatusReasonNotFound},
			{"/connectors/v1alpha1/", http.StatusNotFound, metav1.StatusReasonNotFound},
			{"/namespaces/" + ns + "/connectors/other/x", http.StatusNotFound, metav1.StatusReasonNotFound},
			{"/connectors/v1alpha1/" + ns + "/missing/path/x", http.StatusNotFound, metav1.StatusReasonNotFound},
		}
		before := g.toolRequests()
		for _, c := range cases {
			code, h, body := g.call(t, g.read, http.MethodGet, c.path, aliceToken)
			if code != c.want {
				t.Errorf("%s: status %d, want %d: %s", c.path, code, c.want, body)
				continue
			}
			requireStatus(t, code, h, body, c.want, c.reason)
		}
		if n := g.toolRequests() - before; n != 0 {
			t.Errorf("the tool was reached %d times", n)
		}
		if seen := g.other.take(); len(seen) != 0 {
			t.Errorf("another Connector's tool was reached: %+v", seen)
		}
	})

	t.Run("the credential is in no answer, log or status", func(t *testing.T) {
		var statuses strings.Builder
		for _, name := range []string{"gitlab", "other"} {
			c := &v1alpha1.Connector{}
			if err := g.api.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(c.Status)
			statuses.Write(b)
		}
		pat64 := base64.StdEncoding.EncodeToString([]byte(gitlabPAT))
		for what, text := range map[string]string{"answers": g.bodies.String(), "logs and audit lines": g.logs.String(), "status": statuses.String()} {
			for _, secret := range []string{gitlabPAT, pat64, aliceToken, bobToken, g.ciToken, g.writerToken} {
				if strings.Contains(text, secret) {
					t.Errorf("%s hold a secret", what)
				}
			}
		}
		for _, r := range g.tool.Requests() {
			if v, ok := r.Credentials["Authorization"]; ok {
				t.Errorf("a caller's Authorization reached the tool: %q", v)
			}
		}
		if !strings.Contains(g.logs.String(), `"mode":"api"`) {
			t.Errorf("no audit line of mode api: %s", g.logs.String())
		}
	})
}

func decode64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Errorf("not base64: %q", s)
	}
	return string(b)
}

// TestConnectorsAPIPaths pins how the gateway reads its paths: the
// namespace and Connector names are checked, the API path may hold
// GitLab's encoded slashes but no dot segment in any spelling.
func TestConnectorsAPIPaths(t *testing.T) {
	cases := []struct {
		path     string
		want     int // 0: parsed
		key, api string
	}{
		{"/connectors/v1alpha1/ns/gitlab/path", 0, "ns/gitlab", "/"},
		{"/connectors/v1alpha1/ns/gitlab/path/", 0, "ns/gitlab", "/"},
		{"/connectors/v1alpha1/ns/git.lab/path/api/v4/projects/g%2Fapp", 0, "ns/git.lab", "/api/v4/projects/g%2Fapp"},
		{"/connectors/v1alpha1/ns/gitlab/path/a%zz", http.StatusBadRequest, "", ""},
		{"/connectors/v1alpha1/ns/gitlab/path/a/%2E/b", http.StatusBadRequest, "", ""},
		{"/connectors/v1alpha1/ns/gitlab/path/a/%00", http.StatusBadRequest, "", ""},
		{"/connectors/v1alpha1/ns//path/x", http.StatusBadRequest, "", ""},
		{"/connectors/v1alpha1//gitlab/path/x", http.StatusBadRequest, "", ""},
		{"/connectors/v1alpha1/ns/-x/path/x", http.StatusBadRequest, "", ""},
		{"/connectors/v1alpha1/ns/gitlab/paths/x", http.StatusNotFound, "", ""},
		{"/connectors/v1alpha2/ns/gitlab/path/x", http.StatusNotFound, "", ""},
		{"/connectors/v1alpha1/ns", http.StatusNotFound, "", ""},
	}
	for _, c := range cases {
		rt, err := parseAPIRoute(c.path)
		var se *statusError
		switch {
		case c.want == 0 && err != nil:
			t.Errorf("%s: %v", c.path, err)
		case c.want == 0 && (rt.key.String() != c.key || rt.rest != c.api):
			t.Errorf("%s: %s %s, want %s %s", c.path, rt.key, rt.rest, c.key, c.api)
		case c.want != 0 && (!errors.As(err, &se) || se.status != c.want):
			t.Errorf("%s: %v, want status %d", c.path, err, c.want)
		}
	}
}

// TestConnectorsAPIOpenAPI pins how an API path finds its operation in a
// class's spec.api.openapi: templates match whole escaped segments, the
// most literal path wins, HEAD and OPTIONS use get, and proxy is the
// default provider.
func TestConnectorsAPIOpenAPI(t *testing.T) {
	spec := &v1alpha1.APISpec{OpenAPI: &apiextensionsv1.JSON{Raw: []byte(`{"paths":{
		"/api/v4/projects/{id}/repository/branches":{"get":{},"post":{"x-provider-type":"proxy","x-openapi-address":"api"}},
		"/api/v4/projects/starred/repository/branches":{"get":{"x-provider-type":"api"}},
		"/repos/{owner}/{repo}.git":{"get":{"x-openapi-address":"https://api.example.test"}},
		"/git/gitrefs":{"get":{"x-provider-type":"api"},"parameters":[{"name":"x"}]}}}`)}}
	api := parseClassAPI(spec)
	if api.err != nil {
		t.Fatal(api.err)
	}
	cases := []struct {
		method, path string
		found        bool
		template     string
		provider     string
		address      string
	}{
		{"GET", "/api/v4/projects/g%2Fapp/repository/branches", true, "/api/v4/projects/{id}/repository/branches", providerProxy, ""},
		{"HEAD", "/api/v4/projects/7/repository/branches", true, "/api/v4/projects/{id}/repository/branches", providerProxy, ""},
		{"POST", "/api/v4/projects/7/repository/branches", true, "/api/v4/projects/{id}/repository/branches", providerProxy, "api"},
		{"GET", "/api/v4/projects/starred/repository/branches", true, "/api/v4/projects/starred/repository/branches", providerAPI, ""},
		{"OPTIONS", "/git/gitrefs", true, "/git/gitrefs", providerAPI, ""},
		{"GET", "/repos/o/r.git", true, "/repos/{owner}/{repo}.git", providerProxy, "https://api.example.test"},
		{"DELETE", "/git/gitrefs", false, "", "", ""},
		{"GET", "/api/v4/projects", false, "", "", ""},
		{"GET", "/api/v4/projects//repository/branches", false, "", "", ""},
	}
	for _, c := range cases {
		op, ok := api.find(c.method, c.path)
		if ok != c.found || op.template != c.template || op.provider != c.provider || op.address != c.address {
			t.Errorf("%s %s: %+v %v", c.method, c.path, op, ok)
		}
	}
	if bad := parseClassAPI(&v1alpha1.APISpec{OpenAPI: &apiextensionsv1.JSON{Raw: []byte(`{"paths":{"/x":{"get":{"x-provider-type":"grpc"}}}}`)}}); bad.err == nil ||
		!strings.Contains(bad.err.Error(), "x-provider-type") {
		t.Errorf("an unknown provider type: %v", bad.err)
	}
}

// TestConnectorsAPIOperationAddress pins where an x-provider-type proxy
// operation goes: spec.address, the address extension x-openapi-address
// names, or the URL it is; a missing extension is a 502 naming it.
func TestConnectorsAPIOperationAddress(t *testing.T) {
	conn := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gh"}}
	conn.Spec.Address = "https://github.example.test"
	conn.Spec.AddressExtensions = []v1alpha1.Param{
		{Name: "api", Value: apiextensionsv1.JSON{Raw: []byte(`"https://api.github.example.test"`)}},
		{Name: "list", Value: apiextensionsv1.JSON{Raw: []byte(`["https://x.test"]`)}},
	}
	for _, c := range []struct {
		address, want string
		status        int
	}{
		{"", "https://github.example.test", 0},
		{"api", "https://api.github.example.test", 0},
		{"https://search.example.test/v1", "https://search.example.test/v1", 0},
		{"missing", "", http.StatusBadGateway},
		{"list", "", http.StatusBadGateway},
	} {
		raw, field, err := operationAddress(conn, operation{template: "/x", provider: providerProxy, address: c.address})
		var se *statusError
		switch {
		case c.status == 0 && (err != nil || raw != c.want || field == ""):
			t.Errorf("%q: %q %q %v", c.address, raw, field, err)
		case c.status != 0 && (!errors.As(err, &se) || se.status != c.status || !strings.Contains(se.msg, c.address)):
			t.Errorf("%q: %v, want %d naming it", c.address, err, c.status)
		}
	}
}

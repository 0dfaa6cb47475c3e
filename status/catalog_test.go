package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/gitapi"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/servers/mavenrepo"
	"github.com/connectors-node/connectors-node/test/servers/npmregistry"
	"github.com/connectors-node/connectors-node/test/servers/pypiindex"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// installCatalog creates the classes of deploy/classes as `kubectl apply
// -k deploy/classes` would. A class another test created stays.
func installCatalog(t *testing.T, env *apiserver.Env) {
	t.Helper()
	files, err := manifests.CatalogFiles(apiserver.RepoRoot())
	require.NoError(t, err)
	objs, err := manifests.Load(files...)
	require.NoError(t, err)
	for _, o := range objs {
		if err := env.Client.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// catalogConn is a Connector of a catalog class as upstream's pages write
// them: spec.auth.name set, a secretRef only when there is a credential.
type catalogConn struct {
	name, class, address, auth string
	secret                     string
	authParams, extensions     map[string]string
	caSecret                   string
}

func (c catalogConn) object(t testing.TB, ns string) *v1alpha1.Connector {
	params := func(m map[string]string) []v1alpha1.Param {
		var out []v1alpha1.Param
		for k, v := range m {
			out = append(out, v1alpha1.Param{Name: k, Value: js(t, v)})
		}
		return out
	}
	o := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.name},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: c.class, Address: c.address,
			AddressExtensions: params(c.extensions),
			Auth:              v1alpha1.ConnectorAuth{Name: c.auth, Params: params(c.authParams)},
		},
	}
	if c.secret != "" {
		o.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: c.secret}
	}
	if c.caSecret != "" {
		o.Spec.CACertSecretRef = &corev1.LocalObjectReference{Name: c.caSecret}
	}
	return o
}

// TestCatalogUpstreamConnectorsWithoutSecretAreReady: upstream's pages
// create anonymous Connectors that name the auth type and no Secret
// (oci's tokenAuth; basicAuth on git, maven, npm and pypi). Each is Ready
// with SecretReady True SecretOptional, not AuthTypeNotFound or
// SecretRequired, with the liveness probes run against a tool that
// answers anyone and AuthReady True SecretOptional (no credential to
// probe); today's names stay accepted.
func TestCatalogUpstreamConnectorsWithoutSecretAreReady(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "catalog-anon")
	installCatalog(t, env)
	open := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(open.Close)
	startNode(t, env, nodeOptions{identity: "node-anon", leaseNS: ns})

	conns := []catalogConn{
		{name: "oci", class: "oci", auth: "tokenAuth"},
		{name: "oci-old", class: "oci", auth: "registryToken"},
		{name: "oci-anon", class: "oci", auth: "anonymous"},
		{name: "git", class: "git", auth: "basicAuth", authParams: map[string]string{"repository": "org/repo.git"}},
		{name: "git-old", class: "git", auth: "anonymous"},
		{name: "maven", class: "maven", auth: "basicAuth"},
		{name: "npm", class: "npm", auth: "basicAuth"},
		{name: "pypi", class: "pypi", auth: "basicAuth"},
		{name: "pypi-noauth", class: "pypi"},
	}
	for _, c := range conns {
		c.address = open.URL
		create(t, env, c.object(t, ns))
	}
	for _, c := range conns {
		got := waitReady(t, env, ns, c.name, status.True, "")
		sr := condition(got, status.TypeSecretReady)
		require.Equal(t, status.ReasonSecretOptional, sr.Reason, "%s: SecretReady", c.name)
		for _, typ := range []string{status.TypeLivenessReady, status.TypeAuthReady} {
			cd := condition(got, typ)
			require.Equal(t, status.True, cd.Status, "%s: %s", c.name, typ)
		}
		want := status.ReasonSecretOptional // no credential to probe
		if c.auth == "" || c.auth == "anonymous" {
			want = status.ReasonNonAuthProbe // no auth probe for the type
		}
		require.Equal(t, want, condition(got, status.TypeAuthReady).Reason, "%s: AuthReady", c.name)
	}
}

// catalogTool is a running tool of one catalog class, with what a
// Connector needs to reach it.
type catalogTool struct {
	conn catalogConn
	// secret returns the Secret with a good or a wrong credential.
	secret func(ns, name string, good bool) *corev1.Secret
	caPEM  []byte
	// rejected is the reason of a wrong credential; default
	// CredentialsRejected.
	rejected string
}

func basicCredential(user, pass string) func(ns, name string, good bool) *corev1.Secret {
	return func(ns, name string, good bool) *corev1.Secret {
		p := pass
		if !good {
			p = "wrong-" + pass
		}
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Type:       corev1.SecretTypeBasicAuth,
			StringData: map[string]string{"username": user, "password": p},
		}
	}
}

func tokenCredential(typ, token string) func(ns, name string, good bool) *corev1.Secret {
	return func(ns, name string, good bool) *corev1.Secret {
		tok := token
		if !good {
			tok = "wrong-" + token
		}
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Type:       corev1.SecretType(typ),
			StringData: map[string]string{"token": tok},
		}
	}
}

// TestCatalogProbesJudgeTheCredential: every class of deploy/classes
// probes its tool (the real server or the project's stand-in of its API)
// with the Connector's credential, through the proxy. A wrong credential
// turns AuthReady False CredentialsRejected while LivenessReady stays True,
// and the right one turns Ready True; no condition, Event or log line
// holds the credential.
func TestCatalogProbesJudgeTheCredential(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "catalog-probes")
	installCatalog(t, env)
	n := startNode(t, env, nodeOptions{identity: "node-probes", leaseNS: ns})
	password := "s3cret-" + strings.Repeat("p", 12)

	tools := map[string]func(t *testing.T) catalogTool{
		"git": func(t *testing.T) catalogTool {
			srv, err := gitserver.Start(t.TempDir(), upstreamUser, password)
			if err != nil {
				testenv.SkipOrFail(t, "git http-backend (make deps installs git): %v", err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			_, err = srv.CreateRepo("repo", map[string]string{"README": "hello\n"})
			require.NoError(t, err)
			return catalogTool{
				conn:   catalogConn{class: "git", address: srv.URL, auth: "basicAuth", authParams: map[string]string{"repository": "repo.git"}},
				secret: basicCredential(upstreamUser, password),
			}
		},
		"github": func(t *testing.T) catalogTool {
			srv := gitapi.Start(gitapi.Options{Style: gitapi.GitHub, Token: password})
			t.Cleanup(srv.Close)
			return catalogTool{
				conn:   catalogConn{class: "github", address: srv.URL(), auth: "patAuth"},
				secret: tokenCredential("Opaque", password), caPEM: srv.CAPEM(),
			}
		},
		"github-api-extension": func(t *testing.T) catalogTool {
			srv := gitapi.Start(gitapi.Options{Style: gitapi.GitHub, Token: password})
			t.Cleanup(srv.Close)
			// The Git host refuses everything; the API is the extension.
			git := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
			t.Cleanup(git.Close)
			return catalogTool{
				conn: catalogConn{class: "github", address: git.URL, auth: "patAuth",
					extensions: map[string]string{"api": srv.URL()}},
				secret: tokenCredential("Opaque", password), caPEM: srv.CAPEM(),
			}
		},
		"gitlab": func(t *testing.T) catalogTool {
			srv := gitapi.Start(gitapi.Options{Style: gitapi.GitLab, Token: password})
			t.Cleanup(srv.Close)
			return catalogTool{
				conn:   catalogConn{class: "gitlab", address: srv.URL(), auth: "patAuth"},
				secret: tokenCredential("connectors.cpaas.io/gitlab-pat-auth", password), caPEM: srv.CAPEM(),
			}
		},
		"k8s": func(t *testing.T) catalogTool {
			env.ServiceAccount(t, ns, "target")
			token := env.Token(t, ns, "target", nil, time.Hour)
			return catalogTool{
				conn:   catalogConn{class: "k8s", address: env.Config.Host, auth: "bearerTokenAuth"},
				secret: tokenCredential("connectors.cpaas.io/bearer-token", token), caPEM: env.Config.CAData,
			}
		},
		"maven": func(t *testing.T) catalogTool {
			repo, err := mavenrepo.Start(t.TempDir(), upstreamUser, password)
			if err != nil {
				testenv.SkipOrFail(t, "the Maven repository (make deps installs nginx): %v", err)
			}
			t.Cleanup(repo.Stop)
			return catalogTool{
				conn:   catalogConn{class: "maven", address: repo.URL, auth: "basicAuth"},
				secret: basicCredential(upstreamUser, password),
			}
		},
		"npm": func(t *testing.T) catalogTool {
			reg, err := npmregistry.Start(t.TempDir(), upstreamUser, password)
			if err != nil {
				testenv.SkipOrFail(t, "verdaccio (make deps installs it): %v", err)
			}
			t.Cleanup(reg.Stop)
			return catalogTool{
				conn:   catalogConn{class: "npm", address: "http://" + reg.Addr, auth: "basicAuth"},
				secret: basicCredential(upstreamUser, password),
				// verdaccio answers a wrong password as anonymous: 200
				// without a user, so the probe's CEL is false.
				rejected: status.ReasonAuthProbeFailed,
			}
		},
		"pypi": func(t *testing.T) catalogTool {
			idx := pypiindex.Start(upstreamUser, password)
			t.Cleanup(idx.Close)
			return catalogTool{
				conn:   catalogConn{class: "pypi", address: idx.URL, auth: "basicAuth"},
				secret: basicCredential(upstreamUser, password),
			}
		},
		"oci": func(t *testing.T) catalogTool {
			return ociTool(t, password)
		},
	}
	for name, start := range tools {
		t.Run(name, func(t *testing.T) {
			tool := start(t)
			c := tool.conn
			c.name, c.secret = name, name+"-auth"
			if tool.caPEM != nil {
				c.caSecret = name + "-ca"
				create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.caSecret},
					Data: map[string][]byte{"ca.crt": tool.caPEM}})
			}
			bad := tool.secret(ns, c.secret, false)
			create(t, env, bad, c.object(t, ns))
			rejected := tool.rejected
			if rejected == "" {
				rejected = status.ReasonCredentialsRejected
			}
			got := waitReady(t, env, ns, name, status.False, rejected)
			require.Equal(t, status.True, condition(got, status.TypeLivenessReady).Status, "the tool is alive")
			require.Equal(t, status.False, condition(got, status.TypeAuthReady).Status)

			good := tool.secret(ns, c.secret, true)
			require.NoError(t, env.Client.Update(context.Background(), good))
			got = waitReady(t, env, ns, name, status.True, "")
			require.Equal(t, status.True, condition(got, status.TypeAuthReady).Status)
			require.Empty(t, condition(got, status.TypeAuthReady).Reason, "the auth probe ran")

			for _, s := range []*corev1.Secret{good, bad} {
				for _, v := range s.StringData {
					requireNoSecret(t, env, ns, n, v)
				}
			}
		})
	}
}

// requireNoSecret fails when v appears in a Connector's status, an Event of
// ns or the node's log.
func requireNoSecret(t *testing.T, env *apiserver.Env, ns string, n *node, v string) {
	t.Helper()
	if len(v) < 8 {
		return
	}
	var conns v1alpha1.ConnectorList
	require.NoError(t, env.Client.List(context.Background(), &conns, client.InNamespace(ns)))
	b, err := json.Marshal(conns.Items)
	require.NoError(t, err)
	require.NotContains(t, string(b), v, "a credential in a Connector's status")
	var events corev1.EventList
	require.NoError(t, env.Client.List(context.Background(), &events, client.InNamespace(ns)))
	for _, e := range events.Items {
		require.NotContains(t, e.Message, v, "a credential in an Event")
	}
	require.NotContains(t, n.logs.String(), v, "a credential in the node's log")
}

// ociTool starts the distribution registry behind its token service on
// 127.0.0.1: the Connector names the realm as an address extension, as the
// proxy's registry token flow requires.
func ociTool(t *testing.T, password string) catalogTool {
	ca, err := testpki.NewCA("status catalog registry CA")
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue("127.0.0.1")
	require.NoError(t, err)
	tokens, err := registry.NewTokenService("status-issuer", "127.0.0.1", upstreamUser, password, 5*time.Minute)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	authPort, err := registry.ServeTLS(ctx, tokens, certPEM, keyPEM)
	require.NoError(t, err)
	realm := "https://127.0.0.1:" + authPort + "/token"
	srv, err := registry.Start(ctx, registry.Config{
		Dir: t.TempDir(), CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM,
		Token: &registry.Token{Realm: realm, Service: "127.0.0.1", Issuer: "status-issuer", RootCertPEM: tokens.CertPEM},
	})
	if err != nil {
		testenv.SkipOrFail(t, "the registry (make deps installs it): %v", err)
	}
	t.Cleanup(srv.Stop)
	return catalogTool{
		conn: catalogConn{class: "oci", address: fmt.Sprintf("https://127.0.0.1:%s", srv.Port), auth: "tokenAuth",
			extensions: map[string]string{"tokenRealm": realm}},
		secret: func(ns, name string, good bool) *corev1.Secret {
			s := basicCredential(upstreamUser, password)(ns, name, good)
			s.Type = "cpaas.io/distribution-registry-token"
			return s
		},
		caPEM: ca.PEM,
	}
}

// TestUnguardedSecretInAProbeTemplateDoesNotFailTheProbe: upstream's
// example header {{ .Secret.StringData.token }}, without the {{ if .Secret }}
// guard, renders "<no value>" here (probe templates see no Secret; the
// proxy injects the credential). The header is left out and the probe
// runs: a wrong password is rejected, the right one accepted.
func TestUnguardedSecretInAProbeTemplateDoesNotFailTheProbe(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "unguarded")
	up := startUpstream(t)
	startNode(t, env, nodeOptions{identity: "node-unguarded", leaseNS: ns})

	cls := gitClass("unguarded-"+ns, nil)
	cls.Spec.AuthProbes[0].Probe.HTTP.HTTPHeaders = []v1alpha1.HTTPHeader{
		{Name: "Authorization", Value: `Basic {{ printf "%s:%s" .Secret.StringData.username .Secret.StringData.password | b64enc }}`},
		{Name: "X-Token", Value: `{{ .Secret.StringData.token }}`},
	}
	create(t, env, cls, basicSecret(ns, "git-auth", "wrong-password"), gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))
	c := waitReady(t, env, ns, "git", status.False, status.ReasonCredentialsRejected)
	require.Contains(t, condition(c, status.TypeAuthReady).Message, "answered 401")

	require.NoError(t, env.Client.Update(context.Background(), basicSecret(ns, "git-auth", upstreamPass)))
	waitReady(t, env, ns, "git", status.True, "")
}

// TestCACertReadyAndItsWarningEvents: CACertReady (severity Info) says
// whether spec.caCertSecretRef holds a certificate, with upstream's
// reasons, and each turn to False is a Warning Event with upstream's
// reason. It never counts towards Ready by itself.
func TestCACertReadyAndItsWarningEvents(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "cacert")
	up := startUpstream(t)
	startNode(t, env, nodeOptions{identity: "node-cacert", leaseNS: ns})
	ctx := context.Background()

	cls := gitClass("cacert-"+ns, nil)
	plain := gitConnector(t, ns, "plain", cls.Name, up.URL, "git-auth")
	withCA := gitConnector(t, ns, "with-ca", cls.Name, up.URL, "git-auth")
	withCA.Spec.CACertSecretRef = &corev1.LocalObjectReference{Name: "tool-ca"}
	create(t, env, cls, basicSecret(ns, "git-auth", upstreamPass), plain, withCA)

	caCond := func(name, st, reason string) {
		t.Helper()
		eventually(t, fmt.Sprintf("%s CACertReady=%s %s", name, st, reason), func() (bool, string) {
			cd := condition(getConnector(t, env, ns, name), status.TypeCACertReady)
			if cd == nil {
				return false, "no CACertReady"
			}
			return cd.Status == st && cd.Reason == reason && cd.Severity == status.SeverityInfo,
				fmt.Sprintf("%s %s %q severity %q", cd.Status, cd.Reason, cd.Message, cd.Severity)
		})
	}
	warned := func(reason string) {
		t.Helper()
		eventually(t, "a Warning Event "+reason, func() (bool, string) {
			var events corev1.EventList
			require.NoError(t, env.Client.List(ctx, &events, client.InNamespace(ns)))
			var seen []string
			for _, e := range events.Items {
				if e.Type == corev1.EventTypeWarning && e.Reason == reason && e.InvolvedObject.Name == "with-ca" {
					return true, ""
				}
				seen = append(seen, e.Reason)
			}
			return false, strings.Join(seen, ",")
		})
	}
	waitReady(t, env, ns, "plain", status.True, "")
	caCond("plain", status.True, status.ReasonNoCACert)

	caCond("with-ca", status.False, status.ReasonSecretNotFound)
	warned(status.EventCACertSecretNotFound)
	// Fail-closed: without its CA the Connector is not proxied, probes
	// included.
	eventually(t, "with-ca not live without its CA", func() (bool, string) {
		l := condition(getConnector(t, env, ns, "with-ca"), status.TypeLivenessReady)
		return l != nil && l.Status == status.False, fmt.Sprintf("%+v", l)
	})

	bad := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tool-ca"},
		Data: map[string][]byte{"ca.crt": []byte("not a certificate")}}
	create(t, env, bad)
	caCond("with-ca", status.False, status.ReasonInvalidPEM)
	warned(status.EventInvalidCACert)

	ca, err := testpki.NewCA("cacert test CA")
	require.NoError(t, err)
	bad.Data = map[string][]byte{"ca.crt": ca.PEM}
	require.NoError(t, env.Client.Update(ctx, bad))
	caCond("with-ca", status.True, status.ReasonCACertValid)
	waitReady(t, env, ns, "with-ca", status.True, "")
}

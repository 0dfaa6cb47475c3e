package proxy

import (
	"crypto/x509"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// fixture is a proxy with upstreams and Connectors for the security suite.
//
//	A     TLS upstream, cert for the *.example.test names below
//	B     TLS upstream, same cert, another port
//	C     plain HTTP upstream
//	S     TLS upstream with httptest's self-signed certificate
//
// Connectors (team-a unless noted):
//
//	api    https://api.example.test:A  (+ extension https://api-ext.example.test:A/v1), basic
//	reg    https://reg.example.test:A, bearer
//	gl     https://h.example.test:A/gitlab, basic
//	plain  http://plain.example.test:C, basic
//	self   https://self.example.test:S, basic
//	wrong  https://wrongname.example.test:A (not in A's cert), basic
//	open   https://open.example.test:A, no Secret
//	team-b/api https://api.example.test:A, team-b's basic
type fixture struct {
	*env
	log        *recorderLog
	a, b, c, s *httptest.Server
	pa, pb, pc string
	ps         string
	basic      string // the credential team-a's basic Connectors inject
	bearer     string
	basicB     string
}

const certNames = "api.example.test api-ext.example.test reg.example.test h.example.test plain.example.test open.example.test other.example.test evil.test api.example.test.evil.test"

func newFixture(t testing.TB, opts ...envOption) *fixture {
	t.Helper()
	f := &fixture{log: &recorderLog{}}
	upCA := newTestCA(t)
	cert := upCA.serverCert(t, splitFields(certNames)...)
	f.a = startTLS(t, f.log.handler("A"), &cert)
	f.b = startTLS(t, f.log.handler("B"), &cert)
	f.s = startTLS(t, f.log.handler("S"), nil)
	f.c = httptest.NewServer(f.log.handler("C"))
	t.Cleanup(f.c.Close)
	f.pa, f.pb, f.pc, f.ps = port(t, f.a), port(t, f.b), port(t, f.c), port(t, f.s)

	o := newFakeObjects()
	o.secret("team-a", "basic", corev1.SecretTypeBasicAuth, map[string]string{"username": upstreamUser, "password": upstreamPass})
	o.secret("team-a", "bearer", SecretTypeBearerToken, map[string]string{"token": upstreamBear})
	o.secret("team-b", "basic", corev1.SecretTypeBasicAuth, map[string]string{"username": "team-b", "password": teamBPass})
	o.connector("team-a", "api", "https://api.example.test:"+f.pa, "basic", "https://api-ext.example.test:"+f.pa+"/v1")
	o.connector("team-a", "reg", "https://reg.example.test:"+f.pa, "bearer")
	o.connector("team-a", "gl", "https://h.example.test:"+f.pa+"/gitlab", "basic")
	o.connector("team-a", "plain", "http://plain.example.test:"+f.pc, "basic")
	o.connector("team-a", "self", "https://self.example.test:"+f.ps, "basic")
	o.connector("team-a", "wrong", "https://wrongname.example.test:"+f.pa, "basic")
	o.connector("team-a", "open", "https://open.example.test:"+f.pa, "")
	o.connector("team-b", "api", "https://api.example.test:"+f.pa, "basic")
	f.env = startEnv(t, o, []*x509.Certificate{upCA.cert}, opts...)
	f.basic = basicValue(upstreamUser, upstreamPass)
	f.bearer = "Bearer " + upstreamBear
	f.basicB = basicValue("team-b", teamBPass)
	return f
}

func splitFields(s string) []string { return strings.Fields(s) }

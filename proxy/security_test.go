package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// secCase is one rule of the security suite: a request, the status it must
// get and the only credential (if any) the upstreams may see.
type secCase struct {
	name string
	do   func(t *testing.T, f *fixture, all *bodies) int
	want int
	// inject is the credential that must reach the upstream; nil means no
	// credential may reach any upstream.
	inject func(f *fixture) string
	check  func(t *testing.T, f *fixture, reqs []seen)
}

// none adds the check that no upstream saw the request at all.
func (c secCase) none() secCase {
	c.check = func(t *testing.T, _ *fixture, reqs []seen) {
		if len(reqs) != 0 {
			t.Errorf("upstream saw %d requests, want none", len(reqs))
		}
	}
	return c
}

func basicOf(f *fixture) string  { return f.basic }
func bearerOf(f *fixture) string { return f.bearer }

func fwdCase(name, user, token, method, u string, want int, inject func(*fixture) string) secCase {
	return secCase{name: name, want: want, inject: inject, do: func(t *testing.T, f *fixture, all *bodies) int {
		return f.fwd(t, user, token, method, f.expand(u), all)
	}}
}

func revCase(name, path string, h http.Header, want int, inject func(*fixture) string) secCase {
	return secCase{name: name, want: want, inject: inject, do: func(t *testing.T, f *fixture, all *bodies) int {
		hh := http.Header{}
		for k, v := range h {
			hh[k] = []string{v[0]}
		}
		code, _ := f.rev(t, f.expand(path), hh, all)
		return code
	}}
}

func rawCase(name, raw string, want int, inject func(*fixture) string) secCase {
	return secCase{name: name, want: want, inject: inject, do: func(t *testing.T, f *fixture, all *bodies) int {
		return f.raw(t, f.expand(raw), all)
	}}
}

func innerCase(name, authority, sni, req string, insecure bool, want int, inject func(*fixture) string) secCase {
	return secCase{name: name, want: want, inject: inject, do: func(t *testing.T, f *fixture, all *bodies) int {
		return f.inner(t, f.expand(authority), sni, f.expand(req), insecure, all)
	}}
}

func plainCase(name, authority, req string, want int, inject func(*fixture) string) secCase {
	return secCase{name: name, want: want, inject: inject, do: func(t *testing.T, f *fixture, all *bodies) int {
		return f.plainInner(t, f.expand(authority), f.expand(req), all)
	}}
}

// expand replaces {A} {B} {C} {S} by upstream ports and {TA} {TB} by tokens.
func (f *fixture) expand(s string) string {
	return strings.NewReplacer("{A}", f.pa, "{B}", f.pb, "{C}", f.pc, "{S}", f.ps,
		"{PA-plain}", proxyAuth("team-a/plain", tokA), "{PA-api}", proxyAuth("team-a/api", tokA)).Replace(s)
}

func securityCases() []secCase {
	api, gl, reg := "team-a/api", "team-a/gl", "team-a/reg"
	return []secCase{
		// Controls: the credential does arrive where it belongs.
		fwdCase("control: forward MITM to the address injects", api, tokA, "GET", "https://api.example.test:{A}/x", 200, basicOf),
		fwdCase("control: address extension injects", api, tokA, "GET", "https://api-ext.example.test:{A}/v1/x", 200, basicOf),
		fwdCase("control: host is case-insensitive", api, tokA, "GET", "https://API.Example.TEST:{A}/x", 200, basicOf),
		fwdCase("control: bearer secret injects Bearer", reg, tokA, "GET", "https://reg.example.test:{A}/", 200, bearerOf),
		fwdCase("control: plain HTTP forward injects", "team-a/plain", tokA, "GET", "http://plain.example.test:{C}/p?q=1", 200, basicOf),
		revCase("control: reverse path form injects", "/namespaces/team-a/connectors/api/x?y=1", bearer(tokA), 200, basicOf),
		revCase("control: reverse host form injects", "/x", http.Header{"Host": {"c-api.team-a.svc.cluster.local"}, "Authorization": {"Bearer " + tokA}}, 200, basicOf),
		revCase("control: reverse Basic password is the token", "/namespaces/team-a/connectors/api/", http.Header{"Authorization": {basicValue("ignored", tokA)}}, 200, basicOf),
		revCase("control: team-b uses its own connector", "/namespaces/team-b/connectors/api/", bearer(tokB), 200, func(f *fixture) string { return f.basicB }),
		fwdCase("control: connector without Secret injects nothing", "team-a/open", tokA, "GET", "https://open.example.test:{A}/", 200, nil),

		// Host confusion.
		fwdCase("host confusion: connector host as a prefix of another", api, tokA, "GET", "https://api.example.test.evil.test:{A}/", 403, nil),
		fwdCase("host confusion: connector host in the path", api, tokA, "GET", "https://evil.test:{A}/api.example.test", 403, nil),
		fwdCase("host confusion: connector host as userinfo (CONNECT)", api, tokA, "GET", "https://api.example.test@evil.test:{A}/", 403, nil),
		// Go's client drops userinfo before it sends CONNECT, so this one is raw.
		rawCase("host confusion: connector host as userinfo (raw CONNECT)",
			"CONNECT api.example.test@evil.test:{A} HTTP/1.1\r\nHost: api.example.test@evil.test:{A}\r\n{PA-api}\r\n", 400, nil),
		rawCase("host confusion: connector host as userinfo (absolute form)",
			"GET http://plain.example.test@evil.test:{C}/ HTTP/1.1\r\nHost: evil.test:{C}\r\n{PA-plain}\r\n", 400, nil),
		fwdCase("host confusion: connector host in the query", api, tokA, "GET", "https://evil.test:{A}/?u=api.example.test", 403, nil),

		// Port and scheme.
		fwdCase("port: another port gets nothing", reg, tokA, "GET", "https://reg.example.test:{B}/", 403, nil),
		fwdCase("scheme: http gets nothing", reg, tokA, "GET", "http://reg.example.test:{C}/", 403, nil),

		// Path prefix.
		fwdCase("path: under the prefix injects", gl, tokA, "GET", "https://h.example.test:{A}/gitlab/group/repo.git", 200, basicOf),
		fwdCase("path: prefix without segment boundary", gl, tokA, "GET", "https://h.example.test:{A}/gitlabx", 200, nil),
		fwdCase("path: other path", gl, tokA, "GET", "https://h.example.test:{A}/other", 200, nil),
		fwdCase("path: dot-dot escape", gl, tokA, "GET", "https://h.example.test:{A}/gitlab/../other", 200, nil),
		fwdCase("path: encoded dot-dot escape", gl, tokA, "GET", "https://h.example.test:{A}/gitlab/%2e%2e/other", 200, nil),
		fwdCase("path: encoded slash after the prefix name", gl, tokA, "GET", "https://h.example.test:{A}/gitlab%2Fother", 200, nil),
		fwdCase("path: encoded slash in a dot-dot segment", gl, tokA, "GET", "https://h.example.test:{A}/gitlab/..%2Fother", 200, nil),
		fwdCase("path: extension path prefix is enforced", api, tokA, "GET", "https://api-ext.example.test:{A}/v2/x", 200, nil),
		revCase("path: reverse dot-dot escape is refused", "/namespaces/team-a/connectors/gl/../other", bearer(tokA), 400, nil),
		revCase("path: reverse encoded dot-dot escape is refused", "/namespaces/team-a/connectors/gl/%2e%2e/other", bearer(tokA), 400, nil),
		// Regression: "..;" passed the prefix rule and got the credential.
		fwdCase("path: dot-dot with path parameters", gl, tokA, "GET", "https://h.example.test:{A}/gitlab/..;/other", 200, nil),
		revCase("path: reverse dot-dot with path parameters is refused", "/namespaces/team-a/connectors/gl/..;/other", bearer(tokA), 400, nil),
		fwdCase("path: double-encoded dot-dot", gl, tokA, "GET", "https://h.example.test:{A}/gitlab/%252e%252e/other", 200, nil),

		// Redirects.
		{name: "redirect: passed to the client, not followed", want: 302, inject: basicOf,
			do: func(t *testing.T, f *fixture, all *bodies) int {
				return f.fwd(t, api, tokA, "GET", f.expand("https://api.example.test:{A}/redirect?to=https://other.example.test:{A}/landing"), all)
			},
			check: func(t *testing.T, _ *fixture, reqs []seen) {
				if len(reqs) != 1 {
					t.Errorf("upstream saw %d requests, want 1 (no follow)", len(reqs))
				}
			}},
		fwdCase("redirect: the follow-up to the other host gets nothing", api, tokA, "GET", "https://other.example.test:{A}/landing", 403, nil),

		// Inside an intercepted tunnel.
		innerCase("mitm: control", "api.example.test:{A}", "api.example.test", "GET /in HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n", false, 200, basicOf),
		innerCase("mitm: mismatched SNI", "api.example.test:{A}", "other.example.test", "GET / HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n", true, 421, nil),
		innerCase("mitm: inner Host of another host", "api.example.test:{A}", "api.example.test", "GET / HTTP/1.1\r\nHost: other.example.test:{A}\r\n\r\n", false, 421, nil),
		innerCase("mitm: inner Host with another port", "api.example.test:{A}", "api.example.test", "GET / HTTP/1.1\r\nHost: api.example.test:{B}\r\n\r\n", false, 421, nil),
		innerCase("mitm: inner absolute URL to another host", "api.example.test:{A}", "api.example.test", "GET https://other.example.test:{A}/ HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n", false, 421, nil),
		innerCase("mitm: inner absolute URL with http scheme", "api.example.test:{A}", "api.example.test", "GET http://api.example.test:{A}/ HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n", false, 421, nil),

		// Inside a tunnel to an http:// Connector, served in the clear.
		plainCase("plain tunnel: control", "plain.example.test:{C}", "GET /in HTTP/1.1\r\nHost: plain.example.test:{C}\r\n\r\n", 200, basicOf),
		plainCase("plain tunnel: inner Host of another host", "plain.example.test:{C}", "GET / HTTP/1.1\r\nHost: other.example.test:{C}\r\n\r\n", 421, nil),
		plainCase("plain tunnel: inner Host without the port", "plain.example.test:{C}", "GET / HTTP/1.1\r\nHost: plain.example.test\r\n\r\n", 421, nil),
		plainCase("plain tunnel: inner absolute URL with https scheme", "plain.example.test:{C}", "GET https://plain.example.test:{C}/ HTTP/1.1\r\nHost: plain.example.test:{C}\r\n\r\n", 421, nil),
		plainCase("plain tunnel: inner absolute URL to another host", "plain.example.test:{C}", "GET http://other.example.test:{C}/ HTTP/1.1\r\nHost: plain.example.test:{C}\r\n\r\n", 421, nil),
		plainCase("plain tunnel: another port is refused", "plain.example.test:{A}", "", 403, nil),

		// Host header against the absolute-form target.
		{name: "forward: decision and outbound Host follow the URL authority", want: 200, inject: basicOf,
			do: func(t *testing.T, f *fixture, all *bodies) int {
				return f.raw(t, f.expand("GET http://plain.example.test:{C}/hc HTTP/1.1\r\nHost: evil.test\r\n{PA-plain}\r\n"), all)
			},
			check: func(t *testing.T, f *fixture, reqs []seen) {
				if len(reqs) != 1 || reqs[0].Host != "plain.example.test:"+f.pc {
					t.Errorf("upstream saw %+v, want Host plain.example.test:%s", reqs, f.pc)
				}
			}},
		rawCase("forward: matching Host header does not rescue another authority",
			"GET http://evil.test:{C}/ HTTP/1.1\r\nHost: plain.example.test:{C}\r\n{PA-plain}\r\n", 403, nil),

		// Namespace isolation on the reverse proxy.
		revCase("reverse: namespace B token, path form, namespace A connector", "/namespaces/team-a/connectors/api/x", bearer(tokB), 403, nil),
		revCase("reverse: namespace B token, host form, namespace A connector", "/x", http.Header{"Host": {"c-api.team-a.svc"}, "Authorization": {"Bearer " + tokB}}, 403, nil),
		revCase("reverse: token without access", "/namespaces/team-a/connectors/api/x", bearer(tokNoAccess), 403, nil),
		revCase("reverse: no token", "/namespaces/team-a/connectors/api/x", nil, 401, nil),
		revCase("reverse: bad token", "/namespaces/team-a/connectors/api/x", bearer("not-a-token"), 401, nil),
		revCase("reverse: unknown connector", "/namespaces/team-a/connectors/missing/x", bearer(tokA), 404, nil),
		revCase("reverse: no route", "/namespaces/../connectors/api/x", bearer(tokA), 404, nil),

		// Malformed connector lists and credentials.
		fwdCase("list: empty", "", tokA, "GET", "http://plain.example.test:{C}/", 407, nil),
		fwdCase("list: duplicate", "team-a/plain,team-a/plain", tokA, "GET", "http://plain.example.test:{C}/", 407, nil),
		fwdCase("list: dot-dot", "../plain", tokA, "GET", "http://plain.example.test:{C}/", 407, nil),
		fwdCase("list: missing namespace", "plain", tokA, "GET", "http://plain.example.test:{C}/", 407, nil),
		fwdCase("list: missing name", "team-a/", tokA, "GET", "http://plain.example.test:{C}/", 407, nil),
		fwdCase("list: empty item", "team-a/plain,,team-a/api", tokA, "GET", "http://plain.example.test:{C}/", 407, nil),
		fwdCase("list: encoded slash form accepted", "team-a%2Fplain", tokA, "GET", "http://plain.example.test:{C}/", 200, basicOf),
		fwdCase("list: wrong token", "team-a/plain", "nope", "GET", "http://plain.example.test:{C}/", 407, nil),
		fwdCase("list: no access to a listed connector", "team-a/plain,team-b/api", tokA, "GET", "http://plain.example.test:{C}/", 403, nil),
		rawCase("list: not base64", "GET http://plain.example.test:{C}/ HTTP/1.1\r\nHost: plain.example.test:{C}\r\nProxy-Authorization: Basic !!!\r\n\r\n", 407, nil),
		rawCase("list: no credentials", "GET http://plain.example.test:{C}/ HTTP/1.1\r\nHost: plain.example.test:{C}\r\n\r\n", 407, nil),
		rawCase("list: CONNECT without credentials", "CONNECT api.example.test:{A} HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n", 407, nil),

		// Methods that echo the request (and its credential) back: never
		// proxied, in any mode, and no upstream sees them.
		rawCase("method: TRACE reverse path form", "TRACE /namespaces/team-a/connectors/api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+"\r\n\r\n", 405, nil).none(),
		rawCase("method: TRACE reverse host form", "TRACE /x HTTP/1.1\r\nHost: c-api.team-a.svc\r\nAuthorization: Bearer "+tokA+"\r\n\r\n", 405, nil).none(),
		rawCase("method: TRACK reverse", "TRACK /namespaces/team-a/connectors/api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+"\r\n\r\n", 405, nil).none(),
		rawCase("method: trace in lower case", "trace /namespaces/team-a/connectors/api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+"\r\n\r\n", 405, nil).none(),
		rawCase("method: TRACE forward", "TRACE http://plain.example.test:{C}/x HTTP/1.1\r\nHost: plain.example.test:{C}\r\n{PA-plain}\r\n", 405, nil).none(),
		innerCase("method: TRACE inside an intercepted tunnel", "api.example.test:{A}", "api.example.test", "TRACE /x HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n", false, 405, nil).none(),
		innerCase("method: TRACK inside an intercepted tunnel", "api.example.test:{A}", "api.example.test", "TRACK /x HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n", false, 405, nil).none(),

		// Framing of every protocol version.
		rawCase("smuggling: HTTP/1.0 with Content-Length and Transfer-Encoding (reverse)",
			"POST /namespaces/team-a/connectors/plain/ HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer "+tokA+
				"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, nil).none(),
		rawCase("smuggling: HTTP/1.0 with Transfer-Encoding and Content-Length (forward)",
			"POST http://plain.example.test:{C}/ HTTP/1.0\r\nHost: plain.example.test:{C}\r\n{PA-plain}"+
				"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, nil).none(),
		rawCase("smuggling: HTTP/1.0 with Transfer-Encoding alone",
			"POST /namespaces/team-a/connectors/plain/ HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer "+tokA+
				"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, nil).none(),
		innerCase("smuggling: HTTP/1.0 with both inside an intercepted tunnel", "api.example.test:{A}", "api.example.test",
			"POST /x HTTP/1.0\r\nHost: api.example.test:{A}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false, 400, nil).none(),
		rawCase("control: HTTP/1.0 with Content-Length passes",
			"POST /namespaces/team-a/connectors/plain/ HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer "+tokA+
				"\r\nContent-Length: 5\r\n\r\nhello", 200, basicOf),

		// Upgrades other than websocket and SPDY would splice a stream of
		// further requests past the path rule.
		rawCase("upgrade: h2c reverse", "GET /namespaces/team-a/connectors/plain/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+
			"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 400, nil).none(),
		rawCase("upgrade: h2c forward", "GET http://plain.example.test:{C}/x HTTP/1.1\r\nHost: plain.example.test:{C}\r\n{PA-plain}"+
			"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 400, nil).none(),
		rawCase("upgrade: websocket listed with h2c", "GET /namespaces/team-a/connectors/plain/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+
			"\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n", 400, nil).none(),
		rawCase("upgrade: unknown protocol", "GET /namespaces/team-a/connectors/plain/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+
			"\r\nConnection: Upgrade\r\nUpgrade: tls/1.3\r\n\r\n", 400, nil).none(),
		innerCase("upgrade: h2c inside an intercepted tunnel", "api.example.test:{A}", "api.example.test",
			"GET /x HTTP/1.1\r\nHost: api.example.test:{A}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", false, 400, nil).none(),

		// Request smuggling shapes.
		{name: "smuggling: Content-Length with Transfer-Encoding (reverse)", want: 400,
			do: func(t *testing.T, f *fixture, all *bodies) int {
				return f.raw(t, "POST /namespaces/team-a/connectors/plain/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+
					"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", all)
			}},
		{name: "smuggling: Content-Length with Transfer-Encoding (forward)", want: 400,
			do: func(t *testing.T, f *fixture, all *bodies) int {
				return f.raw(t, f.expand("POST http://plain.example.test:{C}/ HTTP/1.1\r\nHost: plain.example.test:{C}\r\n{PA-plain}"+
					"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), all)
			}},
		// The body error shows only once the request is on its way, so this
		// one goes to a Connector without a Secret.
		{name: "smuggling: bare LF chunk size", want: 400,
			do: func(t *testing.T, f *fixture, all *bodies) int {
				return f.raw(t, "POST /namespaces/team-a/connectors/open/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+
					"\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", all)
			}},

		// Upstream certificates.
		revCase("upstream TLS: self-signed certificate", "/namespaces/team-a/connectors/self/", bearer(tokA), 502, nil),
		revCase("upstream TLS: certificate for another name", "/namespaces/team-a/connectors/wrong/", bearer(tokA), 502, nil),
		fwdCase("upstream TLS: self-signed certificate through MITM", "team-a/self", tokA, "GET", "https://self.example.test:{S}/", 502, nil),
	}
}

func TestSecuritySuite(t *testing.T) {
	f := newFixture(t)
	all := &bodies{}
	for _, c := range securityCases() {
		t.Run(c.name, func(t *testing.T) {
			f.log.take()
			got := c.do(t, f, all)
			reqs := f.log.take()
			if got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
			if c.check != nil {
				c.check(t, f, reqs)
			}
			want := ""
			if c.inject != nil {
				want = c.inject(f)
				if !injectedIn(reqs, want) {
					t.Errorf("credential did not reach the upstream (saw %d requests)", len(reqs))
				}
			}
			// Any header, any value, or the request target: a credential (or
			// its raw secret) must not be anywhere in a request it was not
			// meant for.
			for cred, secret := range map[string]string{f.basic: upstreamPass, f.bearer: upstreamBear, f.basicB: teamBPass} {
				if cred != want && carries(reqs, cred, secret) {
					t.Errorf("a credential reached the upstream where it must not")
				}
			}
			for _, r := range reqs {
				if leaksClientToken(r.Header) {
					t.Errorf("client token or Proxy-Authorization reached the upstream: %v", r.Header)
				}
			}
		})
	}
	assertNoSecrets(t, "response bodies", all.String())
	if !strings.Contains(f.connects.String(), "no listed connector serves") {
		t.Errorf("the bodies of refused CONNECTs were not captured for the scan")
	}
	assertNoSecrets(t, "refused CONNECT bodies", f.connects.String())
	assertNoSecrets(t, "logs", f.logs.String())
}

func leaksClientToken(h http.Header) bool {
	if h.Get("Proxy-Authorization") != "" {
		return true
	}
	for _, v := range h.Values("Authorization") {
		for _, tok := range []string{tokA, tokB, tokNoAccess} {
			if strings.Contains(v, tok) || strings.Contains(v, b64(":"+tok)) || carriesToken([]string{v}, tok) {
				return true
			}
		}
	}
	return false
}

// secretsOf lists every secret value the fixtures use, raw and encoded.
func secretsOf() []string {
	var out []string
	for _, s := range []string{tokA, tokB, tokNoAccess, upstreamPass, upstreamBear, teamBPass} {
		out = append(out, s, b64(s))
	}
	return append(out, b64(upstreamUser+":"+upstreamPass), b64("team-b:"+teamBPass))
}

func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	if text == "" {
		t.Errorf("no %s captured", what)
	}
	for _, s := range secretsOf() {
		if strings.Contains(text, s) {
			t.Errorf("%s contain a secret", what)
		}
	}
}

// TestPipelinedSmugglingIsRefused pins that a Content-Length plus
// Transfer-Encoding request pipelined behind another one gets 400: its head
// arrived with the first request's, so it used to go unchecked and be
// proxied.
func TestPipelinedSmugglingIsRefused(t *testing.T) {
	f := newFixture(t)
	auth := "Authorization: Bearer " + tokA + "\r\n"
	c := dial(t, f.addr)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	pipelined := "GET /namespaces/team-a/connectors/plain/first HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n" +
		"POST /namespaces/team-a/connectors/plain/smuggled HTTP/1.1\r\nHost: x\r\n" + auth +
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	if _, err := io.WriteString(c, pipelined); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	all := &bodies{}
	if got := readStatus(t, br, all); got != http.StatusOK {
		t.Fatalf("first request: status %d", got)
	}
	if got := readStatus(t, br, all); got != http.StatusBadRequest {
		t.Errorf("pipelined smuggling request: status %d, want 400", got)
	}
	for _, r := range f.log.take() {
		if strings.Contains(r.Path, "smuggled") {
			t.Errorf("the smuggled request reached the upstream")
		}
	}
}

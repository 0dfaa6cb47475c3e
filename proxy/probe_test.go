package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSendAsInjectsOnlyForTheConnectorsAddresses pins the rule the status
// probes rely on: SendAs sends the Connector's credential to its own
// addresses and refuses, without sending anything, every other URL.
func TestSendAsInjectsOnlyForTheConnectorsAddresses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	api, err := f.objects.Connector(ctx, "team-a", "api")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := f.objects.Connector(ctx, "team-a", "gl")
	if err != nil {
		t.Fatal(err)
	}
	send := func(c string, u string) (int, error) {
		conn := api
		if c == "gl" {
			conn = gl
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer client-supplied")
		resp, err := f.proxy.SendAs(ctx, conn, req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}

	for _, u := range []string{
		"https://api.example.test:" + f.pa + "/user",
		"https://api-ext.example.test:" + f.pa + "/v1/x",
	} {
		code, err := send("api", u)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s: %v %v", u, code, err)
		}
		reqs := f.log.take()
		if len(reqs) != 1 || !injectedIn(reqs, f.basic) {
			t.Fatalf("%s: the credential was not injected: %+v", u, reqs)
		}
		if carries(reqs, "client-supplied") {
			t.Fatalf("%s: a caller's Authorization went upstream", u)
		}
	}

	for _, tc := range []struct{ conn, url string }{
		{"api", "https://other.example.test:" + f.pa + "/user"},         // another host, same server
		{"api", "https://api.example.test:" + f.pb + "/user"},           // another port
		{"api", "http://api.example.test:" + f.pa + "/user"},            // another scheme
		{"api", "https://api-ext.example.test:" + f.pa + "/v2/x"},       // outside the extension's prefix
		{"gl", "https://h.example.test:" + f.pa + "/info/refs"},         // outside the address's prefix
		{"gl", "https://h.example.test:" + f.pa + "/gitlab/../x"},       // climbs out of the prefix
		{"api", "https://user:pw@api.example.test:" + f.pa + "/user"},   // userinfo
		{"api", "http://" + strings.TrimPrefix(f.url, "http://") + "/"}, // the proxy itself
	} {
		_, err := send(tc.conn, tc.url)
		if !errors.Is(err, ErrNotConnectorAddress) {
			t.Fatalf("%s: want ErrNotConnectorAddress, got %v", tc.url, err)
		}
		if strings.Contains(err.Error(), upstreamPass) || strings.Contains(err.Error(), b64(upstreamUser+":"+upstreamPass)) {
			t.Fatalf("%s: error carries the credential: %v", tc.url, err)
		}
		if reqs := f.log.take(); len(reqs) != 0 {
			t.Fatalf("%s: a refused probe reached an upstream: %+v", tc.url, reqs)
		}
	}

	// Redirects come back; they are not followed.
	code, err := send("api", "https://api.example.test:"+f.pa+"/redirect?to=https://other.example.test:"+f.pa+"/")
	if err != nil || code != http.StatusFound {
		t.Fatalf("redirect: %v %v", code, err)
	}
	if reqs := f.log.take(); len(reqs) != 1 {
		t.Fatalf("the redirect was followed: %+v", reqs)
	}
}

// Probes carry the credential the way proxied requests do: a class whose
// auth type has a Rego generator gets the generator's header, query
// parameter or body field, and the upstream that checks it exactly
// answers 200. A broken generator is an error that sends nothing.
func TestSendAsUsesTheClassGenerator(t *testing.T) {
	f := newRegoFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		connector, host, method, path, body string
	}{
		{"gitlab", "gitlab.example.test", http.MethodGet, "/api/v4/bearer", ""},
		{"apikey", "keys.example.test", http.MethodGet, "/apikey", ""},
		{"query", "keys.example.test", http.MethodGet, "/query?page=2", ""},
		{"body", "keys.example.test", http.MethodPost, "/json", `{"name":"x"}`},
	} {
		t.Run(tc.connector, func(t *testing.T) {
			c, err := f.objects.Connector(ctx, "team-a", tc.connector)
			if err != nil {
				t.Fatal(err)
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequestWithContext(ctx, tc.method, "https://"+tc.host+":"+f.pa+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := f.proxy.SendAs(ctx, c, req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the upstream answered %d: the probe did not carry the generator's credential", resp.StatusCode)
			}
		})
	}

	c, err := f.objects.Connector(ctx, "team-a", "broken-gen")
	if err != nil {
		t.Fatal(err)
	}
	_ = f.log.take()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://broken.example.test:"+f.pa+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := f.proxy.SendAs(ctx, c, req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("a broken generator sent the probe (%d)", resp.StatusCode)
	} else if strings.Contains(err.Error(), regoUpstreamKey) {
		t.Fatalf("the error carries the credential: %v", err)
	}
	if n := len(f.log.take()); n != 0 {
		t.Fatalf("the upstream saw %d requests from a broken generator", n)
	}
}

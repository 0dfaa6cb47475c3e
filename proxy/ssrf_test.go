package proxy

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
)

func TestSSRFGuardRefusesTargets(t *testing.T) {
	// strict: loopback refused, unmatched hosts allowed so the guard (not
	// the matcher) is what refuses.
	strict := newFixture(t, func(o *Options) {
		o.AllowLoopback = false
		o.AllowUnmatchedTunnels = true
		o.DenyCIDRs = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}
	})
	// loose: loopback allowed; the proxy's own port must stay refused.
	loose := newFixture(t, func(o *Options) { o.AllowUnmatchedTunnels = true })
	_, ownPort, _ := net.SplitHostPort(loose.addr)
	// sameHost's public address shares its host with a Connector.
	sameHost := newFixture(t, func(o *Options) {
		o.AllowUnmatchedTunnels = true
		o.PublicURL = publicurl.MustParse("http://plain.example.test:1")
	})
	all := &bodies{}
	cases := []struct {
		name string
		f    *fixture
		raw  string
		want int
	}{
		{"loopback literal", strict, "GET http://127.0.0.1:{C}/ HTTP/1.1", 403},
		{"loopback short form", strict, "GET http://127.1:{C}/ HTTP/1.1", 403},
		{"loopback decimal", strict, "GET http://2130706433:{C}/ HTTP/1.1", 403},
		{"loopback hex", strict, "GET http://0x7f000001:{C}/ HTTP/1.1", 403},
		{"loopback octal", strict, "GET http://0177.0.0.1:{C}/ HTTP/1.1", 403},
		{"loopback IPv4-mapped IPv6", strict, "GET http://[::ffff:127.0.0.1]:{C}/ HTTP/1.1", 403},
		{"loopback IPv6", strict, "GET http://[::1]:{C}/ HTTP/1.1", 403},
		{"loopback by name", strict, "GET http://plain.example.test:{C}/ HTTP/1.1", 403},
		{"loopback CONNECT", strict, "CONNECT 127.0.0.1:{A} HTTP/1.1", 403},
		{"metadata literal", strict, "GET http://169.254.169.254/latest/meta-data HTTP/1.1", 403},
		{"metadata by name", strict, "GET http://metadata.example.test/ HTTP/1.1", 403},
		{"metadata IPv4-mapped by name", strict, "GET http://mapped.example.test/ HTTP/1.1", 403},
		{"metadata NAT64 form", strict, "GET http://[64:ff9b::a9fe:a9fe]/ HTTP/1.1", 403},
		{"link-local IPv6 by name", strict, "GET http://v6ll.example.test/ HTTP/1.1", 403},
		{"link-local IPv6 literal", strict, "GET http://[fe80::1]/ HTTP/1.1", 403},
		{"unspecified", strict, "GET http://0.0.0.0:{C}/ HTTP/1.1", 403},
		{"extra deny CIDR", strict, "GET http://10.99.1.2/ HTTP/1.1", 403},
		{"proxy's own port, loopback allowed", loose, "GET http://127.0.0.1:" + ownPort + "/ HTTP/1.1", 403},
		{"proxy's own port by name", loose, "GET http://plain.example.test:" + ownPort + "/ HTTP/1.1", 403},
		{"proxy's own port CONNECT", loose, "CONNECT 127.0.0.1:" + ownPort + " HTTP/1.1", 403},
		{"proxy's public name", loose, "GET http://connectors-proxy.connectors-system.svc/ HTTP/1.1", 403},
		{"proxy's public name CONNECT", loose, "CONNECT connectors-proxy.connectors-system.svc:80 HTTP/1.1", 403},
		{"proxy's Service, short name", loose, "GET http://connectors-proxy.connectors-system/ HTTP/1.1", 403},
		{"proxy's Service, full name", loose, "GET http://connectors-proxy.connectors-system.svc.cluster.local/ HTTP/1.1", 403},
		{"control: loopback allowed when configured", loose, "GET http://127.0.0.1:{C}/ HTTP/1.1", 200},
		{"proxy's public host and port", sameHost, "GET http://plain.example.test:1/ HTTP/1.1", 403},
		{"proxy's public address resolved, by IP", sameHost, "GET http://127.0.0.1:1/ HTTP/1.1", 403},
		// Regression: only the host was compared, so every Connector on the
		// proxy's host name (or the demo's 127.0.0.1) was refused as a loop.
		{"proxy's public host, another port", sameHost, "GET http://plain.example.test:{C}/ HTTP/1.1", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			line := c.f.expand(c.raw)
			host := strings.Fields(line)[1]
			if strings.HasPrefix(line, "GET") {
				host = strings.SplitN(strings.TrimPrefix(host, "http://"), "/", 2)[0]
			}
			got := c.f.raw(t, line+"\r\nHost: "+host+"\r\n"+proxyAuth("team-a/plain", tokA)+"\r\n", all)
			if got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
			for _, r := range c.f.log.take() {
				if c.want != 200 {
					t.Errorf("upstream reached: %+v", r.Host)
				}
			}
		})
	}
	assertNoSecrets(t, "response bodies", all.String())
}

func TestLooksNumeric(t *testing.T) {
	for host, want := range map[string]bool{
		"127.1": true, "2130706433": true, "0x7f000001": true, "0177.0.0.1": true, "1.2.3.4.": true,
		"example.com": false, "1.example": false, "a1": false, "x": false, "": false, "cafe": false,
	} {
		if got := looksNumeric(host); got != want {
			t.Errorf("looksNumeric(%q) = %v, want %v", host, got, want)
		}
	}
}

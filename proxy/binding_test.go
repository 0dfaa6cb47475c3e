package proxy

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/kube"
)

// refuseFrom refuses every token used from another address than allowed.
type refuseFrom struct{ allowed netip.Addr }

func (b refuseFrom) Check(_ context.Context, _ kube.User, source netip.Addr) error {
	if source == b.allowed {
		return nil
	}
	return &kube.BindingError{Binding: kube.BindingSource, Reason: "the connection comes from " + source.String()}
}

// TestRefusedBindingNamesTheBinding pins that a token whose pod binding
// fails gets 401 (reverse) or 407 (forward) saying which binding failed,
// reaches no upstream, and that the audit line records the binding.
func TestRefusedBindingNamesTheBinding(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Binding = refuseFrom{allowed: netip.MustParseAddr("127.0.0.9")} })
	all := &bodies{}
	code := f.raw(t, "GET /namespaces/team-a/connectors/api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+"\r\n\r\n", all)
	if code != http.StatusUnauthorized || !strings.Contains(all.String(), "source-address binding") {
		t.Errorf("reverse: %d %q, want 401 naming the source-address binding", code, all.String())
	}
	if code := f.fwd(t, "team-a/plain", tokA, "GET", "http://plain.example.test:"+f.pc+"/x", nil); code != http.StatusProxyAuthRequired {
		t.Errorf("forward: %d, want 407", code)
	}
	if code := f.fwd(t, "team-a/api", tokA, "GET", "https://api.example.test:"+f.pa+"/x", nil); code != http.StatusProxyAuthRequired {
		t.Errorf("CONNECT: %d, want 407", code)
	}
	if reqs := f.log.take(); len(reqs) != 0 {
		t.Errorf("upstream saw %d requests", len(reqs))
	}
	if n := strings.Count(f.logs.String(), `"binding_refused":"source-address"`); n != 3 {
		t.Errorf("%d audit lines record the refused binding, want 3:\n%s", n, f.logs.String())
	}
	assertNoSecrets(t, "logs", f.logs.String())
}

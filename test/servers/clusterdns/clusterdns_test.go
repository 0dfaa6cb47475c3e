package clusterdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/connectors-node/connectors-node/test/apiserver"
)

func externalName(ns, name, target string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target}}
}

func clusterIP(ns, name, ip string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
}

func start(t *testing.T, kube kubernetes.Interface) *Server {
	t.Helper()
	var log strings.Builder
	s, err := Start(t.Context(), Options{Kube: kube, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		t.Logf("queries:\n%s", log.String())
	})
	return s
}

// resolver is Go's own DNS client, sending every query to s over network.
func resolver(s *Server, network string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}

// The server answers from the real API server's Services: ClusterIP
// Services by their IP, ExternalName Services by a CNAME and (for
// localhost or another Service) the target's address in the same answer,
// over UDP and TCP, to Go's resolver; unknown names are not found.
func TestAnswersServiceNamesFromTheAPIServer(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{NoCRDs: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.Namespace(t, "clusterdns")
	web, err := env.Kube.CoreV1().Services(ns).Create(ctx, clusterIP(ns, "web", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	webIP := web.Spec.ClusterIP
	if net.ParseIP(webIP) == nil {
		t.Fatalf("the API server gave web the cluster IP %q", webIP)
	}
	s := start(t, env.Kube)
	for _, svc := range []*corev1.Service{
		externalName(ns, "c-git", "localhost"),
		externalName(ns, "alias", "web."+ns+".svc.cluster.local"),
		externalName(ns, "outside", "tools.example.com"),
	} {
		if _, err := env.Kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	suffix := "." + ns + ".svc.cluster.local."
	// The informer sees the Services created after Start.
	waitFound(ctx, t, s, "c-git"+suffix, "alias"+suffix, "outside"+suffix)

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := resolver(s, network)
			for name, want := range map[string]string{
				"web" + suffix:                          webIP,
				"c-git" + suffix:                        "127.0.0.1",
				strings.ToUpper("c-git" + suffix):       "127.0.0.1",
				"alias" + suffix:                        webIP,
				"kubernetes.default.svc.cluster.local.": "",
			} {
				addrs, err := r.LookupHost(ctx, name)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if want != "" && !slices.Equal(addrs, []string{want}) {
					t.Errorf("%s: %v, want [%s]", name, addrs, want)
				}
			}
			if cname, err := r.LookupCNAME(ctx, "c-git"+suffix); err != nil || cname != "localhost." {
				t.Errorf("CNAME of c-git: %q, %v; want localhost.", cname, err)
			}
			for _, name := range []string{"missing" + suffix, "web.other.svc.cluster.local.", "tools.example.com.", "cluster.local.", "outside" + suffix} {
				addrs, err := r.LookupHost(ctx, name)
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
					t.Errorf("%s: %v, %v; want not found", name, addrs, err)
				}
			}
		})
	}

	// The raw answer for the ExternalName Service to localhost: NOERROR,
	// authoritative, the CNAME then the A record, as glibc needs them.
	h, answers := exchange(t, "udp", s.Addr, "c-git"+suffix, dnsmessage.TypeA, false)
	if h.RCode != dnsmessage.RCodeSuccess || !h.Authoritative || h.RecursionAvailable {
		t.Errorf("header %+v, want NOERROR, authoritative, no recursion", h)
	}
	if got := strings.Join(rrStrings(answers), ", "); got != "CNAME localhost., A 127.0.0.1" {
		t.Errorf("answers %q, want the CNAME and the A record", got)
	}
	if h, _ := exchange(t, "tcp", s.Addr, "missing"+suffix, dnsmessage.TypeA, false); h.RCode != dnsmessage.RCodeNameError || !h.Authoritative {
		t.Errorf("unknown name in the cluster domain: %+v, want an authoritative NXDOMAIN", h)
	}
	if h, _ := exchange(t, "udp", s.Addr, "github.com.", dnsmessage.TypeA, false); h.RCode != dnsmessage.RCodeNameError || h.Authoritative {
		t.Errorf("name outside the cluster domain: %+v, want NXDOMAIN, not authoritative", h)
	}
	if s.Asked("C-GIT"+suffix) == 0 {
		t.Errorf("Asked does not count the queries for c-git")
	}

	// A changed Service is answered as it is now.
	if err := env.Kube.CoreV1().Services(ns).Delete(ctx, "c-git", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRCode(ctx, t, s, "c-git"+suffix, dnsmessage.RCodeNameError)
}

// exchange sends one query for name and returns the answer's header and
// answer records; with edns it carries an OPT record.
func exchange(t *testing.T, network, addr, name string, qtype dnsmessage.Type, edns bool) (dnsmessage.Header, []dnsmessage.Resource) {
	t.Helper()
	m := exchangeMessage(t, network, addr, query(t, name, qtype, edns))
	return m.Header, m.Answers
}

// query is a query for name; with edns it carries an OPT record of 1232
// bytes.
func query(t *testing.T, name string, qtype dnsmessage.Type, edns bool) dnsmessage.Message {
	t.Helper()
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET}}}
	if edns {
		var opt dnsmessage.ResourceHeader
		if err := opt.SetEDNS0(1232, dnsmessage.RCodeSuccess, false); err != nil {
			t.Fatal(err)
		}
		q.Additionals = []dnsmessage.Resource{{Header: opt, Body: &dnsmessage.OPTResource{}}}
	}
	return q
}

// exchangeMessage sends q and returns the answer, which must be a
// response with q's ID.
func exchangeMessage(t *testing.T, network, addr string, q dnsmessage.Message) dnsmessage.Message {
	t.Helper()
	req, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(roundTrip(t, network, addr, req)); err != nil {
		t.Fatalf("unpacking the answer to %+v: %v", q.Questions, err)
	}
	if m.ID != q.ID || !m.Response {
		t.Fatalf("answer to %+v: %+v, want the query's ID in a response", q.Questions, m.Header)
	}
	return m
}

// roundTrip sends req and returns the reply.
func roundTrip(t *testing.T, network, addr string, req []byte) []byte {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(t.Context(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if network == "tcp" {
		req = append(binary.BigEndian.AppendUint16(nil, uint16(len(req))), req...) //nolint:gosec // a query of a few hundred bytes
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if network == "tcp" {
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			t.Fatal(err)
		}
		resp := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := make([]byte, 65535)
	n, err := c.Read(resp)
	if err != nil {
		t.Fatal(err)
	}
	return resp[:n]
}

func rrStrings(rrs []dnsmessage.Resource) []string {
	var out []string
	for _, r := range rrs {
		out = append(out, rrString(r))
	}
	return out
}

func waitFound(ctx context.Context, t *testing.T, s *Server, names ...string) {
	t.Helper()
	for _, n := range names {
		waitRCode(ctx, t, s, n, dnsmessage.RCodeSuccess)
	}
}

func waitRCode(ctx context.Context, t *testing.T, s *Server, name string, want dnsmessage.RCode) {
	t.Helper()
	for {
		h, _ := exchange(t, "udp", s.Addr, name, dnsmessage.TypeA, false)
		if h.RCode == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v, want %v", name, h.RCode, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Edge cases against a fake clientset: ExternalName loops end, an answer
// too large for UDP is truncated and flagged (and whole over TCP), EDNS is
// answered with an OPT record, record types a Service lacks are empty
// answers, and what is not one query gets no answer or FORMERR.
func TestLoopsTruncationAndMalformedQueries(t *testing.T) {
	// A chain of ExternalName Services with 63-byte names: its answer of
	// maxChain CNAMEs does not fit in 512 bytes.
	link := func(i int) string { return fmt.Sprintf("l%d-%s", i, strings.Repeat("x", 60)) }
	objs := []*corev1.Service{
		externalName("ns", "loop-a", "loop-b.ns.svc.cluster.local"),
		externalName("ns", "loop-b", "loop-a.ns.svc.cluster.local."),
		clusterIP("ns", "web", "10.0.0.7"),
		clusterIP("ns", "headless", "None"),
	}
	objs[2].Spec.ClusterIPs = []string{"10.0.0.7", "fd00::7"}
	for i := range maxChain + 1 {
		objs = append(objs, externalName("ns", link(i), link(i+1)+".ns.svc.cluster.local"))
	}
	kube := fake.NewClientset()
	for _, o := range objs {
		if _, err := kube.CoreV1().Services(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, kube)

	h, answers := exchange(t, "udp", s.Addr, "loop-a.ns.svc.cluster.local.", dnsmessage.TypeA, false)
	if h.RCode != dnsmessage.RCodeSuccess || len(answers) != maxChain {
		t.Errorf("a loop of ExternalName Services: %v with %d records, want NOERROR with %d CNAMEs", h.RCode, len(answers), maxChain)
	}

	chain := link(0) + ".ns.svc.cluster.local."
	if h, answers := exchange(t, "udp", s.Addr, chain, dnsmessage.TypeA, false); !h.Truncated || len(answers) != 0 {
		t.Errorf("a long answer over UDP: truncated %v with %d records, want TC and none", h.Truncated, len(answers))
	}
	for _, c := range []struct {
		network string
		edns    bool
	}{{"udp", true}, {"tcp", false}} {
		if h, answers := exchange(t, c.network, s.Addr, chain, dnsmessage.TypeA, c.edns); h.Truncated || len(answers) != maxChain {
			t.Errorf("a long answer over %s (EDNS %v): truncated %v with %d records, want all %d", c.network, c.edns, h.Truncated, len(answers), maxChain)
		}
	}
	if h, answers := exchange(t, "udp", s.Addr, chain, dnsmessage.TypeCNAME, false); h.RCode != dnsmessage.RCodeSuccess || len(answers) != 1 {
		t.Errorf("CNAME query: %v with %d records, want the one CNAME", h.RCode, len(answers))
	}

	if _, answers := exchange(t, "udp", s.Addr, "web.ns.svc.cluster.local.", dnsmessage.TypeAAAA, true); !slices.Equal(rrStrings(answers), []string{"AAAA fd00::7"}) {
		t.Errorf("AAAA of a dual-stack Service: %q", rrStrings(answers))
	}
	if h, answers := exchange(t, "tcp", s.Addr, "headless.ns.svc.cluster.local.", dnsmessage.TypeA, false); h.RCode != dnsmessage.RCodeSuccess || len(answers) != 0 {
		t.Errorf("headless Service: %v with %q, want NOERROR and no address", h.RCode, rrStrings(answers))
	}
	if h, answers := exchange(t, "udp", s.Addr, "web.ns.svc.cluster.local.", dnsmessage.TypeTXT, false); h.RCode != dnsmessage.RCodeSuccess || len(answers) != 0 {
		t.Errorf("TXT of a Service: %v with %q, want NOERROR and no record", h.RCode, rrStrings(answers))
	}
	if _, answers := exchange(t, "udp", s.Addr, "localhost.", dnsmessage.TypeAAAA, false); len(answers) != 0 {
		t.Errorf("AAAA of localhost: %q, want none", rrStrings(answers))
	}
	for _, name := range []string{"ns.svc.cluster.local.", "web.ns.svc.cluster.local.ns.svc.cluster.local.", "a.web.ns.svc.cluster.local."} {
		if h, _ := exchange(t, "udp", s.Addr, name, dnsmessage.TypeA, false); h.RCode != dnsmessage.RCodeNameError {
			t.Errorf("%s: %v, want NXDOMAIN", name, h.RCode)
		}
	}

	// EDNS: the answer carries an OPT record with the server's size.
	q := query(t, "web.ns.svc.cluster.local.", dnsmessage.TypeA, true)
	m := exchangeMessage(t, "udp", s.Addr, q)
	if len(m.Additionals) != 1 || m.Additionals[0].Header.Type != dnsmessage.TypeOPT || m.Additionals[0].Header.Class != 1232 {
		t.Errorf("EDNS answer's additionals: %+v, want one OPT record of 1232 bytes", m.Additionals)
	}

	// Two questions: FORMERR. An unknown opcode: NOTIMP. Garbage and
	// responses: no answer.
	q.Questions = append(q.Questions, q.Questions[0])
	q.Additionals = nil
	if m := exchangeMessage(t, "udp", s.Addr, q); m.RCode != dnsmessage.RCodeFormatError {
		t.Errorf("two questions: %v, want FORMERR", m.RCode)
	}
	q.Questions = q.Questions[:1]
	q.OpCode = 2
	if m := exchangeMessage(t, "tcp", s.Addr, q); m.RCode != dnsmessage.RCodeNotImplemented {
		t.Errorf("opcode 2: %v, want NOTIMP", m.RCode)
	}
	for _, junk := range [][]byte{{1, 2, 3}, func() []byte {
		r, _ := (&dnsmessage.Message{Header: dnsmessage.Header{Response: true}}).Pack()
		return r
	}()} {
		if resp := s.answer(junk, true); resp != nil {
			t.Errorf("answered %x", junk)
		}
	}
}

package clusterdns

import (
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
)

const (
	// ttl is the records' time to live: short, since tests change
	// Services and expect the next lookup to see it.
	ttl = 5
	// maxChain bounds the CNAMEs followed within one answer (ExternalName
	// Services may point at each other, or in a loop).
	maxChain = 8
	// udpLimit is the size of a UDP answer to a client without EDNS, and
	// udpMax the most any client gets over UDP.
	udpLimit = 512
	udpMax   = 4096
)

// answer returns the packed response to the query req, or nil when req is
// not a query worth an answer (no header, or a response).
func (s *Server) answer(req []byte, udp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response {
		return nil
	}
	resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}}
	qs, err := p.AllQuestions()
	switch {
	case h.OpCode != 0:
		resp.RCode = dnsmessage.RCodeNotImplemented
		return pack(resp)
	case err != nil || len(qs) != 1:
		resp.RCode = dnsmessage.RCodeFormatError
		return pack(resp)
	}
	q := qs[0]
	resp.Questions = qs
	limit, edns := udpLimit, ednsSize(&p)
	if edns > 0 {
		limit = min(max(edns, udpLimit), udpMax)
		var opt dnsmessage.ResourceHeader
		if err := opt.SetEDNS0(limit, dnsmessage.RCodeSuccess, false); err == nil {
			resp.Additionals = []dnsmessage.Resource{{Header: opt, Body: &dnsmessage.OPTResource{}}}
		}
	}
	name := canonical(q.Name.String())
	found := false
	if q.Class == dnsmessage.ClassINET || q.Class == dnsmessage.ClassANY {
		found, resp.Answers = s.records(q.Name, name, q.Type, 0)
	}
	resp.Authoritative = isLocalhost(name) || s.inDomain(name)
	if !found {
		resp.RCode = dnsmessage.RCodeNameError
	}
	s.record(q, resp.RCode, resp.Answers)
	out := pack(resp)
	if udp && len(out) > limit {
		resp.Truncated, resp.Answers = true, nil
		out = pack(resp)
	}
	return out
}

// ednsSize returns the UDP payload size of the query's OPT record, 0 when
// it has none (or its other sections do not parse).
func ednsSize(p *dnsmessage.Parser) int {
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return 0
	}
	for {
		h, err := p.AdditionalHeader()
		if err != nil {
			return 0
		}
		if h.Type == dnsmessage.TypeOPT {
			return int(h.Class)
		}
		if p.SkipAdditional() != nil {
			return 0
		}
	}
}

func pack(m dnsmessage.Message) []byte {
	b, err := m.Pack()
	if err != nil {
		// Only a record the server built wrongly fails to pack.
		m.Answers, m.Additionals, m.RCode = nil, nil, dnsmessage.RCodeServerFailure
		if b, err = m.Pack(); err != nil {
			return nil
		}
	}
	return b
}

// records returns whether name (as asked, and canonical) exists and its
// records of type qtype: the CNAME of an ExternalName Service followed by
// what its target has, up to maxChain links.
func (s *Server) records(asked dnsmessage.Name, name string, qtype dnsmessage.Type, depth int) (bool, []dnsmessage.Resource) {
	if isLocalhost(name) {
		if qtype == dnsmessage.TypeA || qtype == dnsmessage.TypeALL {
			return true, []dnsmessage.Resource{{Header: header(asked, dnsmessage.TypeA), Body: &dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}}}
		}
		return true, nil
	}
	svc := s.service(name)
	if svc == nil {
		return false, nil
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		target := canonical(svc.Spec.ExternalName)
		tn, err := dnsmessage.NewName(target + ".")
		if err != nil || target == "" {
			return true, nil
		}
		rrs := []dnsmessage.Resource{{Header: header(asked, dnsmessage.TypeCNAME), Body: &dnsmessage.CNAMEResource{CNAME: tn}}}
		if qtype == dnsmessage.TypeCNAME || depth+1 >= maxChain {
			return true, rrs
		}
		// An unknown target leaves the CNAME alone in the answer.
		_, more := s.records(tn, target, qtype, depth+1)
		return true, append(rrs, more...)
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var rrs []dnsmessage.Resource
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip) // "None" (headless) does not parse
		switch {
		case err != nil:
		case a.Is4() && (qtype == dnsmessage.TypeA || qtype == dnsmessage.TypeALL):
			rrs = append(rrs, dnsmessage.Resource{Header: header(asked, dnsmessage.TypeA), Body: &dnsmessage.AResource{A: a.As4()}})
		case a.Is6() && (qtype == dnsmessage.TypeAAAA || qtype == dnsmessage.TypeALL):
			rrs = append(rrs, dnsmessage.Resource{Header: header(asked, dnsmessage.TypeAAAA), Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	return true, rrs
}

func header(name dnsmessage.Name, typ dnsmessage.Type) dnsmessage.ResourceHeader {
	return dnsmessage.ResourceHeader{Name: name, Type: typ, Class: dnsmessage.ClassINET, TTL: ttl}
}

// service returns the Service a name <svc>.<ns>.svc.<domain> names, or nil.
func (s *Server) service(name string) *corev1.Service {
	rest, ok := strings.CutSuffix(name, ".svc."+s.domain)
	if !ok {
		return nil
	}
	svcName, ns, ok := strings.Cut(rest, ".")
	if !ok || svcName == "" || ns == "" || strings.Contains(ns, ".") {
		return nil
	}
	svc, err := s.services.Services(ns).Get(svcName)
	if err != nil {
		return nil
	}
	return svc
}

func (s *Server) inDomain(name string) bool {
	return name == s.domain || strings.HasSuffix(name, "."+s.domain)
}

func isLocalhost(name string) bool {
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

// canonical is a name in lower case without the final dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// rrString is a record as the query log shows it.
func rrString(r dnsmessage.Resource) string {
	switch b := r.Body.(type) {
	case *dnsmessage.AResource:
		return "A " + netip.AddrFrom4(b.A).String()
	case *dnsmessage.AAAAResource:
		return "AAAA " + netip.AddrFrom16(b.AAAA).String()
	case *dnsmessage.CNAMEResource:
		return "CNAME " + b.CNAME.String()
	default:
		return r.Header.Type.String()
	}
}

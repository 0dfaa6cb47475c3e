package proxy

import (
	"net/http"
	"strings"
	"sync"
)

// minScrubbed is the shortest credential part looked for in response
// headers: a shorter one would match unrelated values.
const minScrubbed = 8

// scrubber removes the credentials the proxy injected into a request from
// the headers of its response: an upstream that echoes the Authorization
// it got (a debug header, an error detail) would otherwise hand the
// credential to the workload. It looks for every form the proxy sent: the
// whole header value, its credential part (the Basic base64 or the bearer
// token), and the decoded Basic password, and every other value it
// injected (addSecrets). It is the one rule for every mode: the recorder
// applies it to each header block written. Bodies are not filtered; see
// docs/security.md.
type scrubber struct {
	mu      sync.Mutex
	needles []string
	// folded holds the needles lowercased, for header names, which
	// net/http canonicalizes; shortest is the length of the shortest
	// needle, below which no value can hold one.
	folded   []string
	shortest int
}

// add records one needle; the caller holds s.mu.
func (s *scrubber) add(n string) {
	s.needles = append(s.needles, n)
	s.folded = append(s.folded, strings.ToLower(n))
	if s.shortest == 0 || len(n) < s.shortest {
		s.shortest = len(n)
	}
}

// addAuthorization records an Authorization value the proxy sends upstream.
func (s *scrubber) addAuthorization(v string) {
	if s == nil || v == "" {
		return
	}
	forms := []string{v}
	if _, rest, ok := strings.Cut(v, " "); ok {
		forms = append(forms, strings.TrimSpace(rest))
	}
	if _, pass, ok := parseBasic(v); ok {
		forms = append(forms, pass)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range forms {
		if len(f) >= minScrubbed {
			s.add(f)
		}
	}
}

// addSecrets records credential values the proxy injects besides the
// Authorization it sends (a generator's values, in any position). Each is
// looked for whole, however short: it is a credential, not a part of one.
func (s *scrubber) addSecrets(values ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v != "" {
			s.add(v)
		}
	}
}

// header removes from h every value that holds an injected credential,
// and every field whose name does.
func (s *scrubber) header(h http.Header) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.needles) == 0 {
		return
	}
	for k, vs := range h {
		if s.holds(k, true) {
			delete(h, k)
			continue
		}
		kept := vs[:0]
		for _, v := range vs {
			if !s.holds(v, false) {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			delete(h, k)
		} else {
			h[k] = kept
		}
	}
}

// holds reports whether v holds a needle; folded compares without case
// (header names). The caller holds s.mu.
func (s *scrubber) holds(v string, folded bool) bool {
	if len(v) < s.shortest {
		return false
	}
	needles := s.needles
	if folded {
		v = strings.ToLower(v)
		needles = s.folded
	}
	for _, n := range needles {
		if strings.Contains(v, n) {
			return true
		}
	}
	return false
}

// recordingTransport records the Authorization of every request it sends.
type recordingTransport struct {
	base  http.RoundTripper
	scrub *scrubber
}

func (t recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.scrub.addAuthorization(r.Header.Get("Authorization"))
	return t.base.RoundTrip(r)
}

package upstream

import (
	"bufio"
	"net/http"
	"net/textproto"
	"slices"

	"golang.org/x/net/http/httpguts"
)

// defaultUserAgent is net/http's User-Agent for a request without one.
const defaultUserAgent = "Go-http-client/1.1"

// eligible reports whether r takes the fast path: a request without a body
// that may be repeated, to a plain http:// address, with canonical, valid
// header fields that ask for nothing but a plain exchange. Only a request
// that may be repeated is taken, so that any response head the parser
// refuses is answered by the fallback, never by an error. Anything else goes to the fallback,
// which sends it or refuses it as net/http does.
//
// It returns the request target to write.
func eligible(r *http.Request) (string, bool) {
	u := r.URL
	if u == nil || u.Scheme != "http" || u.Opaque != "" || u.User != nil || !plainHost(u.Host) {
		return "", false
	}
	if r.Host != "" && !plainHost(r.Host) {
		return "", false
	}
	if r.Body != nil && r.Body != http.NoBody || r.ContentLength != 0 ||
		len(r.TransferEncoding) != 0 || r.Trailer != nil || r.Close {
		return "", false
	}
	m := method(r)
	if m == http.MethodConnect || !validMethod(m) || !replayable(r) {
		return "", false
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) || textproto.CanonicalMIMEHeaderKey(k) != k {
			return "", false
		}
		switch k {
		case "Connection", "Upgrade", "Expect", "Te", "Trailer", "Keep-Alive", "Proxy-Connection":
			return "", false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "", false
			}
		}
	}
	uri := u.RequestURI()
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c < ' ' || c == 0x7f {
			return "", false
		}
	}
	return uri, true
}

// plainHost reports whether h is a non-empty host[:port] of ASCII letters,
// digits, dots, hyphens, colons and brackets: a Host value that net/http
// writes unchanged.
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

func method(r *http.Request) string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !tokenByte(m[i]) {
			return false
		}
	}
	return true
}

// excluded are the fields http.Request.Write writes itself or leaves out.
func excluded(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// writeRequest writes an eligible request's head to w, byte for byte as
// http.Request.Write does: the request line, Host, User-Agent,
// Content-Length: 0 for the methods net/http sends it with, then the
// header fields sorted by name.
func writeRequest(w *bufio.Writer, r *http.Request, uri string) error {
	m := method(r)
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	_, _ = w.WriteString(m)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(uri)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.WriteString(host)
	_, _ = w.WriteString("\r\n")
	// A User-Agent field, even an empty one, replaces net/http's; an
	// empty one (before trimming) is not sent.
	ua := defaultUserAgent
	if vv, ok := r.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" {
		_, _ = w.WriteString("User-Agent: ")
		_, _ = w.WriteString(textproto.TrimString(ua))
		_, _ = w.WriteString("\r\n")
	}
	if m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch {
		_, _ = w.WriteString("Content-Length: 0\r\n")
	}
	var buf [32]string
	keys := buf[:0]
	for k := range r.Header {
		if !excluded(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			_, _ = w.WriteString(k)
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(textproto.TrimString(v))
			_, _ = w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

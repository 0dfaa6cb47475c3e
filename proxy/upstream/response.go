package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// maxHeadBytes bounds a response head (status line and header fields). A
// larger head is handed to the fallback (http.Transport reads up to
// 10 MiB by default).
const maxHeadBytes = 64 << 10

// UnsupportedError is a response head the parser does not read: not
// malformed by net/http's rules, or not known to be, but outside the forms
// this package reads exactly as net/http does.
type UnsupportedError struct{ Reason string }

func (e *UnsupportedError) Error() string {
	return "upstream fast path: unsupported response: " + e.Reason
}

func unsupported(format string, args ...any) error {
	return &UnsupportedError{Reason: fmt.Sprintf(format, args...)}
}

// framing says how a response body ends.
type framing int

const (
	framedNone    framing = iota // no body
	framedLength                 // Content-Length bytes
	framedChunked                // chunked coding, no trailer fields
	framedClose                  // the end of the connection
)

// head is a parsed response head.
type head struct {
	resp    *http.Response
	framing framing
	length  int64 // framedLength: the body's length
}

// readHead reads one response head from br, for a request with method.
// The response's fields are those http.ReadResponse sets; its Body is left
// for the caller, who reads it as h.framing says. A head outside the
// supported forms is an *UnsupportedError; an I/O error is returned as it
// came (io.EOF only when no byte of the head was read).
func readHead(br *bufio.Reader, method string) (*head, error) {
	var buf [maxHeaderFields]field
	fields := buf[:0]
	var scratch []byte // lines longer than br's buffer
	total := 0
	line, err := readLine(br, &scratch, &total)
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil, io.EOF
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	code, status, err := parseStatusLine(line)
	if err != nil {
		return nil, err
	}
	for {
		line, err := readLine(br, &scratch, &total)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if len(fields) == maxHeaderFields {
			return nil, unsupported("more than %d header fields", maxHeaderFields)
		}
		f, err := parseField(line)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	resp := &http.Response{
		Status:     status,
		StatusCode: code,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(fields)),
	}
	for _, f := range fields {
		resp.Header[f.key] = append(resp.Header[f.key], f.value)
	}
	h := &head{resp: resp}
	if err := h.frame(method); err != nil {
		return nil, err
	}
	return h, nil
}

// maxHeaderFields bounds the header fields of a response head.
const maxHeaderFields = 128

type field struct{ key, value string }

// readLine returns one CRLF-terminated line without its CRLF. A line that
// ends in a bare LF, or holds a CR anywhere else, is unsupported. Lines up
// to br's size point into br's buffer and are valid until the next read;
// longer ones are gathered in *scratch.
func readLine(br *bufio.Reader, scratch *[]byte, total *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		*scratch = append((*scratch)[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if *total+len(*scratch) > maxHeadBytes {
				return nil, unsupported("head larger than %d bytes", maxHeadBytes)
			}
			line, err = br.ReadSlice('\n')
			*scratch = append(*scratch, line...)
		}
		line = *scratch
	}
	*total += len(line)
	if err != nil {
		return line, err
	}
	if *total > maxHeadBytes {
		return nil, unsupported("head larger than %d bytes", maxHeadBytes)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, unsupported("line not ended by CRLF")
	}
	line = line[:len(line)-2]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, unsupported("bare CR in the head")
	}
	return line, nil
}

// parseStatusLine reads "HTTP/1.1 NNN reason". It returns the status code
// and the Status string as net/http sets it ("NNN reason").
func parseStatusLine(line []byte) (int, string, error) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(line, []byte(proto)) {
		return 0, "", unsupported("status line not of HTTP/1.1")
	}
	rest := line[len(proto):]
	if len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, "", unsupported("status code not three digits")
	}
	code := 0
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return 0, "", unsupported("status code not three digits")
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return 0, "", unsupported("status code %d", code)
	}
	for _, c := range rest[3:] {
		if !valueByte(c) {
			return 0, "", unsupported("control byte in the reason phrase")
		}
	}
	switch string(rest) {
	case "200 OK":
		return code, "200 OK", nil
	case "204 No Content":
		return code, "204 No Content", nil
	case "304 Not Modified":
		return code, "304 Not Modified", nil
	}
	return code, string(rest), nil
}

// parseField reads "Name: value": a token name, a colon right after it,
// and a value of visible bytes, spaces, tabs and obs-text, trimmed of
// spaces and tabs at both ends.
func parseField(line []byte) (field, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return field{}, unsupported("obs-fold or a field starting with white space")
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return field{}, unsupported("header field without a name and colon")
	}
	name := line[:colon]
	for _, c := range name {
		if !tokenByte(c) {
			return field{}, unsupported("header field name with byte %#x", c)
		}
	}
	value := line[colon+1:]
	for _, c := range value {
		if !valueByte(c) {
			return field{}, unsupported("control byte in a header field value")
		}
	}
	value = bytes.TrimLeft(value, " \t")
	value = bytes.TrimRight(value, " \t")
	return field{key: canonicalKey(name), value: string(value)}, nil
}

// canonicalKey is textproto's canonical form of a valid token name,
// without a copy for the common names.
func canonicalKey(name []byte) string {
	switch string(name) {
	case "Content-Length", "content-length":
		return "Content-Length"
	case "Content-Type", "content-type":
		return "Content-Type"
	case "Date", "date":
		return "Date"
	case "Transfer-Encoding", "transfer-encoding":
		return "Transfer-Encoding"
	case "Connection", "connection":
		return "Connection"
	case "Server", "server":
		return "Server"
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// frame works out the body's framing as net/http's readTransfer does, for
// the forms it supports, and sets ContentLength, TransferEncoding and
// Close, removing the fields net/http removes.
func (h *head) frame(method string) error {
	r := h.resp
	hdr := r.Header
	// RFC 9111 5.4, as net/http applies it.
	if p, ok := hdr["Pragma"]; ok && len(p) > 0 && p[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	if _, ok := hdr["Trailer"]; ok {
		return unsupported("Trailer field")
	}
	// A close token ends the connection after this response; net/http
	// removes the field then.
	if conn, ok := hdr["Connection"]; ok && httpguts.HeaderValuesContainsToken(conn, "close") {
		r.Close = true
		delete(hdr, "Connection")
	}
	cls, hasCL := hdr["Content-Length"]
	te, hasTE := hdr["Transfer-Encoding"]
	if len(cls) > 1 {
		return unsupported("more than one Content-Length")
	}
	if hasCL && hasTE {
		return unsupported("both Content-Length and Transfer-Encoding")
	}
	length := int64(-1)
	if hasCL {
		n, ok := parseLength(cls[0])
		if !ok {
			return unsupported("Content-Length not a decimal number")
		}
		length = n
	}
	bodyless := method == http.MethodHead || r.StatusCode/100 == 1 ||
		r.StatusCode == http.StatusNoContent || r.StatusCode == http.StatusNotModified
	if hasTE {
		if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
			return unsupported("Transfer-Encoding other than one chunked")
		}
		if bodyless {
			return unsupported("Transfer-Encoding on a response without a body")
		}
		delete(hdr, "Transfer-Encoding")
		r.TransferEncoding = []string{"chunked"}
		r.ContentLength = -1
		h.framing = framedChunked
		return nil
	}
	switch {
	case bodyless:
		r.ContentLength = 0
		if method == http.MethodHead {
			r.ContentLength = length
		}
		h.framing = framedNone
	case length >= 0:
		r.ContentLength = length
		h.framing, h.length = framedLength, length
		if length == 0 {
			h.framing = framedNone
		}
	default:
		// No length: the body runs to the end of the connection.
		r.ContentLength = -1
		r.Close = true
		h.framing = framedClose
	}
	return nil
}

// parseLength reads a Content-Length value: decimal digits that fit in 63
// bits, with no sign and no white space left.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// asciiEqualFold compares s and t without ASCII case; unlike
// strings.EqualFold, no other character folds to an ASCII letter.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// tokenByte reports whether c may appear in a token (RFC 9110 5.6.2).
func tokenByte(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// valueByte reports whether c may appear in a field value: visible ASCII,
// space, tab, or obs-text.
func valueByte(c byte) bool {
	return c == '\t' || c >= 0x20 && c != 0x7f
}

// newChunkedReader reads a chunked body from br; net/http reads the same
// chunk framing with the same reader.
func newChunkedReader(br *bufio.Reader) io.Reader {
	return httputil.NewChunkedReader(br)
}

// errTrailer is a chunked body that ends with trailer fields, which this
// package does not pass on.
var errTrailer = errors.New("upstream fast path: trailer fields after a chunked body are not supported")

// readChunkedEnd reads what follows the last chunk: the empty line that ends
// a chunked body without trailer fields.
func readChunkedEnd(br *bufio.Reader) error {
	b, err := br.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errTrailer
	}
	_, _ = br.Discard(2)
	return nil
}

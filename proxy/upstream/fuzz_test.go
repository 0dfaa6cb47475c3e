package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// responseSeeds are response heads and bodies of the forms the parser
// reads and of those it must refuse.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3 \r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
	"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\n\r\nto the end",
	"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 +20 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-lower: v\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-Obs: caf\xe9\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}

// FuzzReadResponse reads the same bytes with readHead and the body reader
// and with http.ReadResponse: every input the parser reads whole is read
// by net/http with the same status, header fields, framing and body, and
// leaves the same bytes for the next response; every input net/http
// refuses, the parser refuses too.
func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		ours, ourErr := readOurs(data, method)
		std, stdErr := readStd(data, method)
		if ourErr != nil {
			return // refusing more than net/http is allowed
		}
		if stdErr != nil {
			t.Fatalf("net/http refuses what the parser reads:\ninput %q\nnet/http: %v\nours: %+v", data, stdErr, ours)
		}
		if !reflect.DeepEqual(ours, std) {
			t.Fatalf("read differently:\ninput %q\nours     %+v\nnet/http %+v", data, ours, std)
		}
	})
}

// parsed is what a response reader makes of its input.
type parsed struct {
	Status           string
	StatusCode       int
	Proto            string
	ProtoMajor       int
	ProtoMinor       int
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	Close            bool
	Trailer          http.Header
	Body             string
	Rest             string // what is left for the next response
}

func readOurs(data []byte, method string) (parsed, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	h, err := readHead(br, method)
	if err != nil {
		return parsed{}, err
	}
	var body []byte
	if h.framing != framedNone {
		if body, err = io.ReadAll(newBody(br, h)); err != nil {
			return parsed{}, err
		}
	}
	return result(h.resp, body, br), nil
}

func readStd(data []byte, method string) (parsed, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return parsed{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return parsed{}, err
	}
	return result(resp, body, br), nil
}

func result(resp *http.Response, body []byte, br *bufio.Reader) parsed {
	rest, _ := io.ReadAll(br)
	return parsed{
		Status: resp.Status, StatusCode: resp.StatusCode, Proto: resp.Proto,
		ProtoMajor: resp.ProtoMajor, ProtoMinor: resp.ProtoMinor, Header: resp.Header,
		ContentLength: resp.ContentLength, TransferEncoding: resp.TransferEncoding,
		Close: resp.Close, Trailer: resp.Trailer, Body: string(body), Rest: string(rest),
	}
}

// FuzzWriteRequest builds a request from the fuzzer's parts: when it takes
// the fast path, writeRequest writes exactly the bytes of
// http.Request.Write, and net/http would send it too.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "http://up.example:8080/a/b?x=1&y=%20", "", "Authorization", "Basic YTpi", "Accept", "*/*", true)
	f.Add("POST", "http://up.example/p", "other.example:81", "X-Empty", "", "User-Agent", "curl/8", false)
	f.Add("DELETE", "http://[::1]:80/", "", "X-Trim", " \tv\t ", "X-Multi", "a", false)
	f.Add("", "http://h/%zz", "", "Content-Length", "5", "Host", "evil", true)
	f.Add("PATCH", "http://h/", "", "X-A", "a\r\nInjected: 1", "x-lower", "v", true)
	f.Add("OPTIONS", "http://h", "", "User-Agent", "", "Transfer-Encoding", "chunked", true)
	f.Add("GET", "http://h/é?q=ü", "", "X-Obs", "caf\xe9", "Trailer", "X", false)
	f.Fuzz(func(t *testing.T, method, rawURL, host, k1, v1, k2, v2 string, twice bool) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return
		}
		h := http.Header{}
		h[k1] = []string{v1}
		if twice {
			h[k1] = append(h[k1], v2)
		}
		h[k2] = append(h[k2], v2)
		r := &http.Request{Method: method, URL: u, Host: host, Header: h}
		uri, ok := eligible(r)
		if !ok {
			return
		}
		var ours bytes.Buffer
		bw := bufio.NewWriter(&ours)
		if err := writeRequest(bw, r, uri); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		var std bytes.Buffer
		if err := r.Write(&std); err != nil {
			t.Fatalf("net/http refuses a request the fast path takes: %v\nrequest %+v", err, r)
		}
		if ours.String() != std.String() {
			t.Fatalf("written differently:\nours     %q\nnet/http %q", ours.String(), std.String())
		}
		// What the fast path sends, net/http's server reads as one request
		// with the same fields, and nothing after it.
		br := bufio.NewReader(strings.NewReader(ours.String()))
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http's server refuses %q: %v", ours.String(), err)
		}
		if _, err := br.Peek(1); !errors.Is(err, io.EOF) {
			t.Fatalf("bytes left after the request %q", ours.String())
		}
		if want := method; got.Method != want && (want != "" || got.Method != http.MethodGet) {
			t.Fatalf("method %q read as %q", method, got.Method)
		}
	})
}

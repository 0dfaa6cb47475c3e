// Package upstream is a lean HTTP/1.1 client for the proxy's common upstream
// request: a plain http:// upstream, a request without a body that may be
// repeated (GET, HEAD, OPTIONS, TRACE, or one with an idempotency key), and a
// response framed by Content-Length, chunked coding or the end of the
// connection. It keeps a pool of keep-alive connections per upstream
// address, writes the request line and headers directly, and reads the
// response head with one strict parser.
//
// Everything else goes to a fallback http.RoundTripper (the standard
// http.Transport): https:// and HTTP/2 upstreams, upgrades, Expect,
// trailers, request bodies, and headers that the fallback would refuse.
// A response head the parser does not read exactly as net/http would
// (obs-fold, bare CR or LF, duplicate Content-Length, Content-Length with
// Transfer-Encoding, a coding other than chunked, a trailer section,
// anything past HTTP/1.1's common forms) is never guessed at: the
// connection is closed and the request is sent again through the fallback,
// which reads the answer as net/http does.
//
// The request bytes are those of http.Request.Write (as http.Transport
// sends them with DisableCompression), and every response the parser
// accepts is read as http.ReadResponse reads it; fuzz_test.go checks both
// against net/http.
package upstream

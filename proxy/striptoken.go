package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/connectors-node/connectors-node/proxy/policy"
)

// Token stripping: the client's ServiceAccount token never goes upstream,
// in whatever header, query parameter or body field it came.

// removeTokenHeaders deletes every header that carries the client's token
// (in its value, or as the password of a Basic value): the token never
// goes upstream, whichever header the client put it in.
func removeTokenHeaders(h http.Header, token string) {
	if token == "" {
		return
	}
	for k, vs := range h {
		if carriesToken(vs, token) {
			delete(h, k)
			continue
		}
		for _, v := range vs {
			if strings.Contains(v, token) {
				delete(h, k)
				break
			}
		}
	}
}

// removeTokenQuery deletes the query parameters that carry the client's
// token.
func removeTokenQuery(u *url.URL, token string) {
	if token == "" || u.RawQuery == "" {
		return
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		if strings.Contains(u.RawQuery, token) {
			u.RawQuery = ""
		}
		return
	}
	var drop []string
	for k, vs := range q {
		for _, v := range vs {
			if strings.Contains(v, token) || strings.Contains(k, token) {
				drop = append(drop, k)
				break
			}
		}
	}
	for _, k := range drop {
		u.RawQuery = dropParam(u.RawQuery, k)
	}
}

func dropParam(raw, name string) string {
	var out []string
	for _, part := range strings.Split(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(k); part == "" || (err == nil && n == name) {
			continue
		}
		out = append(out, part)
	}
	return strings.Join(out, "&")
}

// removeFromBody deletes the JSON object fields or form fields whose value
// carries the client's token from a buffered body; a body that still holds
// it is refused.
func removeFromBody(r *http.Request, token string) error {
	b, ok := r.Body.(*bufferedBody)
	if !ok || !bytes.Contains(b.raw, []byte(token)) {
		return nil
	}
	var out []byte
	switch mediaType(r.Header.Get("Content-Type")) {
	case policy.ContentTypeJSON:
		obj := map[string]any{}
		d := json.NewDecoder(bytes.NewReader(b.raw))
		d.UseNumber()
		if d.Decode(&obj) == nil {
			for k, v := range obj {
				if s, ok := v.(string); ok && strings.Contains(s, token) {
					delete(obj, k)
				}
			}
			out, _ = json.Marshal(obj)
		}
	case policy.ContentTypeForm:
		if q, err := url.ParseQuery(string(b.raw)); err == nil {
			for k, vs := range q {
				for _, v := range vs {
					if strings.Contains(v, token) {
						q.Del(k)
						break
					}
				}
			}
			out = []byte(q.Encode())
		}
	}
	if out == nil || bytes.Contains(out, []byte(token)) {
		return statusErrorf(http.StatusBadRequest, "the request body carries the client token where the proxy cannot remove it")
	}
	setBody(r, out)
	return nil
}

// carriesToken reports whether an Authorization value holds token, as
// Bearer or as a Basic password.
func carriesToken(values []string, token string) bool {
	for _, v := range values {
		scheme, rest, _ := strings.Cut(v, " ")
		if strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) == token {
			return true
		}
		if _, pass, ok := parseBasic(v); ok && pass == token {
			return true
		}
	}
	return false
}

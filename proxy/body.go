package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/connectors-node/connectors-node/proxy/policy"
)

// Request body buffering: a Rego hook that reads or writes the body gets
// it whole, up to Options.PolicyBodyLimit, and the upstream gets the bytes
// the hook saw.

// bufferBody reads the request body up to limit bytes, leaves it readable
// again for the upstream, and decodes it for a policy: a JSON value or form
// fields; nil for an empty body or another content type.
func bufferBody(r *http.Request, limit int64, why string) (any, error) {
	raw, err := readBody(r, limit, why)
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	switch mediaType(r.Header.Get("Content-Type")) {
	case policy.ContentTypeJSON:
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&v) != nil {
			return nil, statusErrorf(http.StatusBadRequest, "request body is not valid JSON")
		}
		return v, nil
	case policy.ContentTypeForm:
		q, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, statusErrorf(http.StatusBadRequest, "request body is not a valid form")
		}
		return formValue(q), nil
	}
	return nil, nil
}

func formValue(q url.Values) map[string]any {
	out := make(map[string]any, len(q))
	for k, vs := range q {
		l := make([]any, len(vs))
		for i, v := range vs {
			l[i] = v
		}
		out[k] = l
	}
	return out
}

// readBody reads the whole body, at most limit bytes (413 beyond), and
// puts the bytes back as the request body.
func readBody(r *http.Request, limit int64, why string) ([]byte, error) {
	if b, ok := r.Body.(*bufferedBody); ok {
		return b.raw, nil
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &statusError{status: http.StatusBadRequest, msg: "reading the request body failed", err: err}
	}
	if int64(len(raw)) > limit {
		return nil, statusErrorf(http.StatusRequestEntityTooLarge, "request body over %d bytes: %s", limit, why)
	}
	setBody(r, raw)
	return raw, nil
}

// bufferedBody is a request body the proxy has read and holds whole.
type bufferedBody struct {
	*bytes.Reader
	raw []byte
}

func (b *bufferedBody) Close() error { return nil }

func setBody(r *http.Request, raw []byte) {
	r.Body = &bufferedBody{Reader: bytes.NewReader(raw), raw: raw}
	r.ContentLength = int64(len(raw))
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Set("Content-Length", strconv.Itoa(len(raw)))
}

func mediaType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// mergeBody merges a generator's values into a JSON object or form body of
// the declared content type (or the request's, or JSON). A body over limit
// is refused (413), never sent without the credential.
func mergeBody(r *http.Request, in *policy.Injection, limit int64) error {
	raw, err := readBody(r, limit, "the generator injects into the request body")
	if err != nil {
		return err
	}
	have := mediaType(r.Header.Get("Content-Type"))
	want := in.ContentType
	if want == "" {
		want = have
		if want != policy.ContentTypeForm {
			want = policy.ContentTypeJSON
		}
	}
	if len(raw) > 0 && have != want {
		return statusErrorf(http.StatusBadGateway,
			"the generator injects into a %s body, but the request body is %q", want, have)
	}
	merge := mergeForm
	if want == policy.ContentTypeJSON {
		merge = mergeJSON
	}
	out, err := merge(raw, in.Values)
	if err != nil {
		return err
	}
	if int64(len(out)) > limit {
		return statusErrorf(http.StatusRequestEntityTooLarge,
			"request body over %d bytes with the injected credential", limit)
	}
	r.Header.Set("Content-Type", want)
	setBody(r, out)
	return nil
}

// mergeJSON sets vals as fields of the JSON object raw (empty: {}).
func mergeJSON(raw []byte, vals []policy.Value) ([]byte, error) {
	obj := map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&obj) != nil {
			return nil, statusErrorf(http.StatusBadRequest, "request body is not a JSON object")
		}
	}
	for _, v := range vals {
		obj[v.Key] = v.Value
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, &statusError{status: http.StatusInternalServerError, msg: "encoding the request body failed", err: err}
	}
	return out, nil
}

// mergeForm sets vals as fields of the form raw.
func mergeForm(raw []byte, vals []policy.Value) ([]byte, error) {
	q, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, statusErrorf(http.StatusBadRequest, "request body is not a valid form")
	}
	for _, v := range vals {
		q.Set(v.Key, v.Value)
	}
	return []byte(q.Encode()), nil
}

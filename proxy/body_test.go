package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/proxy/policy"
)

// TestMergeBody checks how a generator's values go into a request body:
// merged into a JSON object or a form, refused when the body is of another
// type, malformed, or over the limit with the values in it.
func TestMergeBody(t *testing.T) {
	vals := []policy.Value{{Key: "api_key", Value: "k1"}}
	for _, tc := range []struct {
		name, contentType, declared, body string
		limit                             int64
		want, wantType                    string
		status                            int
	}{
		{name: "json object", contentType: "application/json", body: `{"a":1}`, limit: 100,
			want: `{"a":1,"api_key":"k1"}`, wantType: policy.ContentTypeJSON},
		{name: "empty body becomes json", body: "", limit: 100,
			want: `{"api_key":"k1"}`, wantType: policy.ContentTypeJSON},
		{name: "form", contentType: policy.ContentTypeForm, body: "a=1&api_key=old", limit: 100,
			want: "a=1&api_key=k1", wantType: policy.ContentTypeForm},
		{name: "declared form on a json body", contentType: "application/json", declared: policy.ContentTypeForm,
			body: `{"a":1}`, limit: 100, status: http.StatusBadGateway},
		{name: "json array", contentType: "application/json", body: `[1]`, limit: 100, status: http.StatusBadRequest},
		{name: "bad form", contentType: policy.ContentTypeForm, body: "a=%zz", limit: 100, status: http.StatusBadRequest},
		{name: "over the limit with the values", contentType: "application/json", body: `{"a":1}`, limit: 10,
			status: http.StatusRequestEntityTooLarge},
		{name: "over the limit before", contentType: "application/json", body: `{"a":"0123456789"}`, limit: 10,
			status: http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "http://upstream.example/", strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			err := mergeBody(r, &policy.Injection{Position: policy.PositionBody, ContentType: tc.declared, Values: vals}, tc.limit)
			if tc.status != 0 {
				var se *statusError
				if !errors.As(err, &se) || se.status != tc.status {
					t.Fatalf("error %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r.Body)
			if string(got) != tc.want || r.Header.Get("Content-Type") != tc.wantType {
				t.Fatalf("body %q (%s), want %q (%s)", got, r.Header.Get("Content-Type"), tc.want, tc.wantType)
			}
			if r.ContentLength != int64(len(got)) {
				t.Fatalf("ContentLength %d, body %d bytes", r.ContentLength, len(got))
			}
		})
	}
}

package pypiindex

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func do(t *testing.T, method, url, user, password, contentType string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func uploadForm(t *testing.T, action, name, file string, content []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField(":action", action)
	_ = mw.WriteField("name", name)
	fw, err := mw.CreateFormFile("content", file)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(content)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func TestIndex(t *testing.T) {
	s := Start("u", "p")
	defer s.Close()
	wheel, err := Wheel(t.TempDir(), "Hello_Connectors", "1.0.0", "hello", "X = 1\n")
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(wheel) //nolint:gosec // the test's own file
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, method, path, user, password, action string
		want                                       int
	}{
		{name: "no credential", method: http.MethodGet, path: "/simple/", want: http.StatusUnauthorized},
		{name: "wrong password", method: http.MethodGet, path: "/simple/", user: "u", password: "x", want: http.StatusUnauthorized},
		{name: "not an upload", method: http.MethodPost, path: "/", user: "u", password: "p", action: "remove_pkg", want: http.StatusBadRequest},
		{name: "upload", method: http.MethodPost, path: "/", user: "u", password: "p", action: "file_upload", want: http.StatusOK},
		{name: "same file again", method: http.MethodPost, path: "/", user: "u", password: "p", action: "file_upload", want: http.StatusConflict},
		{name: "no trailing slash", method: http.MethodGet, path: "/simple/hello-connectors", user: "u", password: "p", want: http.StatusOK},
		{name: "unknown project", method: http.MethodGet, path: "/simple/other/", user: "u", password: "p", want: http.StatusNotFound},
		{name: "delete", method: http.MethodDelete, path: "/packages/x", user: "u", password: "p", want: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		var body io.Reader
		var ct string
		if tt.method == http.MethodPost {
			body, ct = uploadForm(t, tt.action, "Hello_Connectors", filepath.Base(wheel), content)
		}
		if code, _ := do(t, tt.method, s.URL+tt.path, tt.user, tt.password, ct, body); code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, code, tt.want)
		}
	}

	code, page := do(t, http.MethodGet, s.URL+"/simple/hello-connectors/", "u", "p", "", nil)
	link := "../../packages/" + filepath.Base(wheel) + "#sha256="
	if code != http.StatusOK || !strings.Contains(page, link) {
		t.Fatalf("project page: %d, want a relative link %s…:\n%s", code, link, page)
	}
	code, got := do(t, http.MethodGet, s.URL+"/packages/"+filepath.Base(wheel), "u", "p", "", nil)
	if code != http.StatusOK || got != string(content) {
		t.Errorf("file: %d, %d bytes, want the uploaded %d bytes", code, len(got), len(content))
	}
	for _, r := range s.Log.Requests() {
		if r.User != "" && r.User != "u" {
			t.Errorf("recorded user %q", r.User)
		}
	}
}

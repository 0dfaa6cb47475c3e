package mavenrepo

import (
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
)

// parseLine reads the user and the Authorization header of a line of the
// access log, "-" being none, and refuses a line of another format.
func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    Request
		wantErr bool
	}{
		{line: `GET /maven2/a.pom 200 "deployer" "Basic ZGVwbG95ZXI6cHc="`,
			want: Request{Request: authlog.Request{Method: "GET", Path: "/maven2/a.pom", User: "deployer"}, Status: 200, Authorization: "Basic ZGVwbG95ZXI6cHc="}},
		{line: `PUT /maven2/b.pom 401 "-" "-"`,
			want: Request{Request: authlog.Request{Method: "PUT", Path: "/maven2/b.pom"}, Status: 401}},
		{line: `GET /maven2/a.pom 200 "deployer"`, wantErr: true},
		{line: `GET /maven2/a.pom OK "deployer" "-"`, wantErr: true},
	} {
		got, err := parseLine(tc.line)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: got %+v, want an error", tc.line, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
		} else if got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

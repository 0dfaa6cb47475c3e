package registryauth

import (
	"net/http"
	"net/url"
	"strings"
)

// Scopes returns the token scopes (distribution token spec) a
// registry request needs: repository:<name>:pull for reads,
// repository:<name>:pull,push for writes, repository:<name>:delete for
// deletes, plus pull on the source of a cross-repository mount, and
// registry:catalog:* for the catalog. below is the escaped path below the
// registry's address, starting with /v2.
func Scopes(method, below, rawQuery string) []string {
	rest := strings.TrimPrefix(strings.TrimPrefix(below, "/v2"), "/")
	if rest == "" {
		return nil
	}
	if rest == "_catalog" {
		return []string{"registry:catalog:*"}
	}
	name, ok := repository(rest)
	if !ok {
		return nil
	}
	actions := "pull,push"
	switch method {
	case http.MethodGet, http.MethodHead:
		actions = "pull"
	case http.MethodDelete:
		actions = "delete"
	}
	scopes := []string{"repository:" + name + ":" + actions}
	if method == http.MethodPost && strings.Contains(rawQuery, "from=") {
		if q, err := url.ParseQuery(rawQuery); err == nil {
			if from := q.Get("from"); from != name && validRepository(from) {
				scopes = append(scopes, "repository:"+from+":pull")
			}
		}
	}
	return scopes
}

// repository finds the repository name in a registry API path
// below /v2/: <name>/manifests/<ref>, <name>/blobs/<digest>,
// <name>/blobs/uploads/[<id>], <name>/tags/list, <name>/referrers/<digest>.
// It reads from the end, since a name may itself contain "blobs" or
// "manifests" as a component.
func repository(rest string) (string, bool) {
	segs := strings.Split(rest, "/")
	n := len(segs)
	var name []string
	switch {
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		name = segs[:n-2]
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		name = segs[:n-3]
	case n >= 3 && (segs[n-2] == "manifests" || segs[n-2] == "blobs" || segs[n-2] == "tags" || segs[n-2] == "referrers"):
		name = segs[:n-2]
	default:
		return "", false
	}
	s := strings.Join(name, "/")
	return s, validRepository(s)
}

// validRepository accepts repository names made of lower-case letters,
// digits and the separators . _ - /, which also keeps scope strings free
// of the ':' and ' ' that delimit them.
func validRepository(s string) bool {
	if s == "" || len(s) > 255 || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' && c != '/' {
			return false
		}
	}
	return true
}

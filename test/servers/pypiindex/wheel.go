package pypiindex

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Wheel writes a pure-Python wheel of project at version into dir: one
// module, module.py, with source as its content. It returns the wheel's
// path.
func Wheel(dir, project, version, module, source string) (string, error) {
	dist := strings.ReplaceAll(Normalize(project), "-", "_")
	info := dist + "-" + version + ".dist-info"
	files := []struct{ name, content string }{
		{module + ".py", source},
		{info + "/METADATA", fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: A test package\n", project, version)},
		{info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: connectors-node-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f.content))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.content))
	}
	record.WriteString(info + "/RECORD,,\n")
	files = append(files, struct{ name, content string }{info + "/RECORD", record.String()})

	path := filepath.Join(dir, dist+"-"+version+"-py3-none-any.whl")
	out, err := os.Create(path) //nolint:gosec // the caller's directory
	if err != nil {
		return "", err
	}
	zw := zip.NewWriter(out)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			_ = out.Close()
			return "", err
		}
		if _, err := w.Write([]byte(f.content)); err != nil {
			_ = out.Close()
			return "", err
		}
	}
	if err := zw.Close(); err != nil {
		_ = out.Close()
		return "", err
	}
	return path, out.Close()
}

package manifests

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TaskRunCSIAttributes reads the volumeAttributes of the CSI workspace of
// the first TaskRun in file, so a test mounts what an example tells users
// to mount.
func TaskRunCSIAttributes(file string) (map[string]string, error) {
	objs, err := Load(file)
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		if u.GetKind() != "TaskRun" {
			continue
		}
		wss, _, _ := unstructured.NestedSlice(u.Object, "spec", "workspaces")
		for _, w := range wss {
			wm, _ := w.(map[string]any)
			if attrs, ok, _ := unstructured.NestedStringMap(wm, "csi", "volumeAttributes"); ok {
				return attrs, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: no TaskRun with a CSI workspace", file)
}

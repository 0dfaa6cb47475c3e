// Package examples_test checks the manifests in examples/: every document
// parses into its Kubernetes type, every example Connector names a class of
// examples/ or of the deploy/classes catalog, and every configuration of
// those classes renders through configgen for the example Connectors.
package examples_test

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/connref"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

const token = "header.payload.signature"

type examples struct {
	// classes are the ConnectorClasses of examples/ and of the catalog;
	// own names those of examples/.
	classes    map[string]*v1alpha1.ConnectorClass
	own        []string
	connectors map[string]*v1alpha1.Connector
	jobs       []*batchv1.Job
	objects    []*unstructured.Unstructured
}

func load(t *testing.T) examples {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	objs, err := manifests.Load(files...)
	require.NoError(t, err)
	catalogFiles, err := manifests.CatalogFiles("..")
	require.NoError(t, err)
	catalog, err := manifests.Load(catalogFiles...)
	require.NoError(t, err)
	ex := examples{classes: map[string]*v1alpha1.ConnectorClass{}, connectors: map[string]*v1alpha1.Connector{}, objects: objs}
	for _, u := range catalog {
		require.Equal(t, "ConnectorClass", u.GetKind(), "the catalog holds %s %s", u.GetKind(), u.GetName())
		c := &v1alpha1.ConnectorClass{}
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, c, true), "ConnectorClass %s", u.GetName())
		ex.classes[u.GetName()] = c
	}
	for _, u := range objs {
		var into any
		switch u.GetKind() {
		case "ConnectorClass":
			c := &v1alpha1.ConnectorClass{}
			ex.classes[u.GetName()] = c
			ex.own = append(ex.own, u.GetName())
			into = c
		case "Connector":
			c := &v1alpha1.Connector{}
			ex.connectors[u.GetName()] = c
			into = c
		case "Job":
			j := &batchv1.Job{}
			ex.jobs = append(ex.jobs, j)
			into = j
		case "Secret":
			into = &corev1.Secret{}
		case "ServiceAccount":
			into = &corev1.ServiceAccount{}
		case "Role":
			into = &rbacv1.Role{}
		case "RoleBinding":
			into = &rbacv1.RoleBinding{}
		case "Ingress":
			into = &networkingv1.Ingress{}
		case "Task", "TaskRun":
			continue // Tekton types are not a dependency; checked below as unstructured.
		default:
			t.Fatalf("unexpected kind %s in examples/", u.GetKind())
		}
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true),
			"%s %s", u.GetKind(), u.GetName())
	}
	return ex
}

func TestEveryClassConfigurationRenders(t *testing.T) {
	ex := load(t)
	require.Equal(t, []string{"bearer-api"}, ex.own, "the ConnectorClasses of examples/ (the others live in deploy/classes)")
	used := map[string]bool{}
	for _, c := range ex.connectors {
		require.Contains(t, ex.classes, c.Spec.ConnectorClassName, "Connector %s names a class in neither examples/ nor deploy/classes", c.Name)
		used[c.Spec.ConnectorClassName] = true
	}
	for _, name := range ex.own {
		require.True(t, used[name], "no example Connector of class %s", name)
	}
	for name := range used {
		class := ex.classes[name]
		var mounted []configgen.Connector
		for _, c := range ex.connectors {
			if c.Spec.ConnectorClassName == class.Name {
				mounted = append(mounted, configgen.Connector{Object: c, Class: class, ProxyAddress: c.ProxyAddress(publicurl.Default)})
			}
		}
		for _, cfg := range class.Spec.Configurations {
			t.Run(class.Name+"/"+cfg.Name, func(t *testing.T) {
				files, err := configgen.Render(configgen.Input{
					Connectors:     mounted,
					Token:          token,
					ProxyURL:       publicurl.MustParse(publicurl.Default),
					CACertPEM:      []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
					Configurations: []string{cfg.Name},
				})
				require.NoError(t, err)
				for name := range cfg.Data {
					require.NotEmpty(t, files[name], "%s rendered empty", name)
				}
			})
		}
	}
}

// TestGitClassRendersScopedHeader pins what the example git class writes: the
// token only for the proxy URL, and the Connector's address rewritten to it.
func TestGitClassRendersScopedHeader(t *testing.T) {
	ex := load(t)
	git := ex.connectors["git"]
	files, err := configgen.Render(configgen.Input{
		Connectors:     []configgen.Connector{{Object: git, Class: ex.classes["git"], ProxyAddress: git.ProxyAddress(publicurl.Default)}},
		Token:          token,
		ProxyURL:       publicurl.MustParse(publicurl.Default),
		CACertPEM:      []byte("ca"),
		Configurations: []string{"gitconfig"},
	})
	require.NoError(t, err)
	proxy := publicurl.Default + "/namespaces/default/connectors/git/"
	want := "\n[http \"" + proxy + "\"]\n" +
		"\textraHeader = Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token)) + "\n" +
		"\tfollowRedirects = false\n" +
		"[url \"" + proxy + "\"]\n" +
		"\tinsteadOf = https://github.com/\n"
	require.Equal(t, want, string(files[".gitconfig"]))
}

// TestJobsMountConnectorsVolumes checks that every Job mounts a read-only
// connectors-csi volume naming Connectors that exist in examples/.
func TestJobsMountConnectorsVolumes(t *testing.T) {
	ex := load(t)
	require.NotEmpty(t, ex.jobs)
	for _, j := range ex.jobs {
		var found bool
		for _, v := range j.Spec.Template.Spec.Volumes {
			if v.CSI == nil {
				continue
			}
			found = true
			require.Equal(t, csi.DriverName, v.CSI.Driver, j.Name)
			require.True(t, *v.CSI.ReadOnly, j.Name)
			for _, name := range strings.Split(v.CSI.VolumeAttributes["connectors"], ",") {
				require.Contains(t, ex.connectors, strings.TrimSpace(name), "Job %s names an unknown Connector", j.Name)
			}
		}
		require.True(t, found, "Job %s mounts no connectors-csi volume", j.Name)
	}

	// The Tekton TaskRun binds a CSI workspace the same way.
	for _, u := range ex.objects {
		if u.GetKind() != "TaskRun" {
			continue
		}
		ws, _, err := unstructured.NestedSlice(u.Object, "spec", "workspaces")
		require.NoError(t, err)
		driver, _, _ := unstructured.NestedString(ws[0].(map[string]any), "csi", "driver")
		require.Equal(t, csi.DriverName, driver)
	}
}

// TestConnectorAddressesFollowTheGrammar checks every example Connector
// against the address grammar the CRDs and the admission policy enforce
// (kube/address_test.go holds the two to one answer).
func TestConnectorAddressesFollowTheGrammar(t *testing.T) {
	ex := load(t)
	require.NotEmpty(t, ex.connectors)
	for name, c := range ex.connectors {
		require.NoError(t, c.CheckAddresses(), "example connector %s", name)
	}
}

// TestTektonExamples checks examples/tekton, whose Tasks, TaskRuns,
// Pipelines and PipelineRuns the real-node suite runs: every TaskRun names
// a Task of the directory and binds every workspace the Task declares and
// no other, each csi workspace is a read-only connectors-csi volume naming
// an example Connector, and a Task's workspace bound to the plugin is
// declared readOnly; every PipelineRun names a Pipeline of the directory
// and binds its workspaces, whose tasks name Tasks of the directory (or a
// custom task) and bind every workspace they declare, those bound to the
// plugin readOnly; every AccessPolicy parses and names example Connectors.
// A csi workspace names its Connectors by connector.name or in a
// connectors list.
func TestTektonExamples(t *testing.T) {
	ex := load(t)
	files, err := filepath.Glob("tekton/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	objs, err := manifests.Load(files...)
	require.NoError(t, err)
	tasks := map[string]map[string]bool{} // Task -> its workspaces, readOnly or not
	var runs, pipelineRuns []*unstructured.Unstructured
	pipelines := map[string]*unstructured.Unstructured{}
	var policies []*v1alpha1.AccessPolicy
	for _, u := range objs {
		switch u.GetKind() {
		case "Task":
			ws, _, err := unstructured.NestedSlice(u.Object, "spec", "workspaces")
			require.NoError(t, err)
			tasks[u.GetName()] = map[string]bool{}
			for _, w := range ws {
				m := w.(map[string]any)
				ro, _, _ := unstructured.NestedBool(m, "readOnly")
				tasks[u.GetName()][m["name"].(string)] = ro
			}
		case "TaskRun":
			runs = append(runs, u)
		case "Pipeline":
			pipelines[u.GetName()] = u
		case "PipelineRun":
			pipelineRuns = append(pipelineRuns, u)
		case "AccessPolicy":
			p := &v1alpha1.AccessPolicy{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, p, true), "AccessPolicy %s", u.GetName())
			policies = append(policies, p)
		case "Connector":
			ex.connectors[u.GetName()] = &v1alpha1.Connector{}
		case "ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding":
		default:
			t.Fatalf("unexpected kind %s in examples/tekton", u.GetKind())
		}
	}
	require.NotEmpty(t, runs)
	for _, u := range runs {
		task, _, _ := unstructured.NestedString(u.Object, "spec", "taskRef", "name")
		declared, ok := tasks[task]
		require.True(t, ok, "TaskRun %s names Task %q, not in examples/tekton", u.GetName(), task)
		ws, _, err := unstructured.NestedSlice(u.Object, "spec", "workspaces")
		require.NoError(t, err)
		bound := map[string]bool{}
		for _, w := range ws {
			m := w.(map[string]any)
			name := m["name"].(string)
			ro, known := declared[name]
			require.True(t, known, "TaskRun %s binds workspace %s, which Task %s does not declare", u.GetName(), name, task)
			bound[name] = true
			c, ok := m["csi"].(map[string]any)
			if !ok {
				continue
			}
			require.True(t, ro, "Task %s does not declare workspace %s readOnly", task, name)
			requireCSIWorkspace(t, ex, "TaskRun "+u.GetName(), u.GetNamespace(), name, c)
		}
		for name := range declared {
			require.True(t, bound[name], "TaskRun %s does not bind workspace %s of Task %s", u.GetName(), name, task)
		}
	}
	for _, u := range pipelineRuns {
		name, _, _ := unstructured.NestedString(u.Object, "spec", "pipelineRef", "name")
		pipeline, ok := pipelines[name]
		require.True(t, ok, "PipelineRun %s names Pipeline %q, not in examples/tekton", u.GetName(), name)
		declared := map[string]bool{}
		pws, _, err := unstructured.NestedSlice(pipeline.Object, "spec", "workspaces")
		require.NoError(t, err)
		for _, w := range pws {
			declared[w.(map[string]any)["name"].(string)] = true
		}
		ws, _, err := unstructured.NestedSlice(u.Object, "spec", "workspaces")
		require.NoError(t, err)
		plugin := map[string]bool{} // the Pipeline's workspaces bound to the plugin
		for _, w := range ws {
			m := w.(map[string]any)
			ws := m["name"].(string)
			require.True(t, declared[ws], "PipelineRun %s binds workspace %s, which Pipeline %s does not declare", u.GetName(), ws, name)
			delete(declared, ws)
			if c, ok := m["csi"].(map[string]any); ok {
				plugin[ws] = true
				requireCSIWorkspace(t, ex, "PipelineRun "+u.GetName(), u.GetNamespace(), ws, c)
			}
		}
		require.Empty(t, declared, "PipelineRun %s does not bind these workspaces of Pipeline %s", u.GetName(), name)
		pts, _, err := unstructured.NestedSlice(pipeline.Object, "spec", "tasks")
		require.NoError(t, err)
		for _, pt := range pts {
			m := pt.(map[string]any)
			if kind, _, _ := unstructured.NestedString(m, "taskRef", "kind"); kind != "" {
				continue // a custom task
			}
			task, _, _ := unstructured.NestedString(m, "taskRef", "name")
			taskWS, ok := tasks[task]
			require.True(t, ok, "Pipeline %s task %v names Task %q, not in examples/tekton", name, m["name"], task)
			bindings, _, err := unstructured.NestedSlice(m, "workspaces")
			require.NoError(t, err)
			bound := map[string]bool{}
			for _, b := range bindings {
				bm := b.(map[string]any)
				tw := bm["name"].(string)
				pw, ok := bm["workspace"].(string)
				if !ok {
					pw = tw // Tekton binds the Pipeline's workspace of the same name
				}
				ro, known := taskWS[tw]
				require.True(t, known, "Pipeline %s binds workspace %s, which Task %s does not declare", name, tw, task)
				require.True(t, !plugin[pw] || ro, "Task %s does not declare workspace %s readOnly", task, tw)
				bound[tw] = true
			}
			for tw := range taskWS {
				require.True(t, bound[tw], "Pipeline %s does not bind workspace %s of Task %s", name, tw, task)
			}
		}
	}
	for _, p := range policies {
		require.NotNil(t, p.Spec.Connector, "AccessPolicy %s selects no Connector", p.Name)
		for _, c := range p.Spec.Connector.Names {
			require.Contains(t, ex.connectors, c, "AccessPolicy %s names an unknown Connector", p.Name)
		}
	}
}

// requireCSIWorkspace checks the csi volume of a workspace of the object
// what: a read-only connectors-csi volume naming an example Connector.
func requireCSIWorkspace(t *testing.T, ex examples, what, namespace, workspace string, c map[string]any) {
	t.Helper()
	require.Equal(t, csi.DriverName, c["driver"], "%s workspace %s", what, workspace)
	require.Equal(t, true, c["readOnly"], "%s workspace %s", what, workspace)
	attrs, _, err := unstructured.NestedStringMap(c, "volumeAttributes")
	require.NoError(t, err)
	names := []string{attrs["connector.name"]}
	if list, ok := attrs["connectors"]; ok {
		keys, err := connref.Parse(list, namespace)
		require.NoError(t, err, "%s workspace %s", what, workspace)
		names = names[:0]
		for _, k := range keys {
			names = append(names, k.Name)
		}
	}
	for _, name := range names {
		require.Contains(t, ex.connectors, name, "%s workspace %s names an unknown Connector", what, workspace)
	}
}

package apiserver

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// Env is a running API server with clients for it.
type Env struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kube is a typed client-go clientset.
	Kube kubernetes.Interface
	// Client is a controller-runtime client that knows the connectors types.
	Client client.Client

	env *envtest.Environment
	// certDir is the cert dir servingCerts made, removed by Stop.
	certDir string
	// apiArgs is the API server's command line, read by Kill for Restart.
	apiArgs []string
	// restarted is the API server Restart started, if any.
	restarted     *exec.Cmd
	restartedDone chan struct{} // closed when restarted has exited
	// paused is set between Pause and Resume.
	paused bool
}

// Options configure Start.
type Options struct {
	// CRDDirs are directories of CRD manifests to install. Default: the
	// project's generated CRDs in deploy/base/crds.
	CRDDirs []string
	// NoCRDs installs no CRD at all.
	NoCRDs bool
	// ServiceAccountAdmission enables the ServiceAccount admission plugin,
	// which envtest disables: pods then get their API token volume, as on a
	// cluster. A real node needs it; its controller manager creates the
	// default ServiceAccounts and the kube-root-ca.crt ConfigMaps.
	ServiceAccountAdmission bool
	// Port is the API server's port on 127.0.0.1. Default: a free port.
	Port string
	// APIServerFlags are more kube-apiserver flags, name (without the
	// dashes) to value.
	APIServerFlags map[string]string
	// ServingNames are more DNS names and IP addresses the serving
	// certificate names besides localhost and 127.0.0.1: those in-cluster
	// clients dial (the kubernetes Service's ClusterIP and names) and the
	// address nodes reach the API server on.
	ServingNames []string
}

// Scheme returns a scheme with the Kubernetes and connectors types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// RepoRoot is the root of this repository, found from the working directory.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "test", "apiserver")); err == nil {
				return d
			}
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// BinaryDir returns the directory that holds kube-apiserver and etcd, or an
// error that says how to build them.
func BinaryDir() (string, error) {
	has := func(d string) bool {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			fi, err := os.Stat(filepath.Join(d, b)) //nolint:gosec // a test binaries directory the developer chose
			if err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("KUBEBUILDER_ASSETS=%s lacks kube-apiserver or etcd: run `make testbin`", d)
	}
	cache, err := os.UserCacheDir()
	if err == nil {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			cache = x
		}
		matches, _ := filepath.Glob(filepath.Join(cache, "connectors-node", "testbin", "*"))
		sort.Sort(sort.Reverse(sort.StringSlice(matches)))
		for _, d := range matches {
			if has(d) {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("no kube-apiserver and etcd test binaries found: run `make testbin`")
}

// New starts a new API server outside of a test (the demo uses it). The
// caller stops it with Stop.
func New(opts Options) (*Env, error) { return start(opts) }

// Start starts a new API server for t and stops it when t ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the test API server; skipped with -short (make test-unit)")
	}
	e, err := start(opts)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	var missing missingBinaries
	if errors.As(err, &missing) && !testenv.InCI() {
		t.Skipf("skipping: %v", err)
	}
	t.Fatalf("starting the test API server: %v", err)
}

type missingBinaries struct{ error }

func start(opts Options) (*Env, error) {
	// controller-runtime warns on stderr unless its logger is set.
	ctrllog.SetLogger(logr.Discard())
	dir, err := BinaryDir()
	if err != nil {
		return nil, missingBinaries{err}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		ErrorIfCRDPathMissing:    true,
		Scheme:                   Scheme(),
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if opts.Port != "" {
		api := env.ControlPlane.GetAPIServer()
		api.Address = "127.0.0.1"
		api.Port = opts.Port
	}
	var certDir string
	if len(opts.ServingNames) > 0 {
		api := env.ControlPlane.GetAPIServer()
		if certDir, err = servingCerts(api, opts.ServingNames); err != nil {
			return nil, err
		}
	}
	if opts.ServiceAccountAdmission {
		env.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	}
	for name, value := range opts.APIServerFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(name, value)
	}
	if !opts.NoCRDs {
		env.CRDDirectoryPaths = opts.CRDDirs
		if len(env.CRDDirectoryPaths) == 0 {
			env.CRDDirectoryPaths = []string{filepath.Join(RepoRoot(), "deploy", "base", "crds")}
		}
	}
	cfg, err := env.Start()
	if err != nil {
		if certDir != "" {
			_ = os.RemoveAll(certDir)
		}
		// envtest leaves etcd and the API server running when a step after
		// their start (the CRD install) fails.
		if stopErr := env.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the control plane after the failed start: %w", stopErr))
		}
		return nil, err
	}
	e := &Env{Config: cfg, env: env, certDir: certDir}
	if e.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = env.Stop()
		return nil, err
	}
	if e.Client, err = client.New(cfg, client.Options{Scheme: env.Scheme}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops the API server and etcd. It is safe to call more than once.
func (e *Env) Stop() error {
	e.stopRestarted()
	err := e.env.Stop()
	if e.certDir != "" {
		_ = os.RemoveAll(e.certDir)
	}
	return err
}

// servingCerts writes, into a directory of its own that becomes the API
// server's cert dir, a serving certificate for localhost, 127.0.0.1 and
// names from a CA of its own, and the service account signing key, as
// envtest writes them; envtest then keeps them and trusts the CA.
func servingCerts(api *envtest.APIServer, names []string) (string, error) {
	dir, err := os.MkdirTemp("", "connectors-node-apiserver-")
	if err != nil {
		return "", err
	}
	ca, err := testpki.NewCA("test API server CA")
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	certPEM, keyPEM, err := ca.Issue(append([]string{"localhost", "127.0.0.1"}, names...)...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	sa, err := testpki.NewCA("test service account signer")
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	saKey, err := x509.MarshalECPrivateKey(sa.Key)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	for name, data := range map[string][]byte{
		"apiserver.crt": certPEM,
		"apiserver.key": keyPEM,
		"sa-signer.crt": sa.PEM,
		"sa-signer.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saKey}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
	}
	api.CertDir = dir
	api.CA = ca.PEM
	return dir, nil
}

var (
	sharedOnce sync.Once
	sharedEnv  *Env
	sharedErr  error
)

// Shared returns an API server shared by the tests of one test binary,
// started on first use with the project's CRDs. Call StopShared from
// TestMain after m.Run.
func Shared(t testing.TB) *Env {
	t.Helper()
	sharedOnce.Do(func() { sharedEnv, sharedErr = start(Options{}) })
	if sharedErr != nil {
		skipOrFail(t, sharedErr)
	}
	return sharedEnv
}

// StopShared stops the shared API server if one was started.
func StopShared() {
	if sharedEnv != nil {
		_ = sharedEnv.Stop()
	}
}

// Namespace creates a namespace with a unique name for t.
func (e *Env) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	ns, err := e.Kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// ServiceAccount creates a ServiceAccount (idempotently).
func (e *Env) ServiceAccount(t testing.TB, ns, name string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	_, err := e.Kube.CoreV1().ServiceAccounts(ns).Create(context.Background(), sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating service account %s/%s: %v", ns, name, err)
	}
}

// Token mints a token for a ServiceAccount with the TokenRequest API.
func (e *Env) Token(t testing.TB, ns, sa string, audiences []string, expiration time.Duration) string {
	t.Helper()
	secs := int64(expiration / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         audiences,
		ExpirationSeconds: &secs,
	}}
	resp, err := e.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for %s/%s: %v", ns, sa, err)
	}
	return resp.Status.Token
}

// AllowConnectors grants a ServiceAccount the given verbs on connectors
// (and the listed subresources) in namespace ns, with a Role and RoleBinding.
func (e *Env) AllowConnectors(t testing.TB, ns, saNamespace, sa string, resources ...string) {
	t.Helper()
	if len(resources) == 0 {
		resources = []string{v1alpha1.ConnectorResource}
	}
	ctx := context.Background()
	name := fmt.Sprintf("connectors-%s-%s", saNamespace, sa)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{v1alpha1.GroupVersion.Group},
			Resources: resources,
			Verbs:     []string{"get"},
		}},
	}
	if _, err := e.Kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating role: %v", err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: saNamespace, Name: sa}},
	}
	if _, err := e.Kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating role binding: %v", err)
	}
}

// WriteKubeconfig writes a kubeconfig for this API server that
// authenticates with a bearer token, such as a ServiceAccount's.
func (e *Env) WriteKubeconfig(path, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["apitest"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["token"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["apitest"] = &clientcmdapi.Context{Cluster: "apitest", AuthInfo: "token"}
	cfg.CurrentContext = "apitest"
	return clientcmd.WriteToFile(*cfg, path)
}

// WriteAdminKubeconfig writes a kubeconfig for this API server with the
// admin (system:masters) client certificate, for the components of a real
// node (kubelet, kube-scheduler, kube-controller-manager, kubectl).
func (e *Env) WriteAdminKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["apitest"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData}
	cfg.Contexts["apitest"] = &clientcmdapi.Context{Cluster: "apitest", AuthInfo: "admin"}
	cfg.CurrentContext = "apitest"
	return clientcmd.WriteToFile(*cfg, path)
}

// Kubectl returns the path of the kubectl that hack/testbin.sh builds
// beside kube-apiserver, at the same pinned version, or an error that says
// how to build it.
func Kubectl() (string, error) {
	dir, err := BinaryDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "kubectl")
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("no kubectl in %s: run `make testbin`", dir)
	}
	return p, nil
}

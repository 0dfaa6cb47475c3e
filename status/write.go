package status

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// statusPatch is the merge patch of a status subresource. The
// resourceVersion makes a patch computed from a stale cache fail with a
// conflict instead of overwriting newer status.
type statusPatch struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Status struct {
		ObservedGeneration int64                `json:"observedGeneration"`
		Conditions         []v1alpha1.Condition `json:"conditions"`
		// Proxy is always sent: null removes it.
		Proxy *v1alpha1.ProxyStatus `json:"proxy"`
		// API is a class's **ClassAPIStatus (null removes it) or a
		// Connector's *ConnectorAPIStatus.
		API any `json:"api,omitempty"`
	} `json:"status"`
}

// written is the status the reconciler last wrote for an object, kept
// until the cache catches up: a reconcile that still sees the version the
// write was made from compares with and patches over the written one,
// instead of losing a conflict to its own write.
type written struct {
	// stale are the versions older than the write: the one it was computed
	// from and the reconciler's own earlier writes on top of it.
	stale map[string]bool
	// to is the version the write made.
	to     string
	status v1alpha1.Status
	proxy  *v1alpha1.ProxyStatus
	api    *v1alpha1.ClassAPIStatus
	path   *v1alpha1.ConnectorAPIStatus
}

// outputs are the status fields besides the conditions: the proxy address,
// for a class its API address, and for a Connector its Connectors API path.
type outputs struct {
	proxy *v1alpha1.ProxyStatus
	api   *v1alpha1.ClassAPIStatus
	path  *v1alpha1.ConnectorAPIStatus
}

// base returns the status to compare with and the resourceVersion to
// patch: the cache's, or the reconciler's own newer write.
func (c *controller) base(k key, obj client.Object, cur *v1alpha1.Status, curOut outputs) (*v1alpha1.Status, outputs, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.written[k]; ok {
		if w.stale[obj.GetResourceVersion()] {
			return &w.status, outputs{proxy: w.proxy, api: w.api, path: w.path}, w.to
		}
		// The cache caught up, or someone else wrote.
		delete(c.written, k)
	}
	return cur, curOut, obj.GetResourceVersion()
}

// writeStatus patches obj's status when observedGeneration, conditions or
// proxy differ from cur; it reports whether it wrote, and the Ready
// condition it compared with.
func (c *controller) writeStatus(ctx context.Context, k key, obj client.Object, kind string, cur *v1alpha1.Status, curOut outputs,
	conds []v1alpha1.Condition, out outputs) (bool, *v1alpha1.Condition, error) {
	cur, curOut, rv := c.base(k, obj, cur, curOut)
	before := findCondition(cur.Conditions, TypeReady)
	carryTransitions(cur.Conditions, conds, metav1.NewTime(c.opts.Now().Truncate(1e9)))
	if cur.ObservedGeneration == obj.GetGeneration() &&
		equality.Semantic.DeepEqual(cur.Conditions, conds) &&
		equality.Semantic.DeepEqual(curOut.proxy, out.proxy) && equality.Semantic.DeepEqual(curOut.api, out.api) &&
		equality.Semantic.DeepEqual(curOut.path, out.path) {
		return false, before, nil
	}
	var p statusPatch
	p.Metadata.ResourceVersion = rv
	p.Status.ObservedGeneration = obj.GetGeneration()
	p.Status.Conditions = conds
	p.Status.Proxy = out.proxy
	if kind == "connector" {
		p.Status.API = out.path
	} else {
		p.Status.API = &out.api
	}
	body, err := json.Marshal(p)
	if err != nil {
		return false, nil, err
	}
	var target client.Object
	if kind == "connector" {
		target = &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: obj.GetName()}}
	} else {
		target = &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName()}}
	}
	err = c.opts.Client.Status().Patch(ctx, target, client.RawPatch(types.MergePatchType, body), client.FieldOwner(fieldManager))
	switch {
	case apierrors.IsConflict(err):
		c.forgetWritten(k)
		return false, nil, &conflictError{err: err}
	case apierrors.IsNotFound(err):
		return false, nil, nil
	case err != nil:
		c.metrics.errors.WithLabelValues("write").Inc()
		return false, nil, fmt.Errorf("patching %s %s status: %w", kind, client.ObjectKeyFromObject(obj), err)
	}
	c.metrics.writes.WithLabelValues(kind, "patch").Inc()
	c.mu.Lock()
	stale := map[string]bool{obj.GetResourceVersion(): true, rv: true}
	if w, ok := c.written[k]; ok {
		for v := range w.stale {
			stale[v] = true
		}
	}
	c.written[k] = written{
		stale: stale, to: target.GetResourceVersion(), proxy: out.proxy, api: out.api, path: out.path,
		status: v1alpha1.Status{ObservedGeneration: obj.GetGeneration(), Conditions: conds, Annotations: cur.Annotations},
	}
	c.mu.Unlock()
	return true, before, nil
}

func (c *controller) forgetWritten(k key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.written, k)
}

func (c *controller) writeConnector(ctx context.Context, conn *v1alpha1.Connector, conds []v1alpha1.Condition, proxy *v1alpha1.ProxyStatus) error {
	oldCA := findCondition(conn.Status.Conditions, TypeCACertReady)
	if oldCA != nil {
		copied := *oldCA
		oldCA = &copied
	}
	wrote, before, err := c.writeStatus(ctx, connectorKey(conn), conn, "connector", &conn.Status.Status,
		outputs{proxy: conn.Status.Proxy, path: conn.Status.API}, conds,
		outputs{proxy: proxy, path: &v1alpha1.ConnectorAPIStatus{Path: v1alpha1.APIPath(conn.Namespace, conn.Name)}})
	if err != nil || !wrote {
		return err
	}
	if ca := findCondition(conds, TypeCACertReady); ca != nil && ca.Status == False &&
		(oldCA == nil || oldCA.Status != False || oldCA.Reason != ca.Reason) {
		reason := EventInvalidCACert
		if ca.Reason == ReasonSecretNotFound {
			reason = EventCACertSecretNotFound
		}
		c.recorder.Event(conn, corev1.EventTypeWarning, reason, ca.Message)
	}
	after := findCondition(conds, TypeReady)
	if after != nil && (before == nil || before.Status != after.Status || before.Reason != after.Reason) {
		switch after.Status {
		case True:
			if before == nil || before.Status != False {
				return nil // first Ready: nothing to tell
			}
			c.recorder.Event(conn, corev1.EventTypeNormal, "Ready", "connector is ready")
		case False:
			c.recorder.Event(conn, corev1.EventTypeWarning, after.Reason, after.Message)
		}
	}
	return nil
}

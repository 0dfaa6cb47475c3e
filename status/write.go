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
	} `json:"status"`
}

// writeStatus patches obj's status when observedGeneration, conditions or
// proxy differ from cur; it reports whether it wrote.
func (c *controller) writeStatus(ctx context.Context, obj client.Object, kind string, cur *v1alpha1.Status, curProxy *v1alpha1.ProxyStatus,
	conds []v1alpha1.Condition, proxy *v1alpha1.ProxyStatus) (bool, error) {
	carryTransitions(cur.Conditions, conds, metav1.NewTime(c.opts.Now().Truncate(1e9)))
	if cur.ObservedGeneration == obj.GetGeneration() &&
		equality.Semantic.DeepEqual(cur.Conditions, conds) && equality.Semantic.DeepEqual(curProxy, proxy) {
		return false, nil
	}
	var p statusPatch
	p.Metadata.ResourceVersion = obj.GetResourceVersion()
	p.Status.ObservedGeneration = obj.GetGeneration()
	p.Status.Conditions = conds
	p.Status.Proxy = proxy
	body, err := json.Marshal(p)
	if err != nil {
		return false, err
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
		return false, &conflictError{err: err}
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		c.metrics.errors.WithLabelValues("write").Inc()
		return false, fmt.Errorf("patching %s %s status: %w", kind, client.ObjectKeyFromObject(obj), err)
	}
	c.metrics.writes.WithLabelValues(kind, "patch").Inc()
	return true, nil
}

func (c *controller) writeConnector(ctx context.Context, conn *v1alpha1.Connector, conds []v1alpha1.Condition, proxy *v1alpha1.ProxyStatus) error {
	before := findCondition(conn.Status.Conditions, TypeReady)
	wrote, err := c.writeStatus(ctx, conn, "connector", &conn.Status.Status, conn.Status.Proxy, conds, proxy)
	if err != nil || !wrote {
		return err
	}
	after := findCondition(conds, TypeReady)
	if after != nil && (before == nil || before.Status != after.Status || before.Reason != after.Reason) {
		switch after.Status {
		case True:
			c.recorder.Event(conn, corev1.EventTypeNormal, "Ready", "connector is ready")
		case False:
			c.recorder.Event(conn, corev1.EventTypeWarning, after.Reason, after.Message)
		}
	}
	return nil
}

package status

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Labels on the Services the reconciler owns. Only Services with
// managedByLabel=managedByValue are ever changed or deleted, and only when
// their controller reference is the Connector itself.
const (
	managedByLabel  = v1alpha1.HostFormManagedByLabel
	managedByValue  = v1alpha1.HostFormManagedByValue
	connectorLabel  = v1alpha1.HostFormConnectorLabel
	managedSelector = managedByLabel + "=" + managedByValue
)

// owned reports whether svc is the reconciler's Service for conn.
func owned(svc *corev1.Service, conn *v1alpha1.Connector) bool {
	if svc.Labels[managedByLabel] != managedByValue {
		return false
	}
	ref := metav1.GetControllerOf(svc)
	return ref != nil && ref.UID == conn.UID && ref.Kind == connectorKind &&
		ref.APIVersion == v1alpha1.GroupVersion.String()
}

// ensureService makes the Connector's host-form Service point at target.
// A Service of that name the reconciler does not own for this Connector is
// left alone and reported as a conflict.
func (c *controller) ensureService(ctx context.Context, conn *v1alpha1.Connector, name, target string) v1alpha1.Condition {
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: conn.Namespace,
			Labels:    map[string]string{managedByLabel: managedByValue, connectorLabel: conn.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(),
				Kind:       connectorKind,
				Name:       conn.Name,
				UID:        conn.UID,
				Controller: ptr.To(true),
			}},
		},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
	svcs := c.opts.Kube.CoreV1().Services(conn.Namespace)
	cur, err := c.services.Services(conn.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		_, err = svcs.Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager})
		if err == nil {
			c.metrics.writes.WithLabelValues("service", "create").Inc()
			return cond(TypeProxyServiceReady, True, "", "")
		}
		if !apierrors.IsAlreadyExists(err) {
			return c.serviceError(name, conn, err)
		}
		// Not in the informer (not labelled as ours) yet present.
		cur, err = svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return c.serviceError(name, conn, err)
		}
	} else if err != nil {
		return c.serviceError(name, conn, err)
	}
	if !owned(cur, conn) {
		if cur.Labels[managedByLabel] == managedByValue && cur.Labels[connectorLabel] == conn.Name {
			if ref := metav1.GetControllerOf(cur); ref != nil && ref.Kind == connectorKind && ref.Name == conn.Name {
				// Left by an earlier Connector of this name that the
				// garbage collector has not removed yet.
				return c.deleteStale(ctx, cur, conn)
			}
		}
		return cond(TypeProxyServiceReady, False, ReasonServiceConflict,
			fmt.Sprintf("Service %q already exists in namespace %q and is not owned by this connector; rename or remove it to get the host-form address", name, conn.Namespace))
	}
	if cur.Spec.Type == corev1.ServiceTypeExternalName && cur.Spec.ExternalName == target {
		return cond(TypeProxyServiceReady, True, "", "")
	}
	upd := cur.DeepCopy()
	upd.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target}
	if _, err := svcs.Update(ctx, upd, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		return c.serviceError(name, conn, err)
	}
	c.metrics.writes.WithLabelValues("service", "update").Inc()
	return cond(TypeProxyServiceReady, True, "", "")
}

func (c *controller) deleteStale(ctx context.Context, svc *corev1.Service, conn *v1alpha1.Connector) v1alpha1.Condition {
	err := c.opts.Kube.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &svc.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return c.serviceError(svc.Name, conn, err)
	}
	c.metrics.writes.WithLabelValues("service", "delete").Inc()
	return cond(TypeProxyServiceReady, Unknown, ReasonServiceError,
		fmt.Sprintf("Service %q of an earlier connector %q removed; creating it again", svc.Name, conn.Name))
}

func (c *controller) serviceError(name string, conn *v1alpha1.Connector, err error) v1alpha1.Condition {
	c.metrics.errors.WithLabelValues("write").Inc()
	c.opts.Log.Error(err, "host-form service", "connector", conn.Key(), "service", name)
	return cond(TypeProxyServiceReady, False, ReasonServiceError,
		fmt.Sprintf("Service %q in namespace %q: %s", name, conn.Namespace, apierrors.ReasonForError(err)))
}

// removeService deletes the reconciler's Service for the Connector
// namespace/name if there is one: the Connector is gone or no longer uses
// the host form. uid, when set, must be the Connector's.
func (c *controller) removeService(ctx context.Context, namespace, name string, keep func(*corev1.Service) bool) error {
	svcName := v1alpha1.HostFormServiceName(name)
	cur, err := c.services.Services(namespace).Get(svcName)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.Labels[connectorLabel] != name || keep(cur) {
		return nil
	}
	ref := metav1.GetControllerOf(cur)
	if ref == nil || ref.Kind != connectorKind || ref.Name != name {
		return nil
	}
	err = c.opts.Kube.CoreV1().Services(namespace).Delete(ctx, svcName,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting service %s/%s: %w", namespace, svcName, err)
	}
	c.metrics.writes.WithLabelValues("service", "delete").Inc()
	return nil
}

// fieldManager names the reconciler's writes.
const fieldManager = "connectors-node-status"

// connectorKind is the kind in the Services' owner references.
const connectorKind = "Connector"

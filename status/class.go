package status

import (
	"context"
	"errors"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// reconcileClass writes a ConnectorClass's ProxyReady, APIReady and Ready
// conditions and its resolved proxy address.
func (c *controller) reconcileClass(ctx context.Context, name string) error {
	cls, err := c.opts.Objects.ConnectorClass(ctx, name)
	if errors.Is(err, kube.ErrNotFound) {
		c.cel.forgetClass(name)
		return nil
	}
	if err != nil {
		return err
	}
	if cls.DeletionTimestamp != nil {
		return nil
	}
	var proxy *v1alpha1.ProxyStatus
	var proxyCond v1alpha1.Condition
	p, err := c.resolveClassProxy(cls)
	if err == nil {
		_, err = resolver(cls)
	}
	switch {
	case err != nil:
		proxyCond = cond(TypeProxyReady, False, ReasonProxyInvalid, err.Error())
	case p.node:
		proxyCond = cond(TypeProxyReady, True, ReasonNodeProxy, "served by the node proxy "+p.url)
	default:
		proxyCond = cond(TypeProxyReady, True, "", "")
	}
	if err == nil {
		proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: p.url, Audience: p.audience, CACerts: p.caCerts}}
	}
	apiCond := cond(TypeAPIReady, True, ReasonNonAPI, "")
	if cls.Spec.API != nil {
		apiCond = cond(TypeAPIReady, Unknown, ReasonAPINotChecked, "spec.api: the class API is not checked by connectors-node")
		apiCond.Severity = SeverityInfo
	}
	conds := []v1alpha1.Condition{proxyCond, apiCond}
	conds = append(conds, ready(conds))
	_, _, err = c.writeStatus(ctx, key{class: true, name: name}, cls, "connectorclass", &cls.Status.Status, cls.Status.Proxy, conds, proxy)
	return err
}

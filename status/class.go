package status

import (
	"context"
	"errors"
	"fmt"
	"net/http"

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
	api, apiCond := c.classAPI(ctx, cls)
	conds := []v1alpha1.Condition{proxyCond, apiCond}
	conds = append(conds, ready(conds))
	_, _, err = c.writeStatus(ctx, key{class: true, name: name}, cls, "connectorclass", &cls.Status.Status,
		outputs{proxy: cls.Status.Proxy, api: cls.Status.API}, conds, outputs{proxy: proxy, api: api})
	return err
}

// classAPI returns status.api and APIReady. As upstream, the check only
// tries the API's address: any HTTP answer is True, whatever its status.
func (c *controller) classAPI(ctx context.Context, cls *v1alpha1.ConnectorClass) (*v1alpha1.ClassAPIStatus, v1alpha1.Condition) {
	addr, err := c.resolveAPI(cls)
	switch {
	case err != nil:
		return nil, cond(TypeAPIReady, False, ReasonAPIInvalid, err.Error())
	case addr == nil:
		return nil, cond(TypeAPIReady, True, ReasonNonAPI, "")
	}
	api := &v1alpha1.ClassAPIStatus{Address: addr}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ProbeTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, addr.URL, nil)
	if err != nil {
		return api, cond(TypeAPIReady, False, ReasonAPIInvalid, fmt.Sprintf("spec.api: %q: %v", addr.URL, err))
	}
	r.Header.Set("User-Agent", probeUserAgent)
	resp, err := c.opts.Sender.SendToAPI(ctx, nil, addr, r)
	if err != nil {
		c.metrics.probes.WithLabelValues("api", "failed").Inc()
		return api, cond(TypeAPIReady, False, ReasonAPIUnreachable, fmt.Sprintf("spec.api: GET %s: %v", addr.URL, unwrapURLError(err)))
	}
	_ = resp.Body.Close()
	c.metrics.probes.WithLabelValues("api", "ok").Inc()
	return api, cond(TypeAPIReady, True, "", "")
}

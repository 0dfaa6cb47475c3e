package status

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
)

// reconcileConnector computes and writes one Connector's status, and keeps
// its host-form Service. It reports whether the Connector is Ready (or
// gone).
func (c *controller) reconcileConnector(ctx context.Context, k key) (bool, error) {
	conn, err := c.opts.Objects.Connector(ctx, k.namespace, k.name)
	if errors.Is(err, kube.ErrNotFound) {
		c.forgetProbes(k)
		c.forgetWritten(k)
		// The garbage collector removes the Service through its owner
		// reference; deleting it here as well does not wait for it.
		return true, c.removeService(ctx, k.namespace, k.name, func(*corev1.Service) bool { return false })
	}
	if err != nil {
		return false, err
	}
	if conn.DeletionTimestamp != nil {
		return true, nil
	}
	conds, proxy, err := c.connectorStatus(ctx, conn)
	if err != nil {
		return false, err
	}
	return conds[len(conds)-1].Status == True, c.writeConnector(ctx, conn, conds, proxy)
}

// inputs are what a Connector's status and probes depend on.
type inputs struct {
	class *v1alpha1.ConnectorClass
	// authType is the class's auth type the Connector uses, if any.
	authType *v1alpha1.AuthType
	// secretCond is SecretReady; secret is set when it is True with a Secret.
	secretCond v1alpha1.Condition
	secret     *corev1.Secret
}

// secretOK reports whether probes may carry the Connector's credential.
func (in *inputs) secretOK() bool { return in.secretCond.Status == True }

// fingerprint changes whenever a probe's outcome could change because the
// objects did.
func (in *inputs) fingerprint(conn *v1alpha1.Connector) string {
	s := fmt.Sprintf("%s/%d/%s/%d/%s", conn.UID, conn.Generation, in.class.UID, in.class.Generation, in.secretCond.Status)
	if in.secret != nil {
		s += "/" + string(in.secret.UID) + "/" + in.secret.ResourceVersion
	}
	return s
}

// load reads the class and Secret of conn. A missing class is a condition,
// returned with a nil class; a failed read is an error.
func (c *controller) load(ctx context.Context, conn *v1alpha1.Connector) (*inputs, *v1alpha1.Condition, error) {
	name := conn.Spec.ConnectorClassName
	if name == "" {
		cd := cond(TypeConnectorClassReady, False, ReasonConnectorClassNotFound, "spec.connectorClassName: required")
		return nil, &cd, nil
	}
	cls, err := c.opts.Objects.ConnectorClass(ctx, name)
	if errors.Is(err, kube.ErrNotFound) {
		cd := cond(TypeConnectorClassReady, False, ReasonConnectorClassNotFound,
			fmt.Sprintf("spec.connectorClassName: connectorclass %q not found", name))
		return nil, &cd, nil
	}
	if err != nil {
		return nil, nil, err
	}
	in := &inputs{class: cls}
	in.authType, in.secretCond, in.secret = c.secretCondition(ctx, conn, cls)
	return in, nil, nil
}

// secretCondition checks spec.auth against the class's auth types and the
// Secret it names.
func (c *controller) secretCondition(ctx context.Context, conn *v1alpha1.Connector, cls *v1alpha1.ConnectorClass) (*v1alpha1.AuthType, v1alpha1.Condition, *corev1.Secret) {
	var at *v1alpha1.AuthType
	types := cls.Spec.Auth.Types
	switch {
	case conn.Spec.Auth.Name != "":
		for i := range types {
			if types[i].Name == conn.Spec.Auth.Name {
				at = &types[i]
			}
		}
		if at == nil {
			return nil, cond(TypeSecretReady, False, ReasonAuthTypeNotFound,
				fmt.Sprintf("spec.auth.name: connectorclass %q has no auth type %q", cls.Name, conn.Spec.Auth.Name)), nil
		}
	case len(types) == 1:
		at = &types[0]
	}
	ref := conn.Spec.Auth.SecretRef
	if ref == nil || ref.Name == "" {
		if at == nil || at.Optional {
			return at, cond(TypeSecretReady, True, ReasonSecretOptional, ""), nil
		}
		return at, cond(TypeSecretReady, False, ReasonSecretRequired,
			fmt.Sprintf("spec.auth.secretRef: auth type %q of connectorclass %q requires a secret", at.Name, cls.Name)), nil
	}
	if ref.Namespace != "" && ref.Namespace != conn.Namespace {
		return at, cond(TypeSecretReady, False, ReasonSecretNamespace,
			fmt.Sprintf("spec.auth.secretRef.namespace: %q is not the connector's namespace %q", ref.Namespace, conn.Namespace)), nil
	}
	s, err := c.opts.Objects.Secret(ctx, conn.Namespace, ref.Name)
	switch {
	case errors.Is(err, kube.ErrNotFound):
		return at, cond(TypeSecretReady, False, ReasonSecretNotFound,
			fmt.Sprintf("spec.auth.secretRef.name: secret %q not found", conn.Namespace+"/"+ref.Name)), nil
	case err != nil:
		return at, cond(TypeSecretReady, Unknown, ReasonSecretUnavailable,
			fmt.Sprintf("spec.auth.secretRef.name: reading secret %q failed", conn.Namespace+"/"+ref.Name)), nil
	}
	if at != nil && at.SecretType != "" && string(s.Type) != at.SecretType {
		return at, cond(TypeSecretReady, False, ReasonSecretTypeMismatch,
			fmt.Sprintf("spec.auth.secretRef.name: secret %q has type %q; auth type %q needs %q",
				conn.Namespace+"/"+ref.Name, s.Type, at.Name, at.SecretType)), nil
	}
	return at, cond(TypeSecretReady, True, "", ""), s
}

// connectorStatus computes the conditions (Ready last) and the proxy
// address, creating or fixing the host-form Service on the way.
func (c *controller) connectorStatus(ctx context.Context, conn *v1alpha1.Connector) ([]v1alpha1.Condition, *v1alpha1.ProxyStatus, error) {
	// An address outside the grammar the CRD enforces was stored before
	// the rule: the node neither mounts nor proxies the Connector, and
	// nothing is probed at such an address.
	if err := conn.CheckAddresses(); err != nil {
		c.forgetProbes(connectorKey(conn))
		return []v1alpha1.Condition{cond(TypeReady, False, ReasonInvalidAddress,
			err.Error()+"; the node mounts and proxies this connector again once the address is fixed")}, nil, nil
	}
	in, missing, err := c.load(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	if missing != nil {
		c.forgetProbes(connectorKey(conn))
		conds := []v1alpha1.Condition{*missing}
		return append(conds, ready(conds)), nil, nil
	}
	proxy, svcCond := c.address(ctx, conn, in.class)
	live, auth := c.probeConditions(conn, in)
	conds := []v1alpha1.Condition{
		cond(TypeConnectorClassReady, True, "", ""),
		in.secretCond, live, auth, svcCond, c.caCertCondition(ctx, conn),
	}
	return append(conds, ready(conds)), proxy, nil
}

// caCertCondition is CACertReady, of severity Info: whether the Secret of
// spec.caCertSecretRef holds a certificate. It does not count towards
// Ready, as upstream; a Connector whose CA Secret is missing or holds no
// certificate is not proxied (its tool would be verified against another
// set of roots than the one asked for), which its LivenessReady shows.
func (c *controller) caCertCondition(ctx context.Context, conn *v1alpha1.Connector) v1alpha1.Condition {
	info := func(status, reason, message string) v1alpha1.Condition {
		cd := cond(TypeCACertReady, status, reason, message)
		cd.Severity = SeverityInfo
		return cd
	}
	ref := conn.Spec.CACertSecretRef
	if ref == nil || ref.Name == "" {
		return info(True, ReasonNoCACert, "")
	}
	key := conn.Namespace + "/" + ref.Name
	s, err := c.opts.Objects.Secret(ctx, conn.Namespace, ref.Name)
	switch {
	case errors.Is(err, kube.ErrNotFound):
		return info(False, ReasonSecretNotFound, fmt.Sprintf(
			"spec.caCertSecretRef.name: secret %q not found; the connector is not proxied until it exists", key))
	case err != nil:
		return info(Unknown, ReasonSecretUnavailable, fmt.Sprintf("spec.caCertSecretRef.name: reading secret %q failed", key))
	case len(ca.CertsFromSecret(s)) == 0:
		return info(False, ReasonInvalidPEM, fmt.Sprintf(
			"spec.caCertSecretRef.name: secret %q holds no PEM certificate in a key ending .crt or .pem; the connector is not proxied until it does", key))
	}
	return info(True, ReasonCACertValid, fmt.Sprintf("CA certificate loaded from secret %q", ref.Name))
}

// address returns status.proxy and ProxyServiceReady. When the host-form
// Service cannot be had, the address falls back to the path form: the
// host-form name might lead to someone else's Service.
func (c *controller) address(ctx context.Context, conn *v1alpha1.Connector, cls *v1alpha1.ConnectorClass) (*v1alpha1.ProxyStatus, v1alpha1.Condition) {
	p, err := c.resolveClassProxy(cls)
	if err == nil {
		_, err = resolver(cls)
	}
	if err != nil {
		return nil, cond(TypeProxyServiceReady, False, ReasonProxyInvalid, fmt.Sprintf("connectorclass %q: %v", cls.Name, err))
	}
	res, _ := resolver(cls)
	addr := &v1alpha1.Addressable{URL: p.url + v1alpha1.PathPrefix(conn.Namespace, conn.Name), Audience: p.audience, CACerts: p.caCerts}
	out := &v1alpha1.ProxyStatus{HTTPAddress: addr}
	if res == ResolverPath {
		if err := c.removeService(ctx, conn.Namespace, conn.Name, func(*corev1.Service) bool { return false }); err != nil {
			c.opts.Log.Error(err, "removing host-form service", "connector", conn.Key())
		}
		return out, cond(TypeProxyServiceReady, True, ReasonPathResolver, "")
	}
	svc, err := serviceName(conn.Name)
	if err != nil {
		return out, cond(TypeProxyServiceReady, False, ReasonServiceNameInvalid, err.Error()+"; the address is in path form")
	}
	target, err := c.externalName(p)
	if err != nil {
		return out, cond(TypeProxyServiceReady, False, ReasonProxyInvalid, fmt.Sprintf("connectorclass %q: %v", cls.Name, err))
	}
	sc := c.ensureService(ctx, conn, svc, target)
	if sc.Status != True {
		if sc.Message != "" {
			sc.Message += "; the address is in path form"
		}
		return out, sc
	}
	host, err := c.hostAddress(p, svc, conn.Namespace)
	if err != nil {
		return out, cond(TypeProxyServiceReady, False, ReasonProxyInvalid, fmt.Sprintf("connectorclass %q: %v", cls.Name, err))
	}
	addr.URL = host
	return out, sc
}

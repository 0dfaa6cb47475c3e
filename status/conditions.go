package status

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Condition types, as upstream names them.
const (
	TypeReady               = "Ready"
	TypeConnectorClassReady = "ConnectorClassReady"
	TypeSecretReady         = "SecretReady"
	TypeLivenessReady       = "LivenessReady"
	TypeAuthReady           = "AuthReady"
	TypeProxyServiceReady   = "ProxyServiceReady"
	TypeProxyReady          = "ProxyReady"
	TypeAPIReady            = "APIReady"
	// TypeCACertReady is informational (severity Info): it does not count
	// towards Ready.
	TypeCACertReady = "CACertReady"
)

// Condition statuses.
const (
	True    = "True"
	False   = "False"
	Unknown = "Unknown"
)

// Reasons. The ones upstream documents keep its names (SecretOptional,
// NonAuthProbe, NonLivenessProbe, NonProxy, NonAPI); the failure reasons
// say what to fix.
const (
	ReasonInvalidAddress         = "InvalidAddress"
	ReasonConnectorClassNotFound = "ConnectorClassNotFound"
	ReasonAuthTypeNotFound       = "AuthTypeNotFound"
	ReasonSecretOptional         = "SecretOptional"
	ReasonSecretRequired         = "SecretRequired"
	ReasonSecretNotFound         = "SecretNotFound"
	ReasonSecretTypeMismatch     = "SecretTypeMismatch"
	ReasonSecretNamespace        = "SecretNamespaceMismatch"
	ReasonSecretUnavailable      = "SecretUnavailable"
	ReasonNonLivenessProbe       = "NonLivenessProbe"
	ReasonToolUnreachable        = "ToolUnreachable"
	ReasonNonAuthProbe           = "NonAuthProbe"
	ReasonCredentialsRejected    = "CredentialsRejected"
	ReasonAuthProbeFailed        = "AuthProbeFailed"
	ReasonProbeTargetRefused     = "ProbeTargetRefused"
	ReasonProbeInvalid           = "ProbeInvalid"
	ReasonProbing                = "Probing"
	ReasonSecretNotReady         = "SecretNotReady"
	ReasonNonProxy               = "NonProxy"
	ReasonPathResolver           = "PathResolver"
	ReasonServiceConflict        = "ProxyServiceConflict"
	ReasonServiceNameInvalid     = "ProxyServiceNameInvalid"
	ReasonServiceError           = "ProxyServiceError"
	ReasonProxyInvalid           = "ProxyInvalid"
	ReasonNodeProxy              = "NodeProxy"
	ReasonNonAPI                 = "NonAPI"
	ReasonAPIInvalid             = "APIInvalid"
	ReasonAPIUnreachable         = "APIUnreachable"
	// CACertReady's reasons, upstream's names (SecretNotFound is shared).
	ReasonCACertValid = "Valid"
	ReasonNoCACert    = "NoCACert"
	ReasonInvalidPEM  = "InvalidPEM"
)

// Reasons of the Warning Events of a CACertReady that turned False,
// upstream's names.
const (
	EventCACertSecretNotFound = "CACertSecretNotFound"
	EventInvalidCACert        = "InvalidCACert"
)

// SeverityInfo marks a condition that does not count towards Ready.
const SeverityInfo = "Info"

func cond(typ, status, reason, message string) v1alpha1.Condition {
	return v1alpha1.Condition{Type: typ, Status: status, Reason: reason, Message: message}
}

// ready aggregates conds into a Ready condition: False with the first False
// condition's reason and message, else Unknown likewise, else True.
// Conditions of severity Info do not count.
func ready(conds []v1alpha1.Condition) v1alpha1.Condition {
	for _, want := range []string{False, Unknown} {
		for _, c := range conds {
			if c.Severity != SeverityInfo && c.Status == want {
				return cond(TypeReady, want, c.Reason, c.Message)
			}
		}
	}
	return cond(TypeReady, True, "", "")
}

// carryTransitions sets each condition's lastTransitionTime: the old one
// when the status did not change, now when it did or is new.
func carryTransitions(old, conds []v1alpha1.Condition, now metav1.Time) {
	for i := range conds {
		conds[i].LastTransitionTime = &now
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status && o.LastTransitionTime != nil {
				t := *o.LastTransitionTime
				conds[i].LastTransitionTime = &t
			}
		}
	}
}

func findCondition(conds []v1alpha1.Condition, typ string) *v1alpha1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

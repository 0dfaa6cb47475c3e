package csi

import (
	"encoding/json"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/kube"
)

// projectedToken is one entry of the tokens kubelet passes to the driver,
// keyed by audience.
type projectedToken struct {
	Token               string    `json:"token"`
	ExpirationTimestamp time.Time `json:"expirationTimestamp"`
}

// podToken returns the kubelet-projected token for audience, read from the
// request secrets (Kubernetes 1.35+ with serviceAccountTokenInSecrets) or
// else from volume_context. No error text carries any part of a token.
func podToken(secrets, volumeContext map[string]string, audience string) (projectedToken, error) {
	for _, source := range []struct {
		name   string
		values map[string]string
	}{{"secrets", secrets}, {"volume_context", volumeContext}} {
		raw, ok := source.values[TokensKey]
		if !ok || raw == "" {
			continue
		}
		var tokens map[string]projectedToken
		if err := json.Unmarshal([]byte(raw), &tokens); err != nil {
			// The JSON error is left out: it may quote part of a token.
			return projectedToken{}, status.Errorf(codes.InvalidArgument,
				"%s in the request %s is not a JSON map of audience to {token, expirationTimestamp}", TokensKey, source.name)
		}
		if t, ok := tokens[audience]; ok && t.Token != "" {
			return t, nil
		}
	}
	return projectedToken{}, status.Errorf(codes.FailedPrecondition,
		"no ServiceAccount token for audience %q in the request: the CSIDriver %s needs tokenRequests: [{audience: %q}]",
		audience, DriverName, audience)
}

// tokenLifetime reads exp - iat from a JWT's claims without verifying it
// (kubelet got the token from the API server); it only sizes a warning.
func tokenLifetime(token string) (time.Duration, bool) {
	c, ok := kube.TokenClaims(token)
	life := c.Lifetime()
	return life, ok && life > 0
}

// Package kubelet plays kubelet's part towards the CSI node plugin: it
// publishes and unpublishes inline ephemeral volumes over the plugin's unix
// socket with the volume context kubelet would send, including the pod's
// projected ServiceAccount token. The demo and the end-to-end tests use it.
package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Volume context keys kubelet sets for drivers with podInfoOnMount and
// tokenRequests.
const (
	PodName        = "csi.storage.k8s.io/pod.name"
	PodNamespace   = "csi.storage.k8s.io/pod.namespace"
	PodUID         = "csi.storage.k8s.io/pod.uid"
	ServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	Ephemeral      = "csi.storage.k8s.io/ephemeral"
	Tokens         = "csi.storage.k8s.io/serviceAccount.tokens" //nolint:gosec // a volume context key, not a credential
)

// Pod is the pod a volume belongs to.
type Pod struct {
	Namespace      string
	Name           string
	UID            string
	ServiceAccount string
	// FSGroup, when set, is passed as the volume mount group.
	FSGroup string
}

// Token is a projected ServiceAccount token.
type Token struct {
	Token               string    `json:"token"`
	ExpirationTimestamp time.Time `json:"expirationTimestamp"`
}

// Kubelet is a CSI client.
type Kubelet struct {
	conn *grpc.ClientConn
	node csi.NodeClient
	id   csi.IdentityClient
}

// Dial connects to the plugin's unix socket.
func Dial(socket string) (*Kubelet, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", socket, err)
	}
	return &Kubelet{conn: conn, node: csi.NewNodeClient(conn), id: csi.NewIdentityClient(conn)}, nil
}

// Close closes the connection.
func (k *Kubelet) Close() error { return k.conn.Close() }

// WaitReady polls Probe until the plugin reports ready or ctx ends.
func (k *Kubelet) WaitReady(ctx context.Context) error {
	for {
		resp, err := k.id.Probe(ctx, &csi.ProbeRequest{})
		if err == nil && resp.GetReady().GetValue() {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("plugin not ready: %w", err)
			}
			return fmt.Errorf("plugin not ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PublishRequest builds the NodePublishVolume request kubelet sends for an
// inline ephemeral volume with the given attributes and tokens by audience.
func PublishRequest(volumeID, target string, pod Pod, attributes map[string]string, tokens map[string]Token) (*csi.NodePublishVolumeRequest, error) {
	vc := map[string]string{
		PodName:        pod.Name,
		PodNamespace:   pod.Namespace,
		PodUID:         pod.UID,
		ServiceAccount: pod.ServiceAccount,
		Ephemeral:      "true",
	}
	if len(tokens) > 0 {
		b, err := json.Marshal(tokens)
		if err != nil {
			return nil, err
		}
		vc[Tokens] = string(b)
	}
	for k, v := range attributes {
		vc[k] = v
	}
	return &csi.NodePublishVolumeRequest{
		VolumeId:   volumeID,
		TargetPath: target,
		Readonly:   true,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{VolumeMountGroup: pod.FSGroup}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		VolumeContext: vc,
	}, nil
}

// Publish sends NodePublishVolume.
func (k *Kubelet) Publish(ctx context.Context, volumeID, target string, pod Pod, attributes map[string]string, tokens map[string]Token) error {
	req, err := PublishRequest(volumeID, target, pod, attributes, tokens)
	if err != nil {
		return err
	}
	_, err = k.node.NodePublishVolume(ctx, req)
	return err
}

// Unpublish sends NodeUnpublishVolume.
func (k *Kubelet) Unpublish(ctx context.Context, volumeID, target string) error {
	_, err := k.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volumeID, TargetPath: target})
	return err
}

package kubelet

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// RegisterNode creates the Node object of a node, as kubelet does when it
// starts; tokens minted for pods on it then name it. An existing Node is
// kept.
func RegisterNode(ctx context.Context, c kubernetes.Interface, name string) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node %s: %w", name, err)
	}
	return nil
}

// RunPod creates the Pod object of pod bound to node, and sets its IP
// through the status subresource as kubelet does once the sandbox runs.
// It returns pod with the UID the API server gave it.
func RunPod(ctx context.Context, c kubernetes.Interface, pod Pod, node, podIP string) (Pod, error) {
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		Spec: corev1.PodSpec{
			NodeName:           node,
			ServiceAccountName: pod.ServiceAccount,
			Containers:         []corev1.Container{{Name: "main", Image: "registry.invalid/main:1"}},
		},
	}
	obj, err := c.CoreV1().Pods(pod.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return pod, fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	obj.Status.Phase = corev1.PodRunning
	obj.Status.PodIP = podIP
	obj.Status.PodIPs = []corev1.PodIP{{IP: podIP}}
	if _, err := c.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return pod, fmt.Errorf("setting the IP of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	pod.UID = string(obj.UID)
	return pod, nil
}

// MintToken asks the TokenRequest API for the pod's ServiceAccount token
// bound to the pod, as kubelet does for a CSIDriver's tokenRequests.
func MintToken(ctx context.Context, c kubernetes.Interface, pod Pod, audience string, lifetime time.Duration) (Token, error) {
	secs := int64(lifetime / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: &secs,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: types.UID(pod.UID)},
	}}
	resp, err := c.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.ServiceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("minting a token for pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return Token{Token: resp.Status.Token, ExpirationTimestamp: resp.Status.ExpirationTimestamp.Time}, nil
}

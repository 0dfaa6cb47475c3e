package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
)

// PodRef names the pod a volume belongs to, from the volume context kubelet
// passes with podInfoOnMount.
type PodRef struct {
	Namespace string
	Name      string
	UID       string
}

// maxEventNote is the longest note the events API accepts.
const maxEventNote = 1024

// EventRecorder writes Events (events.k8s.io/v1) about pods. Events are
// sent in the background and repeats of one event are merged into a series
// by client-go; a full queue drops events rather than block a caller.
type EventRecorder struct {
	broadcaster events.EventBroadcaster
	recorder    events.EventRecorder
}

// NewEventRecorder starts sending Events through client until ctx ends or
// Shutdown is called. component is the reporting controller, such as
// "connectors-csi".
func NewEventRecorder(ctx context.Context, client kubernetes.Interface, component string) (*EventRecorder, error) {
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
		return nil, fmt.Errorf("starting the event recorder: %w", err)
	}
	return &EventRecorder{broadcaster: b, recorder: b.NewRecorder(scheme.Scheme, component)}, nil
}

// PodWarning records a Warning Event on the pod. The note must carry no
// secret: Events are readable by anyone who may read the pod's namespace.
func (e *EventRecorder) PodWarning(pod PodRef, reason, action, note string) {
	if len(note) > maxEventNote {
		note = note[:maxEventNote-3] + "..."
	}
	ref := &corev1.ObjectReference{
		APIVersion: "v1",
		Kind:       "Pod",
		Namespace:  pod.Namespace,
		Name:       pod.Name,
		UID:        types.UID(pod.UID),
	}
	e.recorder.Eventf(ref, nil, corev1.EventTypeWarning, reason, action, "%s", note)
}

// Shutdown stops sending Events.
func (e *EventRecorder) Shutdown() { e.broadcaster.Shutdown() }

package kube

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
)

// TestPodWatchReportsAPodReplacedUnderItsName pins the missed deletion: a
// watch that was down sees the pod of a name change UID in its next list,
// as an update. The old pod is reported deleted; an update of the same pod
// and a tombstone of a deletion seen late are handled too.
func TestPodWatchReportsAPodReplacedUnderItsName(t *testing.T) {
	var got []PodRef
	w := &PodWatch{opts: PodWatchOptions{Log: logr.Discard(), Deleted: func(p PodRef) { got = append(got, p) }}}
	pod := func(uid, rv string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", UID: types.UID("uid-" + uid), ResourceVersion: rv}}
	}
	w.updated(pod("1", "1"), pod("1", "2"))
	require.Empty(t, got, "an update of the same pod is no deletion")
	w.updated(pod("1", "2"), pod("2", "3"))
	require.Equal(t, []PodRef{{Namespace: "ns", Name: "app", UID: "uid-1"}}, got)

	got = nil
	ref, ok := podRefOf(toolscache.DeletedFinalStateUnknown{Key: "ns/app", Obj: pod("2", "3")})
	require.True(t, ok)
	require.Equal(t, PodRef{Namespace: "ns", Name: "app", UID: "uid-2"}, ref)

	trimmed, err := trimPod(&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: "app", UID: "uid-3", ResourceVersion: "4",
		Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"},
		OwnerReferences: []metav1.OwnerReference{{Name: "rs"}}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}},
	}})
	require.NoError(t, err)
	require.Equal(t, &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", UID: "uid-3", ResourceVersion: "4"}},
		trimmed, "the watch keeps names and UIDs only")
}

package csi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube"
)

// benchHarness is a harness whose cache holds n Connectors and whose
// access decisions come from a real kube.Reviewer over a fake clientset
// that allows everything; the decisions are cached after the first call.
func benchHarness(b *testing.B, n int) *harness {
	b.Helper()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "subjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authorizationv1.SubjectAccessReview{Status: authorizationv1.SubjectAccessReviewStatus{Allowed: true}}, nil
	})
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: cs, Audience: audience})
	if err != nil {
		b.Fatal(err)
	}
	h := newHarness(b, func(o *csi.Options) { o.Authorizer = reviewer })
	for i := range n {
		h.objects.addConnector(podNamespace, fmt.Sprintf("c%d", i), "git", fmt.Sprintf("https://git%d.example.com/org", i))
	}
	return h
}

// benchConnectors names up to 10 of the cached Connectors.
func benchConnectors(n int) string {
	names := make([]string, 0, 10)
	for i := range min(n, 10) {
		names = append(names, fmt.Sprintf("c%d", i))
	}
	return strings.Join(names, ",")
}

// BenchmarkPublish is a first publish of a new volume (the fake mounter
// stands in for the mount syscall), with the access decision cached. The
// unpublish after each publish is not timed.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 10, 1000} {
		b.Run(fmt.Sprintf("connectors=%d", n), func(b *testing.B) {
			h := benchHarness(b, n)
			ctx := context.Background()
			req := publishRequest(b, "vol", h.target("vol"))
			req.VolumeContext[csi.AttrConnectors] = benchConnectors(n)
			req.VolumeContext[csi.AttrConfigurationNames] = "gitconfig,notes"
			warm(b, h, req)
			b.ReportAllocs()
			for b.Loop() {
				if err := h.publish(ctx, req); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := h.unpublish(ctx, req.VolumeId, req.TargetPath); err != nil {
					b.Fatal(err)
				}
				h.mounter.(*mount.FakeMounter).ResetLog()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRepublish is kubelet's periodic call with a fresh token on a
// mounted volume: render, compare, swap.
func BenchmarkRepublish(b *testing.B) {
	for _, n := range []int{1, 10, 1000} {
		b.Run(fmt.Sprintf("connectors=%d", n), func(b *testing.B) {
			h := benchHarness(b, n)
			ctx := context.Background()
			req := publishRequest(b, "vol", h.target("vol"))
			req.VolumeContext[csi.AttrConnectors] = benchConnectors(n)
			req.VolumeContext[csi.AttrConfigurationNames] = "gitconfig,notes"
			if err := h.publish(ctx, req); err != nil {
				b.Fatal(err)
			}
			tokens := make([]string, 2)
			for i := range tokens {
				tokens[i] = tokensJSON(b, audience, fmt.Sprintf("token-%d", i), time.Now().Add(time.Hour))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req.VolumeContext[csi.TokensKey] = tokens[i%2]
				i++
				if err := h.publish(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if v := republishFailures(b, h); v != 0 {
				b.Fatalf("%v republishes failed", v)
			}
		})
	}
}

// warm makes one publish and unpublish so that the access decisions are
// cached.
func warm(b *testing.B, h *harness, req *csipb.NodePublishVolumeRequest) {
	b.Helper()
	ctx := context.Background()
	if err := h.publish(ctx, req); err != nil {
		b.Fatal(err)
	}
	if err := h.unpublish(ctx, req.VolumeId, req.TargetPath); err != nil {
		b.Fatal(err)
	}
}

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync/atomic"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// tokenPrefix starts every token the fake API server accepts. Each token
// maps to its own ServiceAccount (named after a hash of the token, so the
// token never shows in the audit log), so a fresh token is also a fresh
// user with nothing cached.
const tokenPrefix = "bench-"

// reviewCounts counts the review calls that reached the fake API server.
type reviewCounts struct {
	tokenReviews, accessReviews atomic.Int64
}

// countingClientset answers TokenReviews (any bench- token is a
// ServiceAccount of the bench namespace, for the proxy audience) and
// SubjectAccessReviews (always allowed), counting both.
func countingClientset() (*fake.Clientset, *reviewCounts) {
	cs := fake.NewClientset()
	n := &reviewCounts{}
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n.tokenReviews.Add(1)
		in := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		out := &authenticationv1.TokenReview{}
		if rest, ok := strings.CutPrefix(in.Spec.Token, tokenPrefix); ok && rest != "" {
			sum := sha256.Sum256([]byte(in.Spec.Token))
			sa := "sa-" + hex.EncodeToString(sum[:6])
			out.Status = authenticationv1.TokenReviewStatus{
				Authenticated: true,
				Audiences:     []string{audience},
				User: authenticationv1.UserInfo{
					Username: "system:serviceaccount:" + benchNamespace + ":" + sa,
					Groups:   []string{"system:serviceaccounts", "system:authenticated"},
				},
			}
		}
		return true, out, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		n.accessReviews.Add(1)
		return true, &authorizationv1.SubjectAccessReview{Status: authorizationv1.SubjectAccessReviewStatus{Allowed: true}}, nil
	})
	return cs, n
}

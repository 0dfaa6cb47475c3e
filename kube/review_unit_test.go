package kube_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/connectors-node/connectors-node/kube"
)

// fakeTokenReviews answers every TokenReview as authenticated for the proxy
// audience, or with err, and counts the calls.
func fakeTokenReviews(err error) (*fake.Clientset, *atomic.Int64) {
	cs := fake.NewClientset()
	var calls atomic.Int64
	cs.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		if err != nil {
			return true, nil, err
		}
		return true, &authenticationv1.TokenReview{Status: authenticationv1.TokenReviewStatus{
			Authenticated: true,
			Audiences:     []string{audience},
			User:          authenticationv1.UserInfo{Username: "system:serviceaccount:ns:sa"},
		}}, nil
	})
	return cs, &calls
}

func TestTokenCacheIsBounded(t *testing.T) {
	cs, calls := fakeTokenReviews(nil)
	r, err := kube.NewReviewer(kube.ReviewerOptions{Client: cs, Audience: audience, MaxEntries: 2})
	require.NoError(t, err)
	ctx := context.Background()
	for _, tok := range []string{"a", "b", "c", "a"} {
		_, err := r.Authenticate(ctx, tok)
		require.NoError(t, err)
	}
	// "a" was evicted by "c", so it is reviewed again.
	require.EqualValues(t, 4, calls.Load())
}

func TestAPIErrorsMapToUnavailableOrNot(t *testing.T) {
	gr := schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}
	for name, tc := range map[string]struct {
		err         error
		unavailable bool
	}{
		"503":       {apierrors.NewServiceUnavailable("down"), true},
		"500":       {apierrors.NewInternalError(errors.New("boom")), true},
		"429":       {apierrors.NewTooManyRequests("slow down", 1), true},
		"timeout":   {apierrors.NewTimeoutError("slow", 1), true},
		"transport": {errors.New("connection refused"), true},
		// The node's own RBAC, missing or warming up on a restarted API
		// server: a 503 for the client, not a 500.
		"403":         {apierrors.NewForbidden(gr, "", errors.New("no")), true},
		"401":         {apierrors.NewUnauthorized("who"), true},
		"bad request": {apierrors.NewBadRequest("bad"), false},
	} {
		t.Run(name, func(t *testing.T) {
			cs, _ := fakeTokenReviews(tc.err)
			r, err := kube.NewReviewer(kube.ReviewerOptions{Client: cs, Audience: audience, Now: time.Now})
			require.NoError(t, err)
			_, err = r.Authenticate(context.Background(), "tok")
			require.Error(t, err)
			require.Equal(t, tc.unavailable, errors.Is(err, kube.ErrUnavailable), err.Error())
		})
	}
}

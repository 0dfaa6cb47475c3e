package csi_test

import (
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
)

// TestSanity runs csi-sanity against the real gRPC server on a unix socket.
// Without a controller most node specs skip themselves (they need
// CreateVolume); the identity and node-argument specs run. The publish,
// republish and real-mount tests of this package carry the lifecycle
// coverage.
// It skips the controller specs (there is no controller service) and
// "should remove target path", which needs CreateVolume.
func TestSanity(t *testing.T) {
	h := newHarness(t, nil)
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + h.server.Socket()
	cfg.TargetPath = filepath.Join(h.dir, "sanity-target")
	cfg.StagingPath = filepath.Join(h.dir, "sanity-staging")
	cfg.IdempotentCount = 3
	sanity.GinkgoTest(&cfg)

	suite, reporter := ginkgo.GinkgoConfiguration()
	suite.SkipStrings = []string{`\[Controller Server\]`, `should remove target path`}
	reporter.Succinct = true
	reporter.NoColor = true
	gomega.RegisterFailHandler(ginkgo.Fail)
	ginkgo.RunSpecs(t, "connectors-csi sanity", suite, reporter)
}

package kube_test

import (
	"os"
	"testing"

	"github.com/connectors-node/connectors-node/kube/apitest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	apitest.StopShared()
	os.Exit(code)
}

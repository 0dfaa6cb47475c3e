package ca_test

import (
	"os"
	"testing"

	"github.com/connectors-node/connectors-node/test/apiserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	apiserver.StopShared()
	os.Exit(code)
}

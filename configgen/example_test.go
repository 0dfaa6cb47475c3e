package configgen_test

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

func ExampleParseNames() {
	include, exclude, err := configgen.ParseNames("gitconfig, registry-config, !ca.cert")
	fmt.Println(include, exclude, err)
	_, _, err = configgen.ParseNames("gitconfig,,!ca.cert")
	fmt.Println(err)
	// Output:
	// [gitconfig registry-config] [ca.cert] <nil>
	// configuration.names: item 2 is empty
}

func ExampleRender() {
	const public = "http://connectors-proxy.connectors-system.svc"
	github := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "github"},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: "git", Address: "https://github.com"},
	}
	files, err := configgen.Render(configgen.Input{
		Connectors:     []configgen.Connector{{Object: github, ProxyAddress: github.ProxyAddress(public)}},
		Token:          "token",
		ProxyURL:       publicurl.MustParse(public),
		CACertPEM:      []byte("-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"),
		Configurations: []string{"gitconfig"},
		Exclude:        []string{"ca.cert"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Println(strings.Join(names, " "))
	fmt.Printf("%s\n", files["http.proxy"])
	fmt.Printf("%s", files[".gitconfig"])
	// Output:
	// .env .gitconfig ca-bundle.crt ca.crt connector.status.proxyAddress context.proxy.caCert context.token http.proxy https.proxy
	// http://default%2Fgithub:token@connectors-proxy.connectors-system.svc
	// [http "http://connectors-proxy.connectors-system.svc/namespaces/default/connectors/github/"]
	// 	extraHeader = Authorization: Basic OnRva2Vu
	// 	followRedirects = false
	// [url "http://connectors-proxy.connectors-system.svc/namespaces/default/connectors/github/"]
	// 	insteadOf = https://github.com/
}

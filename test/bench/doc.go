// Package bench holds the proxy benchmark: proxy.sh starts an upstream
// (upstream/), the proxy with in-memory objects and a real token and access
// reviewer over a fake clientset (proxyd/), nginx as the reverse proxy a user
// would otherwise pick, three reference points (baseline/: a bare
// httputil.ReverseProxy, the same with a synchronous upstream client, and a
// TCP relay), and drives them with wrk and a Go
// load generator (load/) that can speak to a forward proxy. Everything runs
// on loopback.
//
// memory/ and scale/ run the real connectors-node binary, as the DaemonSet
// does, against a real API server (internal/fleet starts both, creates
// Connectors and publishes volumes through the kubelet stand-in): memory/
// reads one node's RSS, heap and goroutines idle and under load; scale/
// runs many nodes and counts the API server's requests.
package bench

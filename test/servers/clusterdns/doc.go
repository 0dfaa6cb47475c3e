// Package clusterdns is a cluster DNS server for tests, in place of CoreDNS
// on a test node: it answers from an informer on Services, the way a
// cluster's DNS answers Service names, and knows nothing else.
//
//   - <svc>.<ns>.svc.<domain> of a Service with cluster IPs: A (and AAAA)
//     records of those IPs; a headless Service has no address records.
//   - <svc>.<ns>.svc.<domain> of an ExternalName Service: a CNAME to the
//     external name and, in the same answer, the target's records when the
//     server can resolve it: localhost (127.0.0.1) or another Service name.
//   - localhost and *.localhost: A 127.0.0.1 (RFC 6761); no AAAA record.
//   - every other name, in the cluster domain or not: NXDOMAIN. Nothing is
//     forwarded upstream (the test machine has no network).
//
// It serves UDP (answers larger than the client's limit are truncated and
// flagged TC) and TCP on the same address.
package clusterdns

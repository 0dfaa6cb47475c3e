// Package policy compiles and evaluates the Rego hooks of a ConnectorClass
// with the Open Policy Agent engine:
//
//   - spec.auth.types[].generator.rego, a generator: package proxy, rule
//     auth = {position, contentType?, auth: {k: v}}, which says how a
//     Connector's credential is put into a request (header, query or body);
//   - spec.proxy.authExtractor.rego, an extractor: package proxy, rule
//     auth = {token}, which finds the client's token in its request.
//
// An Engine compiles each class's policies once per class generation into
// prepared queries (cached by class UID and generation, bounded) that any
// number of goroutines evaluate at once. Every evaluation runs under a
// deadline and a step budget, with no builtin that reaches the network,
// files or the runtime. Evaluation errors name the class and the rule,
// never the input: the input holds credentials.
package policy

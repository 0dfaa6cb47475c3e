// Package ca is the proxy's certificate authority: the CA kept in a Secret
// (created on first start, adopted across rotations) that signs the leaf
// certificates of intercepted TLS connections, its certificates published
// without the key in a ConfigMap for CSI-only nodes (Keeper, BundleReader),
// and the extra roots the proxy trusts upstream, read from labelled Secrets
// (GlobalCAs).
package ca

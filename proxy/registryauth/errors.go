package registryauth

import "errors"

// Error is a failure of the token flow that is not the base transport's.
// Message is safe to show a client: it names the Connector and at most the
// scheme and host of a realm, never a credential or a token. Err, when set,
// holds details that are only logged.
type Error struct {
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrCredentialRejected is in the chain of the *Error a token fetch
// returns when the token service answered 401 or 403 to the Connector's
// credential: the registry is up and the credential is wrong.
var ErrCredentialRejected = errors.New("the credential was rejected")

// TokenServiceError is a failure of the base transport while it fetched a
// token from the realm (a refused dial, a timeout, an untrusted
// certificate). Callers classify Err as they do any upstream failure.
type TokenServiceError struct {
	Err error
}

func (e *TokenServiceError) Error() string { return "registry token service: " + e.Err.Error() }

func (e *TokenServiceError) Unwrap() error { return e.Err }
